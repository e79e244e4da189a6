"""A LoRA's weights added into a model's linear layers in place, and taken out again: how the evaluation runs
dozens of adapters (generated, multi-task, per-task) on one loaded base model. The result is the same model
PEFT's `merge_and_unload` gives (tests/test_loragen.py checks it), without reloading the base per adapter."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from edgeadapt.core.errors import UserError

PREFIX = "base_model.model."


Scaling = float | dict[str, float]
"""One scaling for every module, or module path -> its own (a rank capped per module)."""


def read_adapter(folder: Path) -> tuple[dict[str, torch.Tensor], Scaling]:
    """A PEFT LoRA folder's tensors and each module's scaling (alpha / r, or alpha / sqrt(r) with rsLoRA),
    with `rank_pattern` and `alpha_pattern` applied as PEFT applies them."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
        tensors = load_file(str(folder / "adapter_model.safetensors"))
        rank_pattern, alpha_pattern = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
        scalings = {}
        for path, _, _ in pairs(tensors):
            rank = pattern_value(rank_pattern, path, config["r"])
            alpha = pattern_value(alpha_pattern, path, config["lora_alpha"])
            scalings[path] = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        raise UserError(f"{folder}: not a readable PEFT LoRA adapter ({exc}).") from None
    return tensors, scalings


def pattern_value(patterns: dict[str, float], path: str, default: float) -> float:
    """The value of the first pattern matching a module path, as PEFT's `get_pattern_key` matches it (the
    pattern ends the path, after a dot or at its start), else `default`."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", path):
            return value
    return default


def pairs(tensors: dict[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(module path, A, B) for every LoRA pair of a PEFT state dict."""
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            path = key[len(PREFIX) : -len(".lora_A.weight")]
            yield path, a, tensors[key.replace(".lora_A.", ".lora_B.")]


@contextmanager
@torch.no_grad()
def merged(model: nn.Module, tensors: dict[str, torch.Tensor], scaling: Scaling) -> Iterator[nn.Module]:
    """The model with W + scaling · B A in every adapted layer while inside; the exact weights back on exit."""
    saved = {}
    try:
        for path, a, b in pairs(tensors):
            weight = model.get_submodule(path).weight
            saved[path] = weight.detach().clone()
            factor = scaling[path] if isinstance(scaling, dict) else scaling
            weight += (factor * (b.float() @ a.float())).to(weight.dtype)
        yield model
    finally:
        for path, original in saved.items():
            model.get_submodule(path).weight.copy_(original)
