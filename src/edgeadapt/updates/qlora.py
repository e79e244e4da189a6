"""`qlora`: QLoRA, a LoRA trained on top of the base model's linear layers frozen in 4-bit NF4 (bitsandbytes,
as ADAPT-Q's frozen blocks are), at the LoRA defaults. The update is the adapter; a device holds the base in
4 bit plus the adapter, unmerged, which is how it is evaluated. Merging into the 4-bit base (dequantize, add,
quantize again) is a deploy variant whose cost `eval.deploy_variants` measures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeadapt.models.quant_choices import BITS, QUANT_TYPES
from edgeadapt.updates import lora
from edgeadapt.updates.registry import Capabilities, register

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn

META_FILE = "qlora.json"


@dataclass
class Config(lora.Config):
    bits: int = 4
    """Precision of the frozen base's linear layers: 4 (bitsandbytes) | 8 | 16 (bf16) | 32 (left as is)."""
    quant_type: str = "nf4"
    """4-bit format: nf4 | fp4."""


def check(cfg: Config, where: str) -> list[str]:
    problems = lora.check(cfg, where)
    if cfg.bits not in BITS or cfg.quant_type not in QUANT_TYPES:
        problems.append(
            f"{where}: bits one of {', '.join(map(str, BITS))}, quant_type one of {', '.join(QUANT_TYPES)}"
        )
    if cfg.bits == 16:  # our bf16 layer is not an nn.Linear, and PEFT puts LoRA only on layers it knows
        problems.append(f"{where}.bits: 16 cannot carry a PEFT LoRA; use 4, 8 or 32")
    return problems


def prepare(model: nn.Module, cfg: Config, calibration: list[dict] | None = None) -> nn.Module:
    from peft import get_peft_model

    from edgeadapt.models.quantize import quantize_blocks

    peft_cfg = lora.peft_config(model, cfg, cfg.rank)
    model.requires_grad_(False)
    quantize_blocks(model, cfg.bits, cfg.quant_type)
    model = get_peft_model(model, peft_cfg)
    model.edgeadapt_qlora = {"bits": cfg.bits, "quant_type": cfg.quant_type}
    return model


def save_update(model: nn.Module, out_dir: Path) -> list[Path]:
    files = lora.save_update(model, out_dir)
    (Path(out_dir) / META_FILE).write_text(json.dumps(model.edgeadapt_qlora))
    return files


def load_tuned(base: nn.Module, update_dir: Path) -> nn.Module:
    """The base quantized as it was in training, with the adapter on top (not merged)."""
    from peft import PeftModel

    from edgeadapt.models.quantize import quantize_blocks

    meta = json.loads((Path(update_dir) / META_FILE).read_text())
    base.requires_grad_(False)
    quantize_blocks(base, meta["bits"], meta["quant_type"])
    model = PeftModel.from_pretrained(base, str(update_dir))
    model.edgeadapt_qlora = meta
    return model


def deployed(model: nn.Module) -> nn.Module:
    """As a device runs it: the quantized base and the adapter apart (merging would requantize)."""
    return model


def merged_into_quantized(model: nn.Module) -> nn.Module:
    """The adapter folded into the quantized base: each weight dequantized, the update added, quantized again.

    By hand, because PEFT wraps bitsandbytes layers on the CPU in its plain LoRA layer, whose merge adds
    the update to the packed 4-bit storage (a shape error)."""
    import torch
    from peft.tuners.lora import LoraLayer
    from torch import nn

    from edgeadapt.models.quantize import dequantized_weight, quantized

    meta = model.edgeadapt_qlora
    deltas = {
        name.removeprefix("base_model.model."): sum(layer.get_delta_weight(a) for a in layer.active_adapters)
        for name, layer in model.named_modules()
        if isinstance(layer, LoraLayer)
    }
    base = model.unload()
    for name, delta in deltas.items():
        parent, _, child = name.rpartition(".")
        frozen = base.get_submodule(name)
        linear = nn.Linear(frozen.in_features, frozen.out_features, bias=frozen.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(dequantized_weight(frozen) + delta.float())
            if frozen.bias is not None:
                linear.bias.copy_(frozen.bias.float())
        setattr(base.get_submodule(parent), child, quantized(linear, meta["bits"], meta["quant_type"]))
    return base


def check_files(update_dir: Path, base: dict[str, tuple[str, list[int]]]) -> list[str]:
    from edgeadapt.updates.files import read_json_object

    meta, problem = read_json_object(Path(update_dir) / META_FILE)
    if problem or meta.get("bits") not in BITS or meta.get("quant_type") not in QUANT_TYPES:
        return [
            problem or f"{META_FILE}: bits and quant_type of the frozen base are not ones this version knows"
        ]
    return lora.check_files(update_dir, base, extra=(META_FILE,))


register(
    name="qlora",
    description="QLoRA: PEFT LoRA (the LoRA defaults) on the base's linear layers frozen in 4-bit NF4",
    Config=Config,
    check=check,
    prepare=prepare,
    save_update=save_update,
    loader="qlora",
    load_tuned=load_tuned,
    merge=deployed,
    scaled=lora.scaled,
    check_files=check_files,
    deploy_variants={"merged into the 4-bit base": merged_into_quantized},
    capabilities=Capabilities(
        lora_family=False,
        mergeable=False,
        gguf="qlora's adapter was trained against the 4-bit base; GGUF holds neither bitsandbytes' NF4 nor "
        "that pairing: export lora or sft instead",
        device_holds="the base with its linear layers in 4-bit NF4, plus the adapter (unmerged)",
    ),
)
