"""Subcommands for the adapter library and its router: `library build|show`, `route eval` (wired into
`edgeadapt.cli.main`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeadapt.cli.common import command


def _config(args: argparse.Namespace):
    from edgeadapt.core import config

    return config.load(getattr(args, "config", None) or args.target, args.overrides)


def _library(args: argparse.Namespace) -> None:
    if args.action == "show":
        from edgeadapt.updates.library import Library

        library = Library.read(Path(args.target))
        print(
            f"{library.folder}: base {library.base_name} ({library.base_fingerprint[:19]}...), router: {', '.join(library.router) or 'none'}"
        )
        for name, e in library.experts.items():
            print(f"  {name:12} {e.method} r={e.rank} {e.train.get('steps')} steps: {e.description}")
        return
    from edgeadapt.studies.library import build_library

    cfg = _config(args)
    library = build_library(cfg, resume=args.resume)
    print(f"{library.folder}: {len(library.experts)} experts ({', '.join(library.experts)}) and a router")


def _route(args: argparse.Namespace) -> None:
    from edgeadapt.reports.routing import goals, write_routing_reports
    from edgeadapt.runs import schema
    from edgeadapt.studies.routing import RESULTS, route_eval

    cfg = _config(args)
    results = route_eval(cfg)
    results["package"] = library_package_size(cfg.run_dir() / "library")
    schema.write(cfg.run_dir() / RESULTS, results, schema.RoutingResults)
    write_routing_reports(cfg.run_dir(), results)
    for goal, target, measured, met in goals(results):
        print(
            f"{'yes' if met else ('no ' if met is not None else '-  ')} {goal}: {measured} (target {target})"
        )
    print(f"Results: {cfg.run_dir() / RESULTS}; report: {cfg.run_dir() / 'routing.html'}")


def library_package_size(folder: Path) -> dict:
    """What a device downloads for the whole library: its package, plain and zstd-compressed (the PyTorch
    package, as every route study so far measured it)."""
    import tempfile

    from edgeadapt.deploy.library_packages import export_library

    pytorch = {"runtime": "transformers"}
    with tempfile.TemporaryDirectory(prefix="edgeadapt-libpkg-") as tmp:
        plain = export_library(folder, Path(tmp) / "library.eaupd", **pytorch)
        packed = export_library(folder, Path(tmp) / "library.eaupd.zst", compress=True, **pytorch)
    return {
        "raw_bytes": plain["raw_bytes"],
        "plain_bytes": plain["package_bytes"],
        "bytes": packed["package_bytes"],
    }


def add_parsers(sub) -> None:
    p = command(sub, "library", "build an adapter library (one expert per domain and a router), or show one")
    p.add_argument("action", choices=["build", "show"])
    p.add_argument("target", help="build: a YAML config (library.*, router.*); show: a library folder")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. library.domains=[medical,legal]")
    p.add_argument("--resume", action="store_true", help="build: reuse experts that finished training")
    p.set_defaults(func=_library)

    p = command(sub, "route", "evaluate routing and the routed system against single models")
    p.add_argument("action", choices=["eval"])
    p.add_argument("config", help="the library's YAML config")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. router.seeds=[0]")
    p.set_defaults(func=_route)
