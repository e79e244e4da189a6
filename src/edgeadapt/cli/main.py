"""The `edgeadapt` command line. Each subcommand builds a config and calls one function.

Bad input (config keys, files, names) prints one line starting with `error:` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edgeadapt.cli import device, loragen, routing, ship
from edgeadapt.cli.common import command
from edgeadapt.core.errors import UserError, printable

EXIT_USAGE = 2


def _models(args: argparse.Namespace) -> None:
    from edgeadapt import models

    if args.action == "list":
        for row in models.list_models():
            mark = "fetched" if row["fetched"] else "not fetched"
            print(f"{row['name']:24} {mark:12} {row['license']:20} {row['description']}")
    elif args.action == "fetch":
        path = models.fetch(args.name)
        print(f"{args.name}: ready at {path}")
    else:
        if not args.target:
            raise UserError("Name the converted model: `edgeadapt models convert FILE.gguf --name NAME`.")
        path = models.convert_local(Path(args.name), args.target)
        print(f"{args.target}: ready at {path}; use it with model.name={args.target}")


def _data(args: argparse.Namespace) -> None:
    from edgeadapt.data import packs

    if args.action == "list":
        for name, (_, description) in packs.PACKS.items():
            print(f"{name:10} {description}")
        return
    if not args.name:
        raise UserError(f"Name a pack to build: {', '.join(packs.PACKS)}.")
    folder = packs.build(args.name, args.seed, args.out)
    print(f"{args.name}: {json.loads((folder / 'meta.json').read_text())['rows']} rows in {folder}")


def _methods(args: argparse.Namespace) -> None:
    from edgeadapt.updates import METHODS

    for name in sorted(METHODS):
        print(f"{name:8} {METHODS[name].description}")


def _config(args: argparse.Namespace):
    from edgeadapt.core import config

    return config.load(args.config, args.overrides)


def _compare(args: argparse.Namespace) -> None:
    from edgeadapt.studies.compare import compare

    results = compare(_config(args), resume=args.resume)
    if results:  # empty on the other ranks of a multi-process launch
        _print_summary(results)


def _train(args: argparse.Namespace) -> None:
    from edgeadapt.runs.run import Run
    from edgeadapt.studies.train import train_run
    from edgeadapt.training.distributed import is_main_process

    cfg = _config(args)
    run = Run(cfg, only=args.method)
    trained = train_run(run, resume=args.resume)
    for name, result in trained.items() if is_main_process() else ():
        print(
            f"{name}: {result.steps} steps in {result.seconds:.0f} s, update in {cfg.run_dir() / name / 'update'}"
        )


def _eval(args: argparse.Namespace) -> None:
    from edgeadapt.runs.run import Run
    from edgeadapt.studies.evaluate import evaluate_run

    _print_summary(evaluate_run(Run(_config(args), only=args.method)))


def _transfer(args: argparse.Namespace) -> None:
    from edgeadapt.reports.transfer import markdown_lines, write_transfer_reports
    from edgeadapt.studies.transfer import transfer_run

    cfg = _config(args)
    results = transfer_run(cfg, resume=args.resume)
    write_transfer_reports(cfg.run_dir(), results)
    print("\n".join(markdown_lines(results)[:-2]))
    print(f"Results: {cfg.run_dir() / 'transfer.json'}; report: {cfg.run_dir() / 'transfer.html'}")


def _sweep(args: argparse.Namespace) -> None:
    from edgeadapt.reports.sweep import markdown_lines, write_sweep_reports
    from edgeadapt.studies.sweep import sweep_run

    cfg = _config(args)
    sweep = sweep_run(cfg)
    write_sweep_reports(cfg.run_dir(), sweep)
    print("\n".join(markdown_lines(sweep)).split("\n![")[0])
    print(f"Results: {cfg.run_dir() / 'sweep.json'}; report: {cfg.run_dir() / 'sweep.html'}")


def _recover(args: argparse.Namespace) -> None:
    from edgeadapt.reports.run import recovery_lines, render
    from edgeadapt.studies.recovery import recover_run

    results = recover_run(args.run_dir, args.overrides)
    render(results, args.run_dir)
    print("\n".join(recovery_lines(results)))


def _analyze(args: argparse.Namespace) -> None:
    from edgeadapt.reports.analysis import analysis_lines
    from edgeadapt.reports.run import render
    from edgeadapt.studies.analysis import analyze_run

    results = analyze_run(args.run_dir, args.overrides)
    render(results, args.run_dir)
    print("\n".join(analysis_lines(results)))


def _report(args: argparse.Namespace) -> None:
    from edgeadapt.reports.run import write_reports
    from edgeadapt.runs.results import read_results

    write_reports(Path(args.run_dir), read_results(Path(args.run_dir)))
    print(f"wrote {Path(args.run_dir) / 'report.md'} and report.html")


def _print_summary(results: dict) -> None:
    from edgeadapt.reports.run import markdown, render, run_dir_of

    render(results)
    print(markdown(results).split("\n![")[0])
    run_dir = run_dir_of(results)
    print(f"Results: {run_dir / 'results.json'}; report: {run_dir / 'report.html'}")


def parser() -> argparse.ArgumentParser:
    from edgeadapt import __version__

    top = argparse.ArgumentParser(prog="edgeadapt", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"edgeadapt {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    p = command(sub, "models", "list or fetch the built-in offline models, or convert a GGUF file")
    p.add_argument("action", choices=["list", "fetch", "convert"])
    p.add_argument(
        "name", nargs="?", default="smollm2-135m-instruct", help="model name (convert: a .gguf file)"
    )
    p.add_argument("--name", dest="target", help="convert: the name to save the checkpoint under")
    p.set_defaults(func=_models)

    p = command(sub, "data", "list or build the built-in data packs")
    p.add_argument("action", choices=["list", "build"])
    p.add_argument("name", nargs="?", help="build: the pack (see `data list`)")
    p.add_argument("--seed", type=int, default=0, help="build: the seed of the pack's train/val/test split")
    p.add_argument("--out", help="output folder (default: $EDGEADAPT_HOME/data/NAME-seedN)")
    p.set_defaults(func=_data)

    p = command(sub, "methods", "list the methods")
    p.set_defaults(func=_methods)

    for name, func, text in [
        (
            "compare",
            _compare,
            "train every method in CONFIG, evaluate base and tuned models, write the report",
        ),
        ("train", _train, "train the methods in CONFIG (or --method ones) and save their updates"),
        ("eval", _eval, "evaluate the base model and the trained methods of CONFIG's run; write results"),
        (
            "sweep",
            _sweep,
            "train every method at several learning rates (sweep.*); the frontier and forgetting at matched skill",
        ),
        (
            "transfer",
            _transfer,
            "train every method on each of transfer.domains; evaluate every model on every domain",
        ),
    ]:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("config", help="YAML config (see configs/)")
        p.add_argument(
            "overrides", nargs="*", help="key=value overrides, e.g. train.steps=10 methods.lora.rank=16"
        )
        if name in ("train", "eval"):
            p.add_argument("--method", action="append", help="only this method (repeatable)")
        if name in ("compare", "train", "transfer"):
            p.add_argument(
                "--resume", action="store_true", help="continue from checkpoints; reuse trained methods"
            )
        p.set_defaults(func=func)

    p = command(sub, "recover", "recovery curves: scale each update by s and re-evaluate (no retraining)")
    p.add_argument("run_dir", help="a finished run folder (holding results.json)")
    p.add_argument("overrides", nargs="*", help="recovery.scales=[0,0.5,1] recovery.budget_pct=3")
    p.set_defaults(func=_recover)

    p = command(
        sub, "analyze", "spectra of the weight updates, attention and hidden-state drift; a rank advice"
    )
    p.add_argument("run_dir", help="a finished run folder (holding results.json)")
    p.add_argument("overrides", nargs="*", help="analysis.top_k=8 analysis.chunks=8 analysis.budget_pct=5")
    p.set_defaults(func=_analyze)

    p = command(sub, "report", "rewrite report.md/report.html from a run's results.json")
    p.add_argument("run_dir", help="a finished run folder (holding results.json)")
    p.set_defaults(func=_report)
    ship.add_parsers(sub)
    device.add_parsers(sub)
    routing.add_parsers(sub)
    loragen.add_parsers(sub)
    return top


THIRD_PARTY_NOISE = (
    # PEFT calls transformers' old name; both are pinned, and the call is not ours to change.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # PEFT warns on loading any PiSSA adapter; ours is converted to a plain LoRA when it is saved.
    (UserWarning, r"PiSSA changes the base weights of the model"),
    # a library's own TorchScript decorator, at import time
    (DeprecationWarning, r"`torch.jit.script_method` is deprecated"),
)


def quiet_third_party() -> None:
    """Silence the warnings in THIRD_PARTY_NOISE, which a user cannot act on (bitsandbytes' import-time
    kernel lookup is kept local and quiet by the package itself: core/hub_kernels.py)."""
    import warnings

    for category, message in THIRD_PARTY_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_third_party()
    if not sys.stderr.isatty():  # a log file: one line per stage, no progress-bar debris
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when huggingface_hub is imported
        if "huggingface_hub" in sys.modules:  # imported already (main called in-process): told directly
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()  # transformers asks the hub at its import
        if "transformers" in sys.modules:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
    top = parser()
    # Overrides may come after options (`train CONFIG --method lora train.steps=6`): collect them here.
    args, extra = top.parse_known_args(argv)
    # After `--` everything is a positional (a prompt that starts with '-'): argparse hands it back here.
    after = extra[extra.index("--") + 1 :] if "--" in extra else []
    extra = extra[: extra.index("--")] if "--" in extra else extra
    if after and getattr(args, "arg", "") is None:
        args.arg = after.pop(0)
    if after:
        top.error(f"unrecognized arguments after --: {' '.join(after)}")
    # argparse fills an optional positional before it reads the options that follow it, so a positional
    # written after them (`device generate --device-dir DIR "prompt"`) comes back here: put it in its place.
    if getattr(args, "arg", "") is None and extra and not extra[0].startswith("-"):
        args.arg = extra.pop(0)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if stray:
        top.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a folder that is a file, a read-only device, a full disk: say which and why
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {printable(exc.strerror or exc)}{printable(where)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
