"""What the benchmarks on a built library share: CONFIG [KEY=VALUE ...] [--out FILE] on the command line, the
config loaded, its domain runs and the library `edgeadapt library build CONFIG` made."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def open_library(default_out: str, more_arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """(args, cfg, runs, library); `more_arguments` adds a script's own options to the parser."""
    from edgeadapt.core import config
    from edgeadapt.studies.library import domain_runs, library_dir
    from edgeadapt.updates.library import Library

    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--out", default=default_out)
    if more_arguments:
        more_arguments(parser)
    args = parser.parse_args()
    cfg = config.load(args.config, args.overrides)
    return args, cfg, domain_runs(cfg), Library.read(library_dir(cfg))
