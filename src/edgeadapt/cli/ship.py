"""Subcommands for shipping an update: `keys`, `package`, `device`, `export` and `edge-check` (wired into
`edgeadapt.cli`). Every rejected package is a one-line `error:` and exit code 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeadapt.core.errors import UserError


def _keys(args: argparse.Namespace) -> None:
    from edgeadapt.deploy.manifest import generate_keys

    private, public = generate_keys(Path(args.out), args.name)
    print(f"private key: {private} (keep it secret; sign with --sign {private})")
    print(f"public key:  {public} (give it to devices: --pubkey {public})")


def _sizes_line(info: dict) -> str:
    m = info["manifest"]
    line = f"{m['variant']} ({m['method']}, {m['dtype']}): update {info['raw_bytes']:,} bytes, package {info['package_bytes']:,} bytes"
    cost = m.get("dtype_cost")
    if cost:
        line += (
            f"; vs fp32: domain PPL {cost['domain_ppl_change_pct']:+.2f}%, "
            f"general PPL {cost['general_ppl_change_pct']:+.2f}%"
        )
    return line


def _package(args: argparse.Namespace) -> None:
    from edgeadapt.deploy import build, run_packages
    from edgeadapt.reports.run import render

    if args.action == "export":
        if not args.method or not args.out:
            raise UserError("package export needs RUN --method NAME --out FILE")
        info = run_packages.export_run(
            args.target,
            args.method,
            Path(args.out),
            args.dtype,
            Path(args.sign) if args.sign else None,
            args.compress,
        )
        print(f"{args.out}: " + _sizes_line(info) + ("; signed" if args.sign else "; unsigned"))
    elif args.action == "verify":
        base = _base_dir(args.base) if args.base else None
        verified = build.verify(
            Path(args.target), _path(args.pubkey), base, args.allow_unsigned, args.max_bytes
        )
        verified.opened.close()
        m = verified.manifest
        checks = [
            "hashes",
            "signature" if args.pubkey else "no signature check",
            "base" if base else "no base check",
        ]
        print(
            f"{args.target}: OK ({', '.join(checks)}): {m['variant']} ({m['method']}, {m['dtype']}) "
            f"for {m['base_model']['name']}"
        )
    else:
        results = run_packages.package_sizes(
            args.target, only=args.method.split(",") if args.method else None
        )
        render(results, args.target)
        for row in results["packages"]["rows"]:
            print(
                f"{row['variant']:12} {row['dtype']:5} package {row['package_bytes']:>13,}  "
                f"zstd {row['compressed_bytes']:>13,}"
            )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _base_dir(name: str) -> Path:
    from edgeadapt import models

    return models.resolve(name)


def _device(args: argparse.Namespace) -> None:
    from edgeadapt.deploy import device

    folder = Path(args.device_dir)
    if args.action == "init":
        print(f"base model in {device.init(folder, _base_dir(args.model))}")
        return
    if args.action == "generate":
        if not args.arg:
            raise UserError(
                'device generate needs a prompt: edgeadapt device generate --device-dir DIR "..."'
            )
        print(device.generate(folder, args.arg, args.max_new_tokens))
        return
    if args.action == "apply":
        if not args.arg:
            raise UserError("device apply needs a package file")
        state = device.apply(Path(args.arg), folder, _path(args.pubkey), args.allow_unsigned)
    elif args.action == "rollback":
        state = device.rollback(folder)
    else:
        state = device.status(folder)
    print(json.dumps(state, indent=1))


def _export(args: argparse.Namespace) -> None:
    from edgeadapt.deploy.gguf import export_run

    info = export_run(args.run_dir, args.method, Path(args.out), args.dtype)
    print(f"{info['path']}: {info['variant']} merged, {info['dtype']}, {info['bytes']:,} bytes")


def _edge_check(args: argparse.Namespace) -> None:
    from edgeadapt.deploy.edge import edge_check
    from edgeadapt.reports.deploy import edge_lines
    from edgeadapt.reports.run import render

    overrides = list(args.overrides) + ([f"edge.profile={args.profile}"] if args.profile else [])
    results = edge_check(args.run_dir, overrides)
    render(results, args.run_dir)
    print("\n".join(edge_lines(results)))


def add_parsers(sub) -> None:
    p = sub.add_parser("keys", help="make an Ed25519 key pair for signing update packages")
    p.add_argument("action", choices=["generate"])
    p.add_argument("--out", default=".", help="folder for NAME.key and NAME.pub")
    p.add_argument("--name", default="edgeadapt")
    p.set_defaults(func=_keys)

    p = sub.add_parser("package", help="export, verify or size over-the-air update packages")
    p.add_argument("action", choices=["export", "verify", "sizes"])
    p.add_argument("target", help="export/sizes: a finished run folder; verify: a package file")
    p.add_argument(
        "--method",
        help="export: the method (variant) to package; sizes: a comma-separated subset (default: all)",
    )
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "int8"])
    p.add_argument("--sign", help="export: private key (from `edgeadapt keys generate`)")
    p.add_argument("--compress", action="store_true", help="export: zstd-compress the package")
    p.add_argument("--out", help="export: the package file to write")
    p.add_argument("--pubkey", help="verify: public key; the package must be signed with its key")
    p.add_argument("--base", help="verify: the base model (name or folder) the package must be built for")
    p.add_argument(
        "--allow-unsigned", action="store_true", help="verify: accept a package without checking a signature"
    )
    p.add_argument("--max-bytes", type=int, default=4 << 30, help="verify: reject larger packages")
    p.set_defaults(func=_package)

    p = sub.add_parser(
        "device", help="a device folder: apply an update atomically, status, rollback, generate"
    )
    p.add_argument("action", choices=["init", "apply", "status", "rollback", "generate"])
    p.add_argument("arg", nargs="?", help="apply: a package file; generate: the prompt")
    p.add_argument("--device-dir", required=True)
    p.add_argument("--model", default="smollm2-135m-instruct", help="init: the base model")
    p.add_argument("--pubkey", help="apply: public key the package must be signed with")
    p.add_argument("--allow-unsigned", action="store_true")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.set_defaults(func=_device)

    p = sub.add_parser("export", help="export a merged model for an edge runtime (llama.cpp's GGUF)")
    p.add_argument("format", choices=["gguf"])
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("--method", required=True, help="the method (variant) to merge, or 'base'")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "edge-check", help="parameters, memory and ms/token of every deployed model vs a profile"
    )
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("overrides", nargs="*", help="edge.new_tokens=32 edge.threads=4")
    p.add_argument("--profile", help="a profile name from edge.profiles (default: edge.profile)")
    p.set_defaults(func=_edge_check)
