"""The `edgeadapt` command line: each subcommand builds a config and calls one function (`main`)."""

from edgeadapt.cli.main import main

__all__ = ["main"]
