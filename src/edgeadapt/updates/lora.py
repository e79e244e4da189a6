"""`lora`: PEFT LoRA adapters on the attention and MLP projections; the base model stays frozen.

Scaling of the update B·A: `standard` multiplies by alpha/r, `rslora` by alpha/sqrt(r), `none` by 1
(H-LoRA's "simplified scaling", done by setting alpha = r per module). A rank above min(in, out) of a module
cannot raise that module's update rank and only costs memory, so it is capped per module with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from edgeadapt.core.errors import UserError
from edgeadapt.updates.registry import Capabilities, register

SCALINGS = ("standard", "rslora", "none")
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Config:
    lr: float = 2e-4
    """Learning rate (the usual LoRA value)."""
    rank: int = 8
    alpha: float = 16
    """Scaling numerator; ignored when scaling is none."""
    scaling: str = "standard"
    """standard (alpha/r) | rslora (alpha/sqrt(r)) | none (factor 1)."""
    targets: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))
    """Module names to adapt (the last part of the name, e.g. q_proj)."""
    dropout: float = 0.0


def check(cfg: Config, where: str) -> list[str]:
    problems = []
    if cfg.lr <= 0:
        problems.append(f"{where}.lr: must be > 0, got {cfg.lr}")
    if cfg.rank is not None and not 1 <= cfg.rank <= 65536:
        problems.append(f"{where}.rank: must be between 1 and 65536, got {cfg.rank}")
    if cfg.scaling not in SCALINGS:
        problems.append(f"{where}.scaling: must be one of {', '.join(SCALINGS)}, got '{cfg.scaling}'")
    if not cfg.targets:
        problems.append(f"{where}.targets: name at least one module (e.g. q_proj)")
    return problems


def target_shapes(model: nn.Module, targets: list[str]) -> dict[str, tuple[int, int]]:
    """(in, out) features of every linear module whose last name part is in `targets`."""
    shapes = {
        name: (mod.in_features, mod.out_features)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    }
    if not shapes:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise UserError(
            f"No module matched targets {targets}. Linear modules in this model: {', '.join(names)}."
        )
    return shapes


def peft_config(model: nn.Module, cfg: Config, rank: int):
    """A PEFT LoraConfig for `rank`, with per-module caps and the chosen scaling."""
    from peft import LoraConfig

    shapes = target_shapes(model, cfg.targets)
    capped = {}
    for suffix in cfg.targets:
        sizes = [min(shape) for name, shape in shapes.items() if name.rsplit(".", 1)[-1] == suffix]
        if sizes and rank > min(sizes):
            capped[suffix] = min(sizes)
    if capped:
        warnings.warn(
            f"rank {rank} exceeds min(in, out) of {', '.join(f'{k} ({v})' for k, v in capped.items())}: "
            "capped there, since a larger rank cannot raise the update's rank",
            stacklevel=2,
        )
    # PEFT patterns are regexes on the module name; anchor on the suffix.
    rank_pattern = {rf".*\.{k}$": v for k, v in capped.items()}
    alpha, alpha_pattern = cfg.alpha, {}
    if cfg.scaling == "none":
        alpha, alpha_pattern = rank, {rf".*\.{k}$": v for k, v in capped.items()}
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(cfg.targets),
        lora_dropout=cfg.dropout,
        use_rslora=cfg.scaling == "rslora",
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        bias="none",
        task_type="CAUSAL_LM",
    )


def prepare(model: nn.Module, cfg: Config, calibration: list[dict] | None = None) -> nn.Module:
    from peft import get_peft_model

    return get_peft_model(model, peft_config(model, cfg, cfg.rank))


def save_update(model: nn.Module, out_dir: Path) -> list[Path]:
    model.save_pretrained(out_dir, safe_serialization=True)
    return sorted(out_dir.glob("adapter_model.safetensors"))


def load_tuned(base: nn.Module, update_dir: Path) -> nn.Module:
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(update_dir))


def merge(model: nn.Module) -> nn.Module:
    return model.merge_and_unload()


@contextmanager
def scaled(tuned: nn.Module, base: nn.Module | None, s: float) -> Iterator[nn.Module]:
    """The adapted model with every adapter's scaling multiplied by s while inside (s=0: the base model)."""
    from peft.helpers import rescale_adapter_scale

    with rescale_adapter_scale(tuned, float(s)):
        yield tuned


ADAPTER = Capabilities(
    lora_family=True, mergeable=True, gguf=None, device_holds="the base model plus the adapter, or merged"
)

register(
    name="lora",
    description="PEFT LoRA (default r=8, alpha=16) on the attention and MLP projections; the update is the adapter",
    Config=Config,
    check=check,
    prepare=prepare,
    save_update=save_update,
    loader="peft",
    load_tuned=load_tuned,
    merge=merge,
    scaled=scaled,
    capabilities=ADAPTER,
)
