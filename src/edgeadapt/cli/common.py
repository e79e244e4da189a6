"""What every subcommand's parser shares: a one-line summary that `edgeadapt --help` lists and the
command's own `--help` repeats as its description."""

from __future__ import annotations

import argparse


def command(sub, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text)
