"""The `device` subcommand: a device folder set up, updated atomically, rolled back and asked (wired into
`edgeadapt.cli`). Every refused package is a one-line `error:` and exit code 2, with the device unchanged."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeadapt.cli.common import add_runtime_options, base_dir, command, path_or_none
from edgeadapt.core.errors import UserError, printable


def _device(args: argparse.Namespace) -> None:
    from edgeadapt.deploy import device

    folder = Path(args.device_dir)
    if args.action == "init":
        roots = [Path(p) for p in args.root_pubkey or []]
        options = {"gguf_type": args.gguf_type, "model": args.model}
        base = device.init(
            folder, base_dir(args.model), roots, args.root_threshold, args.channel, args.runtime, options
        )
        print(f"base model in {base} for the {args.runtime} runtime; follows channel '{args.channel}'")
        if roots:
            print(
                f"trusts {len(roots)} root key(s), threshold {args.root_threshold}: give it a key list with `device trust`"
            )
        return
    if args.action == "trust":
        if not args.arg:
            raise UserError("device trust needs a key list file (from `edgeadapt keys list`)")
        print(json.dumps(device.trust_keylist(folder, Path(args.arg)), indent=1))
        return
    if args.action == "generate":
        if not args.arg:
            raise UserError(
                'device generate needs a prompt: edgeadapt device generate --device-dir DIR "..."'
            )
        result = device.generate(folder, args.arg, args.max_new_tokens)
        _warn(result.warnings)
        answer, route = printable(result.text, keep="\n\t"), result.route  # model output: never acted on
        if route is None:
            print(answer)
            if args.explain:
                print("route: no library is active, so every request runs the active update (or the base)")
                print(speed_line(result, device.runtime_of(folder).name))
            return
        print(f"[expert: {route.label}] {answer}" if route.experts else f"[base: no expert] {answer}")
        if args.explain:  # the null class is the base route: say so
            scores = sorted(route.scores.items(), key=lambda kv: -kv[1])
            print("router: " + ", ".join(f"{'base' if k == 'null' else k} {v:.3f}" for k, v in scores))
            print(speed_line(result, device.runtime_of(folder).name))
        return
    if args.action == "apply":
        if not args.arg:
            raise UserError("device apply needs a package file")
        state = device.apply(
            Path(args.arg), folder, path_or_none(args.pubkey), args.allow_unsigned, args.max_bytes, args.scale
        )
    elif args.action == "rollback":
        state = device.rollback(folder)
    else:
        state = device.status(folder)
    print(json.dumps(state, indent=1))  # json escapes every control character a manifest may hold
    _warn(device.warnings_of(state))


def speed_line(result, runtime: str) -> str:
    """How fast the answer came: per answer token after the prompt, and the prompt's processing apart, where
    the runtime timed them (a short answer's wall time per token is mostly the prompt's)."""
    t = result.timings or {}
    if t.get("answer_tokens") and t.get("answer_ms") is not None and t.get("prompt_ms") is not None:
        return (
            f"speed: {t['answer_ms'] / t['answer_tokens']:.1f} ms per answer token ({t['answer_tokens']} tokens); "
            f"the prompt, {t['prompt_tokens']} tokens, in {t['prompt_ms']:.0f} ms; "
            f"{result.ms_per_token:.1f} ms per answer token in all ({runtime})"
        )
    return (
        f"speed: {result.ms_per_token:.1f} ms per answer token, the prompt's processing included ({runtime})"
    )


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {printable(line)}", file=sys.stderr)


def add_parsers(sub) -> None:
    p = command(sub, "device", "a device folder: apply an update atomically, status, rollback, generate")
    p.add_argument("action", choices=["init", "apply", "status", "rollback", "generate", "trust"])
    p.add_argument("arg", nargs="?", help="apply: a package file; generate: the prompt; trust: a key list")
    p.add_argument("--device-dir", required=True, help="the device folder (made by `device init`)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="init: the base model")
    p.add_argument("--pubkey", help="apply: public key the package must be signed with")
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="apply: accept a package without a signature (never one whose signature fails)",
    )
    p.add_argument(
        "--root-pubkey", action="append", help="init: a root public key the device trusts (repeatable)"
    )
    p.add_argument("--root-threshold", type=int, default=1, help="init: root signatures a key list needs")
    p.add_argument(
        "--channel", default="default", help="init: the one update channel this device takes releases from"
    )
    add_runtime_options(
        p,
        "init: what runs the model on the device (default llamacpp; transformers for adaptq and qlora updates)",
        "init --runtime llamacpp: the base GGUF's type",
    )
    p.add_argument(
        "--scale",
        type=float,
        help="apply: the share of a LoRA update to apply (default: the package's, or 1)",
    )
    p.add_argument("--max-bytes", type=int, default=4 << 30, help="apply: reject larger packages")
    p.add_argument(
        "--max-new-tokens", type=int, default=48, help="generate: most tokens in the answer (1-4096)"
    )
    p.add_argument("--explain", action="store_true", help="generate: print the router's scores (a library)")
    p.set_defaults(func=_device)
