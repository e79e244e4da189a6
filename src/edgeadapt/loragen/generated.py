"""What the generator's weights do to the edge model.

- `GeneratedLoRAModel`: the frozen base model with a LoRA generated for each row of a batch (rows of
  different tasks train together), applied by forward hooks on the target modules. The training loop trains
  it like any model; only the generator's weights are trainable, and only they are checkpointed.
- `write_adapter`: one description's generated weights as an ordinary PEFT LoRA folder
  (adapter_config.json, adapter_model.safetensors), beside `edgeadapt.json` saying where it came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeadapt.core.errors import UserError

ADAPTER_INFO = "edgeadapt.json"


class GeneratedLoRAModel(nn.Module):
    """`task` of a batch: the index of each row's training description (the generator's own numbering)."""

    def __init__(self, base: nn.Module, generator: nn.Module):
        super().__init__()
        self.generator = generator
        object.__setattr__(
            self, "base", base
        )  # not a submodule: checkpoints and the optimizer hold the generator
        for p in base.parameters():
            p.requires_grad_(False)
        self.config = base.config  # the Trainer reads it
        # The Trainer counts the scored tokens of a batch over labels[..., 1:] only for models whose loss shifts
        # labels, which it reads from `loss_type`: without it every row's loss would be divided by one token too
        # many (a general chunk's perplexity came out 3% low).
        self.loss_type = getattr(base, "loss_type", None)
        self.accepts_loss_kwargs = False
        self._weights: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._hooks = [
            base.get_submodule(path).register_forward_hook(self._hook(name, layer))
            for name, paths in generator.cfg.module_paths.items()
            for layer, path in enumerate(paths)
        ]

    def _hook(self, name: str, layer: int):
        scaling = self.generator.cfg.scaling

        def add_generated(module, inputs, output):
            if self._weights is None:
                return output
            a, b = self._weights[name]
            with full_precision(output):
                low = torch.einsum("bti,bri->btr", inputs[0].to(a.dtype), a[:, layer])
                added = scaling * torch.einsum("btr,bor->bto", low, b[:, layer])
            return output + added.to(output.dtype)

        return add_generated

    def forward(self, input_ids, attention_mask=None, labels=None, task=None, logits_to_keep=None, **kwargs):
        with full_precision(input_ids):
            self._weights = self.generator.for_descriptions(task)
        try:
            extra = {} if logits_to_keep is None else {"logits_to_keep": logits_to_keep}
            return self.base(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra)
        finally:
            self._weights = None

    def remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()


def full_precision(tensor: torch.Tensor):
    """Autocast off: the generator (its gates, its experts' sums) and the generated adapter's path multiply in
    fp32 while the frozen base model multiplies in bf16 under `train.precision: bf16`, as `loragen make`
    computes them. Whole-bf16 training cost the pool 4.2 points on seen tasks, this 2.4 ± 1.6
    (docs/RESULTS.md, "One full run"); these products are small beside the base model's."""
    return torch.autocast(tensor.device.type, enabled=False)


@torch.no_grad()
def adapter_tensors(generator: nn.Module, read: torch.Tensor) -> dict[str, torch.Tensor]:
    """PEFT's tensor names and values for one description, from what the generator read of it (`read`)."""
    weights = generator.weights(read[:1])
    tensors = {}
    for name, (a, b) in weights.items():
        for layer, path in enumerate(generator.cfg.module_paths[name]):
            tensors[f"base_model.model.{path}.lora_A.weight"] = a[0, layer].contiguous()
            tensors[f"base_model.model.{path}.lora_B.weight"] = b[0, layer].contiguous()
    return tensors


def write_adapter(
    generator: nn.Module, tensors: dict[str, torch.Tensor], out: Path, info: dict[str, Any]
) -> Path:
    """An ordinary PEFT LoRA folder; `info` (description, generator, timings) goes to edgeadapt.json."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    cfg = generator.cfg
    out.mkdir(parents=True, exist_ok=True)
    LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.scaling * cfg.rank,  # the pool materializes k experts at k times their rank
        target_modules=sorted(cfg.modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=cfg.base_model,
    ).save_pretrained(str(out))
    save_file(tensors, str(out / "adapter_model.safetensors"))
    (out / ADAPTER_INFO).write_text(
        json.dumps(
            {"method": "lora", "base_model": cfg.base_model, "generator_kind": cfg.kind, **info}, indent=1
        )
    )
    return out


def target_modules(model: nn.Module, names: list[str]) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """The base model's linear layers named `names` (q_proj, v_proj), one per decoder layer, in order."""
    from edgeadapt.models.structure import decoder_layers

    layers = decoder_layers(model)
    prefix = {id(layer): i for i, layer in enumerate(layers)}
    full = {module: name for name, module in model.named_modules()}
    shapes: dict[str, list[int]] = {}
    paths: dict[str, list[str]] = {n: [""] * len(layers) for n in names}
    for layer in layers:
        index = prefix[id(layer)]
        for sub_name, sub in layer.named_modules():
            short = sub_name.rsplit(".", 1)[-1]
            if short in names and isinstance(sub, nn.Linear):
                shapes[short] = [sub.in_features, sub.out_features]
                paths[short][index] = full[sub]
    missing = [n for n in names if n not in shapes or "" in paths[n]]
    if missing:
        raise UserError(
            f"loragen.targets: the model has no linear '{missing[0]}' in every decoder layer "
            "(SmolLM2 and Gemma: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)."
        )
    return shapes, paths
