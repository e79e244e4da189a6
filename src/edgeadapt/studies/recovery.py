"""Capability recovery: move each tuned model part of the way back to the base, without retraining.

For an adapter the scaling is multiplied by s; for SFT the weights become base + s·(tuned − base), the
comparable move. At each s the domain and general metrics are measured; `s_star` is the largest s whose
general degradation stays within the forgetting budget, with the domain accuracy left there. Run it with
`edgeadapt recover RUN_DIR` on a finished run, or `recovery.enabled: true` in a compare config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from edgeadapt.core.config import RecoveryConfig
from edgeadapt.evaluation.metrics import degradation_pct
from edgeadapt.evaluation.sets import eval_sets
from edgeadapt.evaluation.suite import domain_and_general
from edgeadapt.inference.predictor import ModelPredictor
from edgeadapt.runs.results import add_section
from edgeadapt.runs.run import Run, reopen, trained_results


def s_star(points: list[dict[str, float]], budget_pct: float) -> dict[str, float] | None:
    """The point with the largest s whose general degradation is within the budget (None if none is)."""
    within = [p for p in points if p["general_degradation_pct"] <= budget_pct]
    return max(within, key=lambda p: p["s"]) if within else None


def recovery_curves(
    run: Run, recovery: RecoveryConfig, base_general_ppl: float, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Evaluate every trained method at every scale; return curves and s_star per method.

    `base_general_ppl` is the base model's figure from the run's results, measured on the same sets.
    """
    trained = trained_results(run)
    dtype = run.dtype
    sets = eval_sets(run.data, run.tokenizer, run.cfg)
    base = run.load_model(dtype)  # s=0 for adapters, and the end point SFT interpolates from
    out: dict[str, Any] = {
        "budget_pct": recovery.budget_pct,
        "scales": sorted(recovery.scales),
        "methods": {},
    }
    for name in trained:
        log(f"[{name}] recovery over s = {', '.join(f'{s:g}' for s in sorted(recovery.scales))}")
        method = run.method(name)
        tuned = run.open(name, dtype, merge=False).model  # unmerged: its update can be scaled
        points = []
        for s in tqdm(sorted(recovery.scales), desc=f"{name} scales", leave=False, disable=None):
            with method.scaled(tuned, base, s) as model:
                predictor = ModelPredictor(model, run.tokenizer)
                metrics, _ = domain_and_general(predictor, sets, run.cfg.eval)
            metrics["general_degradation_pct"] = degradation_pct(metrics["general_ppl"], base_general_ppl)
            points.append({"s": s, **metrics})
        best = s_star(points, recovery.budget_pct)
        out["methods"][name] = {
            "curve": points,
            "s_star": best["s"] if best else None,
            "domain_accuracy_at_s_star": best["domain_accuracy"] if best else None,
            "general_degradation_pct_at_s_star": best["general_degradation_pct"] if best else None,
        }
        del tuned
    return out


def add_recovery(run: Run, results: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Add the `recovery` section to a run's results and rewrite results.json."""
    curves = recovery_curves(run, run.cfg.recovery, results["base"]["general_ppl"], log)
    return add_section(run.dir, results, "recovery", curves)


def recover_run(
    run_dir: str, overrides: list[str] = (), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """`edgeadapt recover RUN_DIR [recovery.KEY=VALUE ...]`: recovery curves for a finished run."""
    run, results = reopen(run_dir, overrides, "recovery")
    return add_recovery(run, results, log)
