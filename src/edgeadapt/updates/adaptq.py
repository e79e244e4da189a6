"""`adaptq`: ADAPT-Q, full-rank tuning of the blocks that respond most to the domain, the rest frozen in 4 bit.

1. Profile: the frozen model reads `profile_samples` domain training rows; each transformer block's score
   is the mean absolute value of its output hidden states over the real (unpadded) tokens.
2. Select K = floor(alpha × blocks) blocks (at least 1) by `selection`: activation (highest scores),
   first, last, or random (seeded); or name them with `layers`.
3. Train every linear weight of the selected blocks at full rank in full precision (`update: full`), or a
   LoRA adapter on them (`update: lora`: the paper's text allows both readings; full is the default).
   Embeddings and head stay frozen unless `train_embeddings`.
4. Replace every linear layer of the other blocks by a frozen `frozen_bits` version (NF4 by default).

The update a device receives is the selected blocks' linear weights (or the adapter); the device quantizes
the other blocks of its base model the same way, so `load_tuned` does exactly that. At recovery scale s the
selected weights move back toward the base; the other blocks stay quantized, so s=0 is the quantized base.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeadapt.core.errors import UserError
from edgeadapt.models.quant_choices import BITS, QUANT_TYPES
from edgeadapt.models.structure import decoder_layers as blocks
from edgeadapt.updates import lora
from edgeadapt.updates.registry import Capabilities, register

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn

SELECTIONS = ("activation", "first", "last", "random")
UPDATES = ("full", "lora")
UPDATE_FILE = "adaptq_update.safetensors"
META_FILE = "adaptq.json"


@dataclass
class Config:
    lr: float = 5e-5
    """Learning rate (full-rank weights, as for SFT)."""
    alpha: float = 0.5
    """Share of the transformer blocks to train: K = floor(alpha × blocks), at least 1."""
    layers: list[int] | None = None
    """Block indices to train, instead of selecting them."""
    selection: str = "activation"
    """activation (highest mean |output|) | first | last | random (seeded by `seed`)."""
    profile_samples: int = 64
    """Domain training rows read to score the blocks."""
    frozen_bits: int = 4
    """Precision of the frozen blocks' linear layers: 4 (bitsandbytes) | 8 | 16 (bf16) | 32 (unchanged)."""
    quant_type: str = "nf4"
    """4-bit format: nf4 | fp4."""
    update: str = "full"
    """full (every linear weight of the selected blocks) | lora (an adapter on them)."""
    lora_rank: int = 8
    lora_alpha: float = 16
    train_embeddings: bool = False
    """Also train the token embeddings (tied to the head in SmolLM2); they then join the update."""
    seed: int = 0


def check(cfg: Config, where: str) -> list[str]:
    problems = [f"{where}.lr: must be > 0, got {cfg.lr}"] if cfg.lr <= 0 else []
    if not 0 < cfg.alpha <= 1:
        problems.append(f"{where}.alpha: must be in (0, 1], got {cfg.alpha}")
    for key, value, allowed in (
        ("selection", cfg.selection, SELECTIONS),
        ("frozen_bits", cfg.frozen_bits, BITS),
        ("quant_type", cfg.quant_type, QUANT_TYPES),
        ("update", cfg.update, UPDATES),
    ):
        if value not in allowed:
            problems.append(f"{where}.{key}: must be one of {', '.join(map(str, allowed))}, got '{value}'")
    if cfg.lora_rank < 1:
        problems.append(f"{where}.lora_rank: must be ≥ 1, got {cfg.lora_rank}")
    if cfg.profile_samples < 1:
        problems.append(f"{where}.profile_samples: must be ≥ 1, got {cfg.profile_samples}")
    if cfg.layers is not None and (not cfg.layers or any(i < 0 for i in cfg.layers)):
        problems.append(f"{where}.layers: list block indices ≥ 0 (e.g. [10, 11]), got {cfg.layers}")
    return problems


def profile(model: nn.Module, rows: list[dict[str, list[int]]], batch_size: int = 8) -> list[float]:
    """Mean |output hidden state| of every block over the real tokens of `rows` (input_ids lists)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    layers, device = blocks(model), next(model.parameters()).device
    sums = [0.0] * len(layers)
    state = {"mask": None}

    def hook(index):
        def record(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            mask = state["mask"].unsqueeze(-1).to(hidden.dtype)
            sums[index] += float((hidden.abs().float() * mask).sum())

        return record

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    was_training, values = model.training, 0
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                chunk = [torch.tensor(r["input_ids"]) for r in rows[start : start + batch_size]]
                # Right-padded; the mask keeps padding out of the scores (its token id does not matter).
                ids = pad_sequence(chunk, batch_first=True).to(device)
                state["mask"] = pad_sequence([torch.ones_like(c) for c in chunk], batch_first=True).to(device)
                model(input_ids=ids, attention_mask=state["mask"])
                values += sum(map(len, chunk)) * model.config.hidden_size
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [s / values for s in sums]


def select(scores: list[float], cfg: Config) -> list[int]:
    """The indices of the blocks to train, in increasing order."""
    count = len(scores)
    if cfg.layers is not None:
        bad = [i for i in cfg.layers if i >= count]
        if bad:
            raise UserError(
                f"methods.adaptq.layers: block {bad[0]} does not exist (the model has 0..{count - 1})."
            )
        return sorted(set(cfg.layers))
    k = max(1, math.floor(cfg.alpha * count))
    order = {
        "activation": sorted(range(count), key=lambda i: (-scores[i], i)),
        "first": list(range(count)),
        "last": list(range(count))[::-1],
        "random": random.Random(cfg.seed).sample(range(count), count),
    }[cfg.selection]
    return sorted(order[:k])


def selected_linear_names(model: nn.Module, selected: list[int]) -> list[str]:
    """Parameter names of the linear weights (and biases) inside the selected blocks."""
    from torch import nn

    layers = blocks(model)
    prefix = next(n for n, m in model.named_modules() if m is layers)
    names = []
    for index in selected:
        for name, module in layers[index].named_modules():
            if type(module) is nn.Linear:
                names += [
                    f"{prefix}.{index}.{name}.{p}" for p, v in module.named_parameters() if v is not None
                ]
    return names


def embedding_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight]


def _quantize_others(model: nn.Module, meta: dict[str, Any]) -> None:
    from edgeadapt.models.quantize import quantize_linears

    for index, block in enumerate(blocks(model)):
        if index not in meta["selected_layers"]:
            quantize_linears(block, meta["frozen_bits"], meta["quant_type"])


def _lora_config(model: nn.Module, cfg: Config, selected: list[int]):
    layers = blocks(model)
    prefix = next(n for n, m in model.named_modules() if m is layers)
    pattern = (
        rf"{re.escape(prefix)}\.({'|'.join(map(str, selected))})\..*\.({'|'.join(lora.ALL_PROJECTIONS)})"
    )
    options = lora.Config(rank=cfg.lora_rank, alpha=cfg.lora_alpha, targets=lora.ALL_PROJECTIONS)
    peft_cfg = lora.peft_config(model, options, cfg.lora_rank)
    peft_cfg.target_modules = pattern  # a string is matched as a full regex on module names
    return peft_cfg


def prepare(model: nn.Module, cfg: Config, calibration: list[dict] | None = None) -> nn.Module:
    if cfg.selection == "activation" and cfg.layers is None and not calibration:
        raise ValueError("adaptq's activation selection needs domain rows to profile (calibration).")
    scores = profile(model, calibration[: cfg.profile_samples]) if calibration else []
    selected = select(scores or [0.0] * len(blocks(model)), cfg)
    meta = {"selected_layers": selected, "layer_scores": scores, **asdict(cfg)}
    model.requires_grad_(False)
    if cfg.update == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(model, cfg, selected))
        meta["update_keys"] = []
    else:
        meta["update_keys"] = selected_linear_names(model, selected)
    params = dict(model.named_parameters())
    for name in meta["update_keys"] + (embedding_names(model) if cfg.train_embeddings else []):
        params[name].requires_grad_(True)
    if cfg.train_embeddings:
        meta["update_keys"] = meta["update_keys"] + embedding_names(model)
    _quantize_others(model, meta)
    model.edgeadapt_adaptq = meta
    return model


def save_update(model: nn.Module, out_dir: Path) -> list[Path]:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    meta = model.edgeadapt_adaptq
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))
    params = dict(model.named_parameters())
    files = []
    if meta["update_keys"]:
        # Clones: safetensors refuses tensors that share storage (tied embeddings).
        weights = {k: params[k].detach().to("cpu").clone().contiguous() for k in meta["update_keys"]}
        save_file(weights, str(out_dir / UPDATE_FILE), metadata={"format": "pt", "method": "adaptq"})
        files.append(out_dir / UPDATE_FILE)
    if meta["update"] == "lora":
        files += lora.save_update(model, out_dir)
    return files


def load_tuned(base: nn.Module, update_dir: Path) -> nn.Module:
    import torch
    from safetensors.torch import load_file

    meta = json.loads((update_dir / META_FILE).read_text())
    model = base
    if meta["update"] == "lora":
        model = lora.load_tuned(base, update_dir)
    if meta["update_keys"]:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for key, value in load_file(str(update_dir / UPDATE_FILE)).items():
                params[key].copy_(value)
    model.requires_grad_(False)
    _quantize_others(model, meta)
    model.edgeadapt_adaptq = meta
    return model


def check_files(update_dir: Path, base: dict[str, tuple[str, list[int]]]) -> list[str]:
    """A received ADAPT-Q update: its record names blocks and precisions that exist, its weights are base
    tensors of the same shape (and an adapter, when it trained one)."""
    from edgeadapt.updates.files import read_json_object, tensor_problems

    meta, problem = read_json_object(Path(update_dir) / META_FILE)
    if problem:
        return [problem]
    blocks_in_base = {int(n.split(".")[2]) for n in base if n.startswith("model.layers.")}
    layers, keys = meta.get("selected_layers"), meta.get("update_keys")
    if (
        not isinstance(layers, list)
        or not all(isinstance(i, int) and i in blocks_in_base for i in layers)
        or meta.get("frozen_bits") not in BITS
        or meta.get("quant_type") not in QUANT_TYPES
        or meta.get("update") not in UPDATES
        or not isinstance(keys, list)
        or not all(isinstance(k, str) and k in base for k in keys)
    ):
        return [f"{META_FILE}: not an ADAPT-Q record for this base (blocks, precision, update keys)"]
    problems = []
    if keys:
        problems += tensor_problems(Path(update_dir) / UPDATE_FILE, {k: base[k] for k in keys})
    if meta["update"] == "lora":
        adapter = Path(update_dir)
        from edgeadapt.updates.files import tensor_table

        names = {p.name for p in adapter.iterdir()} - {META_FILE, UPDATE_FILE}
        if names != lora.ADAPTER_FILES:
            return problems + ["an ADAPT-Q lora update holds its adapter files"]
        try:
            tensor_table(adapter / "adapter_model.safetensors")
        except (OSError, ValueError) as exc:
            return problems + [f"adapter_model.safetensors: not readable ({exc})"]
    return problems


def merge(model: nn.Module) -> nn.Module:
    """The LoRA variant folds its adapter into the (full-precision) selected blocks; full has nothing to fold."""
    if model.edgeadapt_adaptq["update"] == "lora":
        meta = model.edgeadapt_adaptq
        model = lora.merge(model)
        model.edgeadapt_adaptq = meta
    return model


def describe(model: nn.Module) -> dict[str, Any]:
    """What results.json records for adaptq beyond the shared metrics."""
    meta = model.edgeadapt_adaptq
    return {
        "selected_layers": meta["selected_layers"],
        "layer_scores": meta["layer_scores"],
        "frozen_bits": meta["frozen_bits"],
    }


@contextmanager
def scaled(tuned: nn.Module, base: nn.Module, s: float) -> Iterator[nn.Module]:
    """Selected weights at base + s·(tuned − base) (or the adapter at scale s); the rest stays quantized."""
    meta = tuned.edgeadapt_adaptq
    if meta["update"] == "lora":
        with lora.scaled(tuned, base, s) as model:
            yield model
        return
    import torch

    base_params, params = dict(base.named_parameters()), dict(tuned.named_parameters())
    saved = {k: params[k].detach().clone() for k in meta["update_keys"]}
    with torch.no_grad():
        for key, value in saved.items():
            params[key].copy_(base_params[key] + s * (value - base_params[key]))
    try:
        yield tuned
    finally:
        with torch.no_grad():
            for key, value in saved.items():
                params[key].copy_(value)


register(
    name="adaptq",
    description="ADAPT-Q: full-rank tuning of the blocks most active on the domain, the others frozen in 4 bit",
    Config=Config,
    check=check,
    prepare=prepare,
    save_update=save_update,
    loader="adaptq",
    load_tuned=load_tuned,
    merge=merge,
    scaled=scaled,
    check_files=check_files,
    describe=describe,
    capabilities=Capabilities(
        lora_family=False,
        mergeable=False,
        gguf="adaptq keeps its frozen blocks in bitsandbytes 4-bit, which GGUF cannot hold: export sft or an "
        "adapter method, or quantize the GGUF with llama.cpp's tools",
        device_holds="the base model with the unselected blocks in 4 bit, plus the selected blocks' weights",
    ),
)
