"""Range checks shared by the config sections."""

from __future__ import annotations

from typing import Any

from edgeadapt.core.errors import did_you_mean


def positive(where: str, values: dict[str, Any]) -> list[str]:
    """A problem for every integer in `values` (key -> value) that is not > 0."""
    return [
        f"{where}.{key}: must be > 0, got {value}"
        for key, value in values.items()
        if isinstance(value, int) and value <= 0
    ]


def number_list(where: str, values: Any, ok, wanted: str, allow_empty: bool = False) -> list[str]:
    """A problem unless `values` is a list (non-empty unless allowed) of numbers passing `ok`."""
    if not isinstance(values, list) or (not values and not allow_empty):
        return [f"{where}: a non-empty list, got {values!r}"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and ok(v) for v in values):
        return [f"{where}: {wanted}, got {values!r}"]
    return []


def choice(where: str, value: str, choices: tuple[str, ...]) -> list[str]:
    """A problem, with a did-you-mean, unless `value` is one of `choices`."""
    if value in choices:
        return []
    return [f"{where}: one of {', '.join(choices)}, got '{value}'.{did_you_mean(str(value), choices)}"]
