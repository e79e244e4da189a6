"""`sft`: full fine-tuning; every weight trains and the update a device receives is the whole model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeadapt.updates.registry import Capabilities, register

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn


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
    """The update's weights copied into the base model itself: its own config and architecture, so nothing
    in an update (a config naming other weights) can make the device run another model."""
    from safetensors.torch import load_file

    from edgeadapt.core.errors import UserError

    state = {}
    for path in sorted(Path(update_dir).glob("*.safetensors")):
        state.update(load_file(str(path)))
    missing, unexpected = base.load_state_dict(state, strict=False)
    tied = {n for n, p in base.named_parameters() if p is base.get_input_embeddings().weight} | {
        "lm_head.weight"
    }
    if unexpected or set(missing) - tied:
        raise UserError(
            f"{update_dir}: the update's tensors do not match the base model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return base


UPDATE_FILES = {"config.json", "generation_config.json", "model.safetensors.index.json"}


def check_files(update_dir: Path, base: dict[str, tuple[str, list[int]]]) -> list[str]:
    """A received full model: only weight files and configs; every tensor is a base tensor of the same shape."""
    from edgeadapt.updates.files import tensor_problems

    names = {p.name for p in Path(update_dir).iterdir()}
    weights = sorted(n for n in names if n.endswith(".safetensors"))
    odd = sorted(names - UPDATE_FILES - set(weights))
    if not weights or odd:
        return [
            f"a full-model update holds safetensors weights and configs, not {', '.join(odd) or 'no weights'}"
        ]
    return [p for name in weights for p in tensor_problems(Path(update_dir) / name, base)]


def merge(model: nn.Module) -> nn.Module:
    return model


@contextmanager
def scaled(tuned: nn.Module, base: nn.Module, s: float) -> Iterator[nn.Module]:
    """The tuned model with weights base + s·(tuned − base) while inside; restored on exit.

    The comparable move to scaling an adapter: s=0 is the base model, s=1 the tuned one.
    """
    import torch

    base_params = dict(base.named_parameters())
    saved = {name: p.detach().clone() for name, p in tuned.named_parameters()}
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            p.copy_(base_params[name] + s * (saved[name] - base_params[name]))
    try:
        yield tuned
    finally:
        with torch.no_grad():
            for name, p in tuned.named_parameters():
                p.copy_(saved[name])


def nf4(model: nn.Module) -> nn.Module:
    """Train, then quantize: a tuned (for an adapter, merged) model's block linears in 4-bit NF4, as a 4-bit
    device would hold it."""
    from edgeadapt.models.quantize import quantize_blocks

    return quantize_blocks(model, 4, "nf4")


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
    check_files=check_files,
    deploy_variants={"NF4": nf4},
    capabilities=Capabilities(
        lora_family=False,
        mergeable=True,
        gguf=None,
        device_holds="the tuned model (a full copy of the weights)",
    ),
)
