"""`hlora`: H-LoRA, LoRA at high rank with simplified scaling, as in the MiniMind code behind the paper.

Rank defaults to 2/3 of the hidden size rounded to a multiple of 8 (384 for SmolLM2-135M), scaling to
`none` (the update is B·A, factor 1), targets to the square attention projections q and o: about 26.5M
trainable parameters on SmolLM2-135M, ~20% of the model. All projections at r=384 come to ~110M, nearly
the whole model; the report shows that share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgeadapt.updates import lora
from edgeadapt.updates.registry import register

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn


@dataclass
class Config:
    lr: float = 1e-4
    """Learning rate (MiniMind's LoRA default)."""
    rank: int | None = None
    """None: 2/3 of the model's hidden size, rounded to a multiple of 8."""
    alpha: float = 16
    """Scaling numerator for scaling standard or rslora."""
    scaling: str = "none"
    """none (factor 1, the paper's) | standard (alpha/r) | rslora (alpha/sqrt(r))."""
    targets: list[str] = field(default_factory=lambda: ["q_proj", "o_proj"])
    dropout: float = 0.0


def default_rank(hidden_size: int) -> int:
    return max(8, round(hidden_size * 2 / 3 / 8) * 8)


def prepare(model: nn.Module, cfg: Config, calibration: list[dict] | None = None) -> nn.Module:
    from peft import get_peft_model

    rank = cfg.rank or default_rank(model.config.hidden_size)
    return get_peft_model(model, lora.peft_config(model, cfg, rank))


register(
    name="hlora",
    description="H-LoRA: PEFT LoRA at r = 2/3 hidden size, factor 1 (simplified scaling), on q and o",
    Config=Config,
    **{**lora.PEFT_ADAPTER, "prepare": prepare},
)
