"""Subcommands for shipping an update: `keys`, `package`, `export` and `edge-check` (wired into
`edgeadapt.cli`). Every rejected package is a one-line `error:` and exit code 2."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from edgeadapt.cli.common import add_runtime_options, base_dir, command, path_or_none
from edgeadapt.core.errors import UserError, printable


def _keys(args: argparse.Namespace) -> None:
    if args.action == "list":
        from edgeadapt.core.files import write_json_atomic
        from edgeadapt.deploy.trust import make_keylist

        if not args.root or not args.update or not args.version:
            raise UserError(
                "keys list needs --root ROOT.key (one or more), --update UPDATE.pub (one or more), --version N"
            )
        document = make_keylist(
            [Path(p) for p in args.root], [Path(p) for p in args.update], args.version, args.expires_days
        )
        out = Path(args.out if args.out != "." else "keylist.json")
        write_json_atomic(out, document)
        print(
            f"{out}: key list v{args.version} of {len(args.update)} update key(s), signed by {len(args.root)} root key(s), expires {document['signed']['expires']}"
        )
        return
    from edgeadapt.deploy.keys import generate_keys

    private, public = generate_keys(Path(args.out), args.name)
    print(
        f"private key: {private} (keep it secret. An update key signs packages: package export --sign {private}; "
        f"a root key, kept offline, signs key lists: keys list --root {private})"
    )
    print(
        f"public key:  {public} (for devices: device apply --pubkey {public}, or device init --root-pubkey {public})"
    )


def _release(args: argparse.Namespace) -> dict:
    """The release fields of an exported package (version, channel, expiry) and the key list it carries."""
    from edgeadapt.deploy.build import release
    from edgeadapt.deploy.manifest import MAX_PPL_RATIO

    fields = release(args.version, args.channel, args.expires_days)
    if not 1.0 < args.max_ppl_ratio <= MAX_PPL_RATIO:  # NaN fails both
        raise UserError(f"--max-ppl-ratio must be in (1, {MAX_PPL_RATIO:g}], got {args.max_ppl_ratio}")
    fields["health"] = {"max_ppl_ratio": args.max_ppl_ratio}
    if args.scale is not None:
        if not 0 <= args.scale <= 2:  # NaN fails too
            raise UserError(
                f"--scale must be in [0, 2] (the share of the update a device applies), got {args.scale}"
            )
        fields["scale"] = args.scale
    if args.keylist:
        try:
            fields["keylist"] = json.loads(Path(args.keylist).read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise UserError(f"{args.keylist}: not a readable key list ({str(exc)[:200]})") from None
    return fields


def _sizes_line(info: dict) -> str:
    m = info["manifest"]
    form = f"GGUF {m['gguf']['kind']} {m['gguf']['type']}" if m.get("gguf") else m["dtype"]
    line = f"{m['variant']} ({m['method']}, {form}): update {info['raw_bytes']:,} bytes, package {info['package_bytes']:,} bytes"
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

    if args.action == "export" and (args.library or args.expert):
        from edgeadapt.deploy import library_packages

        if not args.out:
            raise UserError("package export LIB --library (or --expert NAME) needs --out FILE")
        sign = Path(args.sign) if args.sign else None
        export = (
            functools.partial(library_packages.export_expert, Path(args.target), args.expert)
            if args.expert
            else functools.partial(library_packages.export_library, Path(args.target))
        )
        info = export(Path(args.out), args.dtype, sign, args.compress, _release(args), args.runtime)
        experts = ", ".join(e["name"] for e in info["manifest"]["experts"])
        print(
            printable(f"{args.out}: {info['manifest']['kind']} ({experts}), {info['package_bytes']:,} bytes")
            + ("; signed" if sign else "; unsigned")
        )
    elif args.action == "export" and _adapter_folder(args.target):
        from edgeadapt.deploy.adapter_folders import export_package

        if not args.out:
            raise UserError("package export ADAPTER_DIR needs --out FILE")
        info = export_package(
            Path(args.target),
            Path(args.out),
            args.dtype,
            path_or_none(args.sign),
            args.compress,
            _release(args),
            args.runtime,
        )
        m = info["manifest"]
        print(
            printable(
                f"{args.out}: {m['variant']} adapter (lora r={m['rank']}) for {m['base_model']['name']}, "
            )
            + f"{info['package_bytes']:,} bytes"
            + ("; signed" if args.sign else "; unsigned")
        )
    elif args.action == "export":
        if not args.method or not args.out:
            raise UserError("package export needs RUN --method NAME --out FILE (or LIB --library)")
        info = run_packages.export_run(
            args.target,
            args.method,
            Path(args.out),
            args.dtype,
            Path(args.sign) if args.sign else None,
            args.compress,
            _release(args),
            args.runtime,
            args.gguf_type,
        )
        print(printable(f"{args.out}: " + _sizes_line(info)) + ("; signed" if args.sign else "; unsigned"))
    elif args.action == "verify":
        base = base_dir(args.base) if args.base else None
        verified = build.verify(
            Path(args.target), path_or_none(args.pubkey), base, args.allow_unsigned, args.max_bytes
        )
        verified.opened.close()
        m = verified.manifest
        checks = [
            "hashes",
            "signature" if args.pubkey else "no signature check",
            "base" if base else "no base check",
        ]
        what = printable(f"{m['variant']} ({m['method']}, {m['dtype']}) for {m['base_model']['name']}")
        print(f"{printable(args.target)}: OK ({', '.join(checks)}): {what}")
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


def _adapter_folder(target: str) -> bool:
    from edgeadapt.deploy.adapter_folders import is_adapter_folder

    return bool(target) and is_adapter_folder(Path(target))


def _export(args: argparse.Namespace) -> None:
    from edgeadapt.deploy.gguf import export_run

    if _adapter_folder(args.run_dir):
        from edgeadapt.deploy.adapter_folders import export_gguf

        if not args.out:
            raise UserError("export gguf ADAPTER_DIR needs --out FILE")
        info = export_gguf(Path(args.run_dir), Path(args.out), args.quantize or args.dtype, args.adapter)
        print(
            f"{info['path']}: {info['variant']} as a {info['kind']}, {info['dtype']}, {info['bytes']:,} bytes"
        )
        return
    if not args.method:
        raise UserError("export gguf RUN needs --method NAME (or 'base'); an adapter folder needs none")
    info = export_run(args.run_dir, args.method, Path(args.out), args.quantize or args.dtype, args.adapter)
    print(f"{info['path']}: {info['variant']} as a {info['kind']}, {info['dtype']}, {info['bytes']:,} bytes")


def _edge_check(args: argparse.Namespace) -> None:
    from edgeadapt.deploy.edge import edge_check
    from edgeadapt.reports.deploy import edge_lines
    from edgeadapt.reports.run import render

    overrides = list(args.overrides) + ([f"edge.profile={args.profile}"] if args.profile else [])
    methods = [m for m in (args.method or "").split(",") if m] or None
    results = edge_check(args.run_dir, overrides, methods=methods)
    render(results, args.run_dir)
    print("\n".join(edge_lines(results)))


def add_parsers(sub) -> None:
    p = command(sub, "keys", "make an Ed25519 key pair for signing update packages")
    p.add_argument("action", choices=["generate", "list"])
    p.add_argument(
        "--out", default=".", help="generate: folder for NAME.key and NAME.pub; list: the key list file"
    )
    p.add_argument("--name", default="edgeadapt", help="generate: the key files' name (NAME.key, NAME.pub)")
    p.add_argument(
        "--root", action="append", help="list: a root private key that signs the list (repeatable)"
    )
    p.add_argument(
        "--update", action="append", help="list: an update public key devices may trust (repeatable)"
    )
    p.add_argument(
        "--version", type=int, help="list: the key list's version (above the devices' current one)"
    )
    p.add_argument("--expires-days", type=float, default=365.0, help="list: days until the list expires")
    p.set_defaults(func=_keys)

    p = command(sub, "package", "export, verify or size over-the-air update packages")
    p.add_argument("action", choices=["export", "verify", "sizes"])
    p.add_argument(
        "target",
        help="export/sizes: a finished run folder (export: or an adapter folder from `loragen make`); verify: a package file",
    )
    p.add_argument(
        "--method",
        help="export: the method (variant) to package; sizes: a comma-separated subset (default: all)",
    )
    p.add_argument(
        "--library", action="store_true", help="export: the adapter library (TARGET: its folder or run)"
    )
    p.add_argument(
        "--expert", help="export: one expert of the library TARGET, to join a library a device holds"
    )
    p.add_argument(
        "--dtype",
        default="fp32",
        choices=["fp32", "bf16", "int8"],
        help="export: how the update's weights travel (int8: one scale per row; both record their measured cost)",
    )
    p.add_argument("--sign", help="export: private key (from `edgeadapt keys generate`)")
    p.add_argument("--compress", action="store_true", help="export: zstd-compress the package")
    p.add_argument(
        "--version", type=int, help="export: the release's version on its channel (default: now in ms)"
    )
    p.add_argument(
        "--channel", default="default", help="export: the update channel (versions rise per channel)"
    )
    p.add_argument("--expires-days", type=float, default=180.0, help="export: days until devices refuse it")
    p.add_argument("--keylist", help="export: a root-signed key list for devices to take with the package")
    add_runtime_options(
        p,
        "export: the device runtime the package is for (default llamacpp: GGUF files; transformers: PyTorch "
        "files, for adaptq, qlora and --dtype bf16|int8; see README, 'Run it on a device')",
        "export --runtime llamacpp: a whole model's GGUF type",
    )
    p.add_argument(
        "--scale",
        type=float,
        help="export: the share of the update a device applies (recommended, signed; 0-2)",
    )
    p.add_argument(
        "--max-ppl-ratio",
        type=float,
        default=2.0,
        help="export: the device refuses the update if its perplexity on a fixed general text is over this "
        "many times the base model's (signed in the manifest; default 2)",
    )
    p.add_argument("--out", help="export: the package file to write")
    p.add_argument("--pubkey", help="verify: public key; the package must be signed with its key")
    p.add_argument("--base", help="verify: the base model (name or folder) the package must be built for")
    p.add_argument(
        "--allow-unsigned", action="store_true", help="verify: accept a package without checking a signature"
    )
    p.add_argument("--max-bytes", type=int, default=4 << 30, help="verify: reject larger packages")
    p.set_defaults(func=_package)

    p = command(sub, "export", "export a merged model for an edge runtime (llama.cpp's GGUF)")
    p.add_argument("format", choices=["gguf"], help="the file format (llama.cpp's GGUF)")
    p.add_argument("run_dir", help="a finished run folder, or an adapter folder (`loragen make`)")
    p.add_argument("--method", help="the run's method (variant) to merge, or 'base'")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument(
        "--dtype",
        default="f16",
        choices=["f16", "f32"],
        help="the merged weights' type (norms stay f32), or with --adapter the LoRA's",
    )
    p.add_argument(
        "--quantize", choices=["q8_0", "q4_0", "q4_k_m"], help="write the weights quantized (llama.cpp types)"
    )
    p.add_argument(
        "--adapter",
        action="store_true",
        help="the update alone, as a GGUF LoRA llama.cpp applies to its base",
    )
    p.set_defaults(func=_export)

    p = command(sub, "edge-check", "parameters, memory and ms/token of every deployed model vs a profile")
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("overrides", nargs="*", help="edge.new_tokens=32 edge.threads=4")
    p.add_argument("--profile", help="a profile name from edge.profiles (default: edge.profile)")
    p.add_argument(
        "--method",
        help="comma-separated methods to probe beside the base (default: all); the others keep an earlier check's figures",
    )
    p.set_defaults(func=_edge_check)
