"""What a llama.cpp device checks of a received GGUF file before llama.cpp reads it (the `gguf` package's
reader, in Python, so a malformed file is a refusal and never a crash in native code): a LoRA's tensors are
pairs that fit tensors of the device's base GGUF, a model's tensors are exactly the base's names and shapes,
every value finite, every metadata field what edgeadapt writes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

GGUF_LORA = ("adapter", "lora")  # general.type and adapter.type of a LoRA in GGUF
LORA_TENSOR = re.compile(r"(blk\.\d+\.[a-z_]+\.weight)\.lora_(a|b)")


def table(path: Path) -> tuple[dict[str, tuple[int, ...]], object]:
    """name -> shape (PyTorch's order: out, in) of a GGUF file's tensors, and its reader; ValueError if
    `gguf` cannot read it."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
        shapes = {t.name: tuple(reversed([int(n) for n in t.shape])) for t in reader.tensors}
    except Exception as exc:  # noqa: BLE001 - whatever a malformed file makes the reader do
        raise ValueError(
            f"{Path(path).name}: not a readable GGUF file ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
    return shapes, reader


def field(reader, key: str):
    value = reader.fields.get(key)
    return value.contents() if value is not None else None


def finite_problems(reader, name: str) -> list[str]:
    import gguf

    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        if not bool(np.isfinite(np.asarray(values, dtype=np.float32)).all()):
            return [f"{name}: '{tensor.name[:80]}' holds NaN or infinite values"]
    return []


def lora_problems(path: Path, base: dict[str, tuple[int, ...]]) -> list[str]:
    """A GGUF LoRA: adapter metadata, lora_a (rank x in) and lora_b (out x rank) pairs of base weights."""
    try:
        shapes, reader = table(path)
    except ValueError as exc:
        return [str(exc)]
    name = Path(path).name
    if (field(reader, "general.type"), field(reader, "adapter.type")) != GGUF_LORA:
        return [f"{name}: not a GGUF LoRA adapter (general.type adapter, adapter.type lora)"]
    alpha = field(reader, "adapter.lora.alpha")
    if not isinstance(alpha, int | float) or not math.isfinite(alpha) or abs(alpha) > 1e3:
        return [f"{name}: adapter.lora.alpha must be a finite number"]
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for tensor, shape in shapes.items():
        match = LORA_TENSOR.fullmatch(tensor)
        if match is None or match.group(1) not in base or len(base[match.group(1)]) != 2 or len(shape) != 2:
            return [f"{name}: tensor '{tensor[:80]}' is not a LoRA of a weight of this device's base"]
        pairs.setdefault(match.group(1), {})[match.group(2)] = shape
    if not pairs:
        return [f"{name}: no LoRA tensors"]
    for target, pair in pairs.items():
        out, inp = base[target]
        a, b = pair.get("a"), pair.get("b")
        if a is None or b is None or a[1] != inp or b[0] != out or a[0] != b[1] or not 1 <= a[0] <= 65536:
            return [
                f"{name}: the LoRA of '{target}' does not fit it (A {a}, B {b}; the weight is {out} x {inp})"
            ]
    return finite_problems(reader, name)


def model_problems(path: Path, base: dict[str, tuple[int, ...]]) -> list[str]:
    """A whole GGUF model for this base: a llama file with exactly the base's tensors and shapes."""
    try:
        shapes, reader = table(path)
    except ValueError as exc:
        return [str(exc)]
    name = Path(path).name
    if field(reader, "general.architecture") != "llama":
        return [f"{name}: not a llama GGUF model"]
    if shapes != base:
        odd = sorted(set(shapes) ^ set(base)) or sorted(n for n in shapes if shapes[n] != base[n])
        return [f"{name}: its tensors are not the base's ('{odd[0][:60]}')"]
    return finite_problems(reader, name)


def base_table(base_gguf: Path) -> dict[str, tuple[int, ...]]:
    return table(base_gguf)[0]
