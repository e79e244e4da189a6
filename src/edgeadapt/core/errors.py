"""User-facing errors: one line, exit code 2, never a traceback (see `cli.main`)."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user: a config key, a file, a name. The message is shown as is."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    choices, name = list(choices), str(name)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if not close:  # a misspelt short form of a long name ("smolm2" for "smollm2-135m-instruct")
        heads = {c[: len(name) + 1]: c for c in choices}
        close = [heads[h] for h in difflib.get_close_matches(name, list(heads), n=1, cutoff=0.7)]
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """An error for an unknown name, listing the valid ones and the closest match."""
    choices = sorted(choices)
    return UserError(
        f"Unknown {kind} '{name}'.{did_you_mean(name, choices)} Choose from: {', '.join(choices)}."
    )


def printable(text: object, keep: str = "") -> str:
    """`text` safe to print on a terminal: control and format characters (escape sequences, carriage
    returns, bidirectional overrides) shown as \\xNN / \\uNNNN instead of acted on. Anything printed that
    came from a package or a file goes through here; `keep`: characters left as they are (a model's answer
    keeps its line breaks)."""
    out = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Cf") and char not in keep:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)
