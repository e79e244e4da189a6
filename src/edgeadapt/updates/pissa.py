"""`pissa`: PiSSA, LoRA initialized from the principal singular vectors of each weight (PEFT's
`init_lora_weights="pissa"`, which moves them out of the frozen base into the adapter), at the LoRA
defaults. Saved converted (PEFT's `path_initial_model_for_weight_conversion`): a plain LoRA of twice the rank
that applies to the unchanged base model, so every device and tool takes it as any adapter.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
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
    peft_cfg.init_lora_weights = "pissa"
    model = get_peft_model(model, peft_cfg)
    # The adapter as initialized, to convert the trained one against (the residual base stays in memory).
    # The folder lives as long as the model: removed when the model is collected or the process exits
    # (a bare mkdtemp left one in /tmp for every model prepared; a TemporaryDirectory warns as it cleans up).
    initial = tempfile.mkdtemp(prefix="edgeadapt-pissa-")
    weakref.finalize(model, shutil.rmtree, initial, ignore_errors=True)
    model.peft_config["default"].init_lora_weights = True
    model.save_pretrained(initial, safe_serialization=True)
    model.peft_config["default"].init_lora_weights = "pissa"
    model.edgeadapt_pissa_initial = initial
    return model


def save_update(model: nn.Module, out_dir: Path) -> list[Path]:
    model.save_pretrained(
        out_dir,
        safe_serialization=True,
        path_initial_model_for_weight_conversion=model.edgeadapt_pissa_initial,
    )
    return sorted(Path(out_dir).glob("adapter_model.safetensors"))


register(
    name="pissa",
    description="PiSSA: PEFT LoRA started from each weight's principal singular vectors; shipped as a plain LoRA (2x rank)",
    Config=Config,
    # merged_scaled: training moves the base weights to a residual
    **{**lora.PEFT_ADAPTER, "prepare": prepare, "save_update": save_update, "scaled": lora.merged_scaled},
)
