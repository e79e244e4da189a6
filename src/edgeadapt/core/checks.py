"""Range checks shared by the config sections."""

from __future__ import annotations

from typing import Any


def positive(where: str, values: dict[str, Any]) -> list[str]:
    """A problem for every integer in `values` (key -> value) that is not > 0."""
    return [
        f"{where}.{key}: must be > 0, got {value}"
        for key, value in values.items()
        if isinstance(value, int) and value <= 0
    ]
