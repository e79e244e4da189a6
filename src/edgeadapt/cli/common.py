"""What the subcommands' parsers share: a one-line summary that `edgeadapt --help` lists and the command's
own `--help` repeats as its description, and the small conversions several commands make."""

from __future__ import annotations

import argparse
from pathlib import Path


def command(sub, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text)


def path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def base_dir(name: str) -> Path:
    """The base model's folder, from a registered name or a folder path."""
    from edgeadapt import models

    return models.resolve(name)


def add_runtime_options(p: argparse.ArgumentParser, runtime_help: str, gguf_type_help: str) -> None:
    """--runtime (a registered device runtime) and --gguf-type, as `device init` and `package export` take them."""
    from edgeadapt.deploy.runtime import DEFAULT_RUNTIME, RUNTIMES, get_runtime

    get_runtime(DEFAULT_RUNTIME)  # registers the built-in runtimes
    p.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=sorted(RUNTIMES), help=runtime_help)
    p.add_argument("--gguf-type", default="f16", choices=["f16", "q8_0"], help=gguf_type_help)
