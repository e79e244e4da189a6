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


def runtime_names() -> list[str]:
    from edgeadapt.deploy.runtime import DEFAULT_RUNTIME, RUNTIMES, get_runtime

    get_runtime(DEFAULT_RUNTIME)  # registers the built-in runtimes
    return sorted(RUNTIMES)
