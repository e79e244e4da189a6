"""User-facing errors: one line, exit code 2, never a traceback (see `cli.main`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user: a config key, a file, a name. The message is shown as is."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """An error for an unknown name, listing the valid ones and the closest match."""
    choices = sorted(choices)
    return UserError(
        f"Unknown {kind} '{name}'.{did_you_mean(name, choices)} Choose from: {', '.join(choices)}."
    )
