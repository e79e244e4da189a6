"""The arguments of a bench that reads one trained generator of a study's run: the config, the generator as the
study names it, and the overrides it was trained under (`studies.loragen.open_trained` refuses others)."""

from __future__ import annotations

import argparse


def generator_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with those three arguments; the bench adds its own options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("spec", help="the generator, [KIND:]ENCODER as the study names it")
    parser.add_argument("overrides", nargs="*", help="the key=value overrides it was trained under")
    return parser
