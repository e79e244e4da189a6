"""Checks of a received update's files, shared by the methods' `check_files`: tensors read from safetensors
without trusting them (finite values, floating dtypes, shapes against the base's)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FLOAT_DTYPES = {"F32", "F16", "BF16", "F64"}


def tensor_table(path: Path) -> dict[str, tuple[str, list[int]]]:
    """name -> (dtype, shape) of a safetensors file, read from its header."""
    import struct

    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > 100 << 20:
            raise ValueError(f"{path.name}: a header of {length} bytes")
        table = json.loads(handle.read(length))
    return {k: (v["dtype"], list(v["shape"])) for k, v in table.items() if k != "__metadata__"}


def base_tensors(model_dir: Path) -> dict[str, tuple[str, list[int]]]:
    table = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        table.update(tensor_table(path))
    return table


def non_finite(path: Path) -> list[str]:
    """Names of the tensors in a safetensors file holding NaN or infinite values."""
    import torch
    from safetensors import safe_open

    bad = []
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            tensor = handle.get_tensor(key)
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad.append(key)
    return bad


def tensor_problems(path: Path, expected: dict[str, tuple[str, list[int]]]) -> list[str]:
    """Every tensor of `path` must be named in `expected` with that shape, floating, and finite."""
    try:
        table = tensor_table(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{path.name}: not a readable safetensors file ({exc})"]
    problems = []
    for name, (dtype, shape) in table.items():
        if name not in expected:
            problems.append(f"{path.name}: tensor '{name[:80]}' is not one this update applies to")
        elif shape != expected[name][1]:
            problems.append(
                f"{path.name}: '{name[:80]}' has shape {shape}, the base needs {expected[name][1]}"
            )
        elif dtype not in FLOAT_DTYPES:
            problems.append(f"{path.name}: '{name[:80]}' is {dtype}, not a floating tensor")
    if not problems:
        problems += [f"{path.name}: '{n[:80]}' holds NaN or infinite values" for n in non_finite(path)]
    return problems


def finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_json_object(path: Path) -> tuple[dict | None, str | None]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"{path.name}: not readable JSON ({exc})"
    return (data, None) if isinstance(data, dict) else (None, f"{path.name}: must hold an object")
