"""What each update did to the model, beyond the outcome metrics (`analysis:` in a config, or
`edgeadapt analyze RUN_DIR`).

- Weight updates ΔW per layer and module (LoRA family: scaling·B·A from PEFT; SFT and adaptq: tuned − base
  for every full-precision linear weight that changed): singular values, effective rank, stable rank, and
  the overlap of ΔW's top-k output directions with the base weight's top-k subspace.
- On general held-out text: per-layer attention entropy of base and tuned model, the Jensen–Shannon
  divergence of their attention maps, and the linear CKA of their hidden states.
- A rank recommendation: among the LoRA-family variants whose general degradation is within
  `analysis.budget_pct`, the best domain accuracy (ties: the smaller update).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from edgeadapt import updates
from edgeadapt.data.format import text_chunks
from edgeadapt.evaluation.spectral import (
    attention_entropy,
    attention_js,
    effective_rank,
    linear_cka,
    singular_values,
    stable_rank,
    subspace_overlap,
)
from edgeadapt.runs.results import add_section
from edgeadapt.runs.run import Run, reopen, trained_results

SPECTRUM_KEEP = 64  # singular values stored per module (the plots show the leading ones)


def weight_updates(tuned: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
    """ΔW of every updated linear module, by the base model's module name."""
    base_modules = dict(base.named_modules())
    deltas = {}
    for name, module in tuned.named_modules():
        plain = name.removeprefix("base_model.model.")
        adapters = list(getattr(module, "lora_A", {}))  # a LoRA layer: ΔW = scaling·B·A of each adapter
        if hasattr(module, "get_delta_weight") and adapters:
            deltas[plain] = sum(module.get_delta_weight(a).detach().float() for a in adapters)
        elif type(module) is nn.Linear and type(base_modules.get(plain)) is nn.Linear and ".layers." in plain:
            delta = (module.weight - base_modules[plain].weight).detach().float()
            if delta.abs().max() > 0:
                deltas[plain] = delta
    return deltas


def update_spectra(tuned: nn.Module, base: nn.Module, top_k: int) -> list[dict[str, Any]]:
    base_modules = dict(base.named_modules())
    rows = []
    for name, delta in weight_updates(tuned, base).items():
        sv = singular_values(delta)
        parts = name.split(".")
        rows.append(
            {
                "module": name,
                "layer": int(parts[parts.index("layers") + 1]),
                "kind": parts[-1],
                "shape": list(delta.shape),
                "singular_values": [float(v) for v in sv[:SPECTRUM_KEEP]],
                "effective_rank": effective_rank(sv),
                "stable_rank": stable_rank(sv),
                "subspace_overlap": subspace_overlap(delta, base_modules[name].weight.detach(), top_k),
                "fro_norm": float(sv.pow(2).sum().sqrt()),
            }
        )
    return rows


@torch.no_grad()
def _forward_all(model: nn.Module, chunks: list[dict[str, list[int]]]) -> tuple[list, list]:
    """Attention maps and hidden states per layer (eager attention, so the maps are returned)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner.set_attn_implementation("eager")
    device = next(model.parameters()).device
    attentions, hidden = [], []
    for chunk in chunks:
        out = model(
            input_ids=torch.tensor([chunk["input_ids"]], device=device),
            output_attentions=True,
            output_hidden_states=True,
        )
        attentions.append([a.float().cpu() for a in out.attentions])
        hidden.append([h[0].float().cpu() for h in out.hidden_states[1:]])
    return attentions, hidden


def representation_drift(base_pass: tuple, tuned_pass: tuple) -> list[dict[str, float]]:
    """Per layer: attention entropy (base, tuned), attention JS divergence, hidden-state CKA."""
    (base_att, base_hid), (tuned_att, tuned_hid) = base_pass, tuned_pass
    layers = []
    for layer in range(len(base_att[0])):
        b_att = torch.cat([chunk[layer] for chunk in base_att])
        t_att = torch.cat([chunk[layer] for chunk in tuned_att])
        layers.append(
            {
                "layer": layer,
                "attention_entropy_base": attention_entropy(b_att),
                "attention_entropy": attention_entropy(t_att),
                "attention_js": attention_js(b_att, t_att),
                "cka": linear_cka(
                    torch.cat([chunk[layer] for chunk in base_hid]),
                    torch.cat([chunk[layer] for chunk in tuned_hid]),
                ),
            }
        )
    return layers


def summarize(spectra: list[dict], drift: list[dict]) -> dict[str, float | None]:
    def mean(rows, key):
        return statistics.fmean(r[key] for r in rows) if rows else None

    return {
        "modules_updated": len(spectra),
        "mean_effective_rank": mean(spectra, "effective_rank"),
        "mean_stable_rank": mean(spectra, "stable_rank"),
        "mean_subspace_overlap": mean(spectra, "subspace_overlap"),
        "mean_attention_js": mean(drift, "attention_js"),
        "mean_cka": mean(drift, "cka"),
        "min_cka": min(r["cka"] for r in drift) if drift else None,
    }


def recommend_rank(results: dict[str, Any], budget_pct: float) -> dict[str, Any] | None:
    """The LoRA-family variant with the best domain accuracy within the forgetting budget."""
    candidates = {
        name: m
        for name, m in results["methods"].items()
        if m["options"].get("method") in updates.METHODS
        and updates.get(m["options"]["method"]).capabilities.lora_family
    }
    if not candidates:
        return None
    within = {n: m for n, m in candidates.items() if m["general_degradation_pct"] <= budget_pct}
    base_accuracy = results.get("base", {}).get("domain_accuracy", 0.0)
    learned = {n: m for n, m in candidates.items() if m["domain_accuracy"] > base_accuracy}
    summary = {
        "budget_pct": budget_pct,
        "candidates": len(candidates),
        "within_budget": len(within),
        # What the budget would have to allow: the variant that learned anything at the least forgetting.
        "nearest": _variant(min(learned, key=lambda n: learned[n]["general_degradation_pct"]), learned)
        if learned
        else None,
    }
    if not within:
        return {**summary, "variant": None, "reason": "no LoRA-family variant stayed within the budget"}
    name = max(within, key=lambda n: (within[n]["domain_accuracy"], -within[n]["update_bytes"]["fp32"]))
    if name not in learned:
        return {
            **summary,
            "variant": None,
            "reason": "no variant within the budget beat the base model's accuracy",
        }
    return {
        **summary,
        **_variant(name, within),
        "reason": "best domain accuracy within the budget (ties: smaller update)",
    }


def _variant(name: str, methods: dict[str, Any]) -> dict[str, Any]:
    m = methods[name]
    return {
        "variant": name,
        "rank": m["options"].get("rank"),
        "scaling": m["options"].get("scaling"),
        "domain_accuracy": m["domain_accuracy"],
        "general_degradation_pct": m["general_degradation_pct"],
    }


def analyze(run: Run, results: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """The `analysis` section of a run's results: per method spectra, drift and summary; a recommendation."""
    cfg = run.cfg.analysis
    dtype = run.dtype
    chunks = text_chunks(run.tokenizer, run.data.general_text, run.cfg.eval.chunk_tokens, cfg.chunks)
    base = run.load_model(dtype)
    base_pass = _forward_all(base, chunks)
    out: dict[str, Any] = {"top_k": cfg.top_k, "chunks": len(chunks), "methods": {}}
    for name in tqdm(list(trained_results(run)), desc="analysis", leave=False, disable=None):
        log(f"[{name}] analysing the update")
        tuned = run.open(name, dtype, merge=False).model  # unmerged: an adapter's ΔW is read from it
        spectra = update_spectra(tuned, base, cfg.top_k)
        drift = representation_drift(base_pass, _forward_all(tuned, chunks))
        out["methods"][name] = {"summary": summarize(spectra, drift), "modules": spectra, "layers": drift}
        del tuned
    out["recommendation"] = recommend_rank(results, cfg.budget_pct)
    return out


def add_analysis(run: Run, results: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Add the `analysis` section to a run's results and rewrite results.json."""
    return add_section(run.dir, results, "analysis", analyze(run, results, log))


def analyze_run(
    run_dir: str, overrides: list[str] = (), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """`edgeadapt analyze RUN_DIR [analysis.KEY=VALUE ...]`: the analysis of a finished run."""
    run, results = reopen(run_dir, overrides, "analysis")
    return add_analysis(run, results, log)
