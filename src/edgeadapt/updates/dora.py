"""`dora`: DoRA, PEFT's weight-decomposed LoRA (`use_dora`): the LoRA update's direction and a learned
magnitude per output row, at the LoRA defaults. The update is the adapter (with its magnitude vectors)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeadapt.updates import lora
from edgeadapt.updates.registry import register

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn


@dataclass
class Config(lora.Config):
    pass


def prepare(model: nn.Module, cfg: Config, calibration: list[dict] | None = None) -> nn.Module:
    from peft import get_peft_model

    peft_cfg = lora.peft_config(model, cfg, cfg.rank)
    peft_cfg.use_dora = True
    return get_peft_model(model, peft_cfg)


def check_files(update_dir, base) -> list[str]:
    return lora.check_files(update_dir, base, dora=True)


register(
    name="dora",
    description="DoRA: PEFT LoRA with a learned magnitude per output row (use_dora), at the LoRA defaults",
    Config=Config,
    # merged_scaled: the magnitude still rescales rows at adapter scale 0
    **{
        **lora.PEFT_ADAPTER,
        "prepare": prepare,
        "scaled": lora.merged_scaled,
        "check_files": check_files,
        "capabilities": dataclasses.replace(
            lora.ADAPTER,
            gguf_lora="DoRA's magnitude per output row has no place in a GGUF LoRA (only B·A does)",
        ),
    },
)
