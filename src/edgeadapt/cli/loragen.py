"""Subcommands for adapters generated from a task description: `tasks list|build` (the task collection) and
`loragen train|make|eval` (wired into `edgeadapt.cli.main`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeadapt.cli.common import command


def _config(args: argparse.Namespace):
    from edgeadapt.core import config

    return config.load(args.config, args.overrides)


def _tasks(args: argparse.Namespace) -> None:
    from edgeadapt.studies.loragen import collection_of

    cfg = _config(args)
    collection = collection_of(cfg)
    if args.action == "build":
        roles = {r: len(collection.by_role(r)) for r in ("train", "heldout", "unseen-concept")}
        print(
            f"{collection.folder}: {len(collection.tasks)} tasks ({', '.join(f'{n} {r}' for r, n in roles.items())})"
        )
        return
    for task in collection.tasks.values():
        rows = len(collection.rows(task.name, "train")), len(collection.rows(task.name, "test"))
        print(
            f"{task.name:40} {task.role:14} {task.kind:6} {task.source:38} {rows[0]:4d}/{rows[1]:<3d} {task.description[:70]}"
        )


def _loragen(args: argparse.Namespace) -> None:
    if args.action == "make":
        _make(args)
        return
    if args.description is not None:  # train/eval take no description: it was the first override
        args.overrides = [args.description, *args.overrides]
    cfg = _config(args)
    if args.action == "train":
        from edgeadapt.studies.loragen import train_all

        folders = train_all(cfg, resume=args.resume)
        for spec, folder in folders.items():
            print(f"generator ({spec}): {folder}")
        return
    from edgeadapt.reports.loragen import goal_lines, write_report
    from edgeadapt.studies.loragen_eval import evaluate

    results = evaluate(cfg, resume=args.resume)
    report = write_report(results, cfg, cfg.run_dir() / "loragen.md")
    print("\n".join(goal_lines(results["summary"], list(results["summary"]["goals"]))))
    print(f"Results: {cfg.run_dir() / 'loragen.json'}; report: {report}")


def _make(args: argparse.Namespace) -> None:
    from edgeadapt.core.errors import UserError
    from edgeadapt.loragen.make import Generator

    if not args.out:
        raise UserError('loragen make GENERATOR "description" --out DIR')
    if args.description is None:
        raise UserError('loragen make needs the task description: loragen make GENERATOR "..." --out DIR')
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; choose a new folder (nothing was overwritten).")
    generator = Generator.open(Path(args.config), args.base_dir or "")
    info = generator.make(args.description, out)
    print(
        f"{out}: LoRA r={generator.cfg.rank} on {', '.join(generator.cfg.modules)} for "
        f"{generator.cfg.base_model}, generated in {info['generation_ms']:.1f} ms"
    )


def add_parsers(sub) -> None:
    p = command(sub, "tasks", "build or list the LoRA-Gen task collection (tasks.*)")
    p.add_argument("action", choices=["list", "build"])
    p.add_argument("config", help="a YAML config (tasks.collection, tasks.seed, ...)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. tasks.test_rows=16")
    p.set_defaults(func=_tasks)

    p = command(
        sub, "loragen", "train a generator of LoRA adapters from task descriptions; make one; evaluate"
    )
    p.add_argument("action", choices=["train", "make", "eval"])
    p.add_argument("config", help="train/eval: a YAML config (loragen.*, tasks.*); make: a generator folder")
    p.add_argument("description", nargs="?", help='make: the task description ("Reply with ...")')
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. loragen.steps=100")
    p.add_argument("--out", help="make: the adapter folder to write")
    p.add_argument("--base-dir", help="make: folder that relative model paths resolve against")
    p.add_argument(
        "--resume",
        action="store_true",
        help="train/eval: reuse the stages (train) or parts (eval) that finished",
    )
    p.set_defaults(func=_loragen)
