"""Single models made from a library, the baselines a router must beat:

- `merged`: every expert combined into one adapter by PEFT's `add_weighted_adapter` and folded into the
  base: `cat` with weights 1/N is exactly the mean of the experts' ΔW ("all adapters averaged"); `svd`
  (PEFT's default) re-factors that mean at the experts' rank; `linear` averages A and B separately;
- `arrow`: PEFT's own Arrow routing (`create_arrow_model`): per token and layer, the experts whose
  prototype (top right singular vector of B·A) best matches the token, softmax-mixed; no router training,
  every expert computed for every token, no way to stay on the base. With `use_gks`, GenKnowSub first
  subtracts the mean of general-text adapters from every expert.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from edgeadapt.updates.library import Library

COMBINATIONS = ("cat", "svd", "linear")


def merged_model(library: Library, base: nn.Module, combination: str = "cat") -> nn.Module:
    """The base with the library's experts combined (equal weights) and merged: a plain model."""
    if combination not in COMBINATIONS:
        raise ValueError(f"combination must be one of {COMBINATIONS}, got {combination}")
    names = list(library.experts)
    model = library.load(base, names)
    weights = [1.0 / len(names)] * len(names)
    model.add_weighted_adapter(names, weights, "merged", combination_type=combination)
    model.set_adapter("merged")
    return model.merge_and_unload(adapter_names=["merged"]).eval()


def arrow_model(
    library: Library,
    base: nn.Module,
    top_k: int,
    temperature: float,
    general_dirs: list[Path] | None = None,
    seed: int = 0,
) -> nn.Module:
    """PEFT's Arrow over the library's experts (task adapters task_0..), with GenKnowSub when general adapters
    are given."""
    from peft import ArrowConfig, create_arrow_model

    config = ArrowConfig(
        top_k=min(top_k, len(library.experts)),
        router_temperature=temperature,
        use_gks=bool(general_dirs),
        rng_seed=seed,
    )
    return create_arrow_model(
        base,
        [str(library.expert_dir(n)) for n in library.experts],
        config,
        general_adapter_paths=[str(d) for d in general_dirs] if general_dirs else None,
    ).eval()


@torch.no_grad()
def arrow_choices(model: nn.Module, tokenizer, prompts: list[list[int]], experts: list[str]) -> list[str]:
    """Which expert Arrow leans on most for each prompt: its per-token, per-layer top-k softmax weights
    averaged over the prompt's tokens and every routed layer (Arrow itself has no prompt-level choice).
    PEFT builds the prototypes (and applies GenKnowSub) before it calls the layer, so the hook sees them."""
    from peft.tuners.lora.arrow import ArrowLoraLinearLayer

    totals: dict[int, torch.Tensor] = defaultdict(lambda: torch.zeros(len(experts)))
    current = {"row": 0}

    def record(module, args):
        x = args[0]
        tok = x.reshape(-1, x.shape[-1]).to(module.prototypes.dtype)
        sim = torch.abs(tok @ module.prototypes.T)
        top_v, idx = torch.topk(sim, module.top_k, dim=1)
        score = torch.full_like(sim, float("-inf")).scatter_(1, idx, top_v)
        totals[current["row"]] += torch.softmax(score / module.temperature, dim=1).mean(0).cpu()

    layers = [m for m in model.modules() if isinstance(m, ArrowLoraLinearLayer)]
    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    try:
        for row, prompt in enumerate(prompts):
            current["row"] = row
            model(input_ids=torch.tensor([prompt], device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return [experts[int(totals[row].argmax())] for row in range(len(prompts))]
