"""`lora`: PEFT LoRA adapters on the attention and MLP projections; the base model stays frozen.

Scaling of the update B·A: `standard` multiplies by alpha/r, `rslora` by alpha/sqrt(r), `none` by 1
(H-LoRA's "simplified scaling", done by setting alpha = r per module). A rank above min(in, out) of a module
cannot raise that module's update rank and only costs memory, so it is capped per module with a warning.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeadapt.core.errors import UserError
from edgeadapt.updates import sft
from edgeadapt.updates.registry import Capabilities, register

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn

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
    from torch import nn

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


MAX_SCALING = 1e3  # alpha/r of any adapter we train is below 100; a larger one is corruption or an attack
ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors"}
PREFIX = "base_model.model."


def check_files(
    update_dir: Path, base: dict[str, tuple[str, list[int]]], extra: tuple[str, ...] = (), dora: bool = False
) -> list[str]:
    """A received LoRA adapter: every option of its config on the allow-list (`adapter_config`), its rank and
    scaling sane, and every lora_A/lora_B pair fits the base module it names (A: rank x in, B: out x rank;
    DoRA's magnitude: out), with finite values. `extra`: files a method keeps beside the adapter (checked by
    that method); `dora`: the adapter must be (and only then may be) DoRA."""
    import math
    import re

    from edgeadapt.updates.adapter_config import config_problems
    from edgeadapt.updates.files import finite_number, read_json_object, tensor_problems, tensor_table

    names = {p.name for p in Path(update_dir).iterdir()}
    if names != ADAPTER_FILES | set(extra):
        wanted = sorted(ADAPTER_FILES | set(extra))
        return [f"an adapter holds exactly {', '.join(wanted)}, not {', '.join(sorted(names))}"]
    config, problem = read_json_object(Path(update_dir) / "adapter_config.json")
    if problem:
        return [problem]
    problems = config_problems(config, dora)
    if problems:
        return problems
    ranks = [config.get("r"), *(config.get("rank_pattern") or {}).values()]
    alphas = [config.get("lora_alpha"), *(config.get("alpha_pattern") or {}).values()]
    if config.get("peft_type") != "LORA" or not all(isinstance(r, int) and 1 <= r <= 65536 for r in ranks):
        return ["adapter_config.json: not a LoRA adapter config with ranks between 1 and 65536"]
    if not all(finite_number(a) for a in alphas):
        return ["adapter_config.json: lora_alpha must be a finite number"]
    norm = math.sqrt if config.get("use_rslora") else float
    if max(abs(a) for a in alphas) / min(norm(r) for r in ranks) > MAX_SCALING:
        return [f"adapter_config.json: scaling alpha/r above {MAX_SCALING:g}"]
    path = Path(update_dir) / "adapter_model.safetensors"
    try:
        table = tensor_table(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"adapter_model.safetensors: not readable ({exc})"]
    expected = {}
    pattern = re.compile(rf"{re.escape(PREFIX)}(.+)\.(lora_A|lora_B)\.weight")
    magnitude = re.compile(rf"{re.escape(PREFIX)}(.+)\.lora_magnitude_vector")
    for name, (_, shape) in table.items():
        dora = magnitude.fullmatch(name) if config.get("use_dora") else None
        match = pattern.fullmatch(name) or dora
        target = base.get(f"{match.group(1)}.weight") if match else None
        if target is None or len(target[1]) != 2 or len(shape) != (1 if dora else 2):
            return [f"adapter_model.safetensors: '{name[:80]}' names no linear weight of the base model"]
        out_features, in_features = target[1]
        if dora:
            expected[name] = (target[0], [out_features])
            continue
        rank = shape[0] if match.group(2) == "lora_A" else shape[1]
        if rank not in ranks:
            return [f"adapter_model.safetensors: '{name[:80]}' has rank {rank}, not one of its config's"]
        expected[name] = (
            target[0],
            [rank, in_features] if match.group(2) == "lora_A" else [out_features, rank],
        )
    return tensor_problems(path, expected)


def merge(model: nn.Module) -> nn.Module:
    return model.merge_and_unload()


@contextmanager
def scaled(tuned: nn.Module, base: nn.Module | None, s: float) -> Iterator[nn.Module]:
    """The adapted model with every adapter's scaling multiplied by s while inside (s=0: the base model)."""
    from peft.helpers import rescale_adapter_scale

    with rescale_adapter_scale(tuned, float(s)):
        yield tuned


@contextmanager
def merged_scaled(tuned: nn.Module, base: nn.Module, s: float) -> Iterator[nn.Module]:
    """A merged copy of the adapted model at weights base + s·(merged − base).

    For adapters whose scale-0 model is not the base (DoRA's magnitude, PiSSA's residual base weights), the
    path from the base to the tuned model is taken on merged weights instead, as for full fine-tuning.
    """
    merged = copy.deepcopy(tuned).merge_and_unload()
    with sft.scaled(merged, base, s) as model:
        yield model


ADAPTER = Capabilities(
    lora_family=True, mergeable=True, gguf=None, device_holds="the base model plus the adapter, or merged"
)


AFTER_MERGE = {"merged, then NF4": sft.nf4}

PEFT_ADAPTER = {
    "check": check,
    "prepare": prepare,
    "save_update": save_update,
    "loader": "peft",
    "load_tuned": load_tuned,
    "merge": merge,
    "scaled": scaled,
    "check_files": check_files,
    "deploy_variants": AFTER_MERGE,
    "capabilities": ADAPTER,
}
"""What every method that ships a plain PEFT LoRA folder shares; a variant overrides what it does differently."""

register(
    name="lora",
    description=(
        "PEFT LoRA (by default r=8, alpha=16, on every attention and MLP projection); the update is the adapter"
    ),
    Config=Config,
    **PEFT_ADAPTER,
)
