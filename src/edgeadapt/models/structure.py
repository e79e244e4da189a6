"""Where things are inside a causal LM: its stack of decoder layers (transformer blocks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's transformer blocks (the decoder layers), also inside a PEFT wrapper."""
    from torch import nn

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    count = inner.config.num_hidden_layers
    for name, module in inner.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith("layers") and len(module) == count:
            return module
    raise ValueError(f"No list of {count} decoder layers found in {type(inner).__name__}.")
