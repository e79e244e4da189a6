"""`sft`: full fine-tuning; every weight trains and the update a device receives is the whole model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeadapt.updates.registry import Capabilities, register


@dataclass
class Config:
    lr: float = 5e-5
    """Learning rate (the transformers Trainer default, usual for full fine-tuning)."""


def check(cfg: Config, where: str) -> list[str]:
    return [f"{where}.lr: must be > 0, got {cfg.lr}"] if cfg.lr <= 0 else []


def prepare(model: nn.Module, cfg: Config, calibration: list[dict] | None = None) -> nn.Module:
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def save_update(model: nn.Module, out_dir: Path) -> list[Path]:
    model.save_pretrained(out_dir, safe_serialization=True)
    return sorted(out_dir.glob("*.safetensors"))


def load_tuned(base: nn.Module, update_dir: Path) -> nn.Module:
    from transformers import AutoModelForCausalLM

    dtype = next(base.parameters()).dtype
    return AutoModelForCausalLM.from_pretrained(str(update_dir), dtype=dtype).to(base.device)


def merge(model: nn.Module) -> nn.Module:
    return model


@contextmanager
@torch.no_grad()
def scaled(tuned: nn.Module, base: nn.Module, s: float) -> Iterator[nn.Module]:
    """The tuned model with weights base + s·(tuned − base) while inside; restored on exit.

    The comparable move to scaling an adapter: s=0 is the base model, s=1 the tuned one.
    """
    base_params = dict(base.named_parameters())
    saved = {name: p.detach().clone() for name, p in tuned.named_parameters()}
    for name, p in tuned.named_parameters():
        p.copy_(base_params[name] + s * (saved[name] - base_params[name]))
    try:
        yield tuned
    finally:
        for name, p in tuned.named_parameters():
            p.copy_(saved[name])


register(
    name="sft",
    description="full fine-tuning of all weights; the update is the whole model",
    Config=Config,
    check=check,
    prepare=prepare,
    save_update=save_update,
    loader="transformers",
    load_tuned=load_tuned,
    merge=merge,
    scaled=scaled,
    capabilities=Capabilities(
        lora_family=False,
        mergeable=True,
        gguf=None,
        device_holds="the tuned model (a full copy of the weights)",
    ),
)
