"""Cross-domain transfer: every method trained on every domain, every model evaluated on every domain.

`edgeadapt transfer CONFIG` trains each variant in `methods` on each pack of `transfer.domains` (one
sub-run per domain, OUT_DIR/NAME/on-DOMAIN/, resumable), then evaluates the base model and every tuned
model on each domain's test set (perplexity and exact-match accuracy) and on general held-out text. From
the perplexities, with S = 1/PPL, θ0 the base and θ_i the model tuned on domain i:

- DSI_i = [S_i(θ_i)/S_i(θ0)] / [S_G(θ_i)/S_G(θ0)]  (Domain Specialization Index);
- GG_i = (S_G(θ0) − S_G(θ_i)) / S_G(θ0)            (Generalization Gap);
- CDTR(i→j) = (S_j(θ_i) − S_j(θ0)) / (S_j(θ_j) − S_j(θ0)), i ≠ j  (Cross-Domain Transfer Ratio);
- cross-domain accuracy: mean ± sample standard deviation of the off-diagonal accuracies.

The results go to OUT_DIR/NAME/transfer.json (written last, atomically); `edgeadapt.reports.transfer`
renders transfer.md/.html from it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from edgeadapt import __version__, models
from edgeadapt.core.config import RunConfig, to_dict
from edgeadapt.core.files import write_json_atomic
from edgeadapt.evaluation.metrics import cdtr, degradation_pct, dsi, generalization_gap, mean_std
from edgeadapt.evaluation.sets import eval_sets
from edgeadapt.evaluation.suite import scores_by_domain
from edgeadapt.inference.predictor import Predictor, perplexity
from edgeadapt.runs.results import versions
from edgeadapt.runs.run import Run
from edgeadapt.studies.train import train_run

RESULTS = "transfer.json"


def domain_runs(cfg: RunConfig) -> dict[str, Run]:
    """One run per domain under OUT_DIR/NAME/, sharing everything but the domain data."""
    runs = {}
    for domain in cfg.transfer.domains:
        sub = copy.deepcopy(cfg)
        sub.data.domain, sub.out_dir, sub.name = domain, str(cfg.run_dir()), f"on-{domain}"
        runs[domain] = Run(sub)
    return runs


def score_model(predictor: Predictor, sets: dict, general_chunks, cfg: RunConfig) -> dict[str, Any]:
    """Perplexity and accuracy on every domain's test set, and general perplexity."""
    return {
        "general_ppl": perplexity(predictor, general_chunks, cfg.eval.batch_size, "general perplexity"),
        "domains": scores_by_domain(predictor, sets, cfg.eval),
    }


def transfer_metrics(base: dict[str, Any], tuned: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """DSI, GG and CDTR from perplexities (S = 1/PPL), and the off-diagonal accuracy of one method.

    `base` and each `tuned[i]` (the model tuned on domain i) hold general_ppl and domains[j] scores.
    """
    domains = list(tuned)

    def s(scores, j):
        return 1 / scores["domains"][j]["domain_ppl"]

    s_g0 = 1 / base["general_ppl"]
    off_diagonal = [tuned[i]["domains"][j]["domain_accuracy"] for i in domains for j in domains if i != j]
    mean, std = mean_std(off_diagonal)
    return {
        "dsi": {i: dsi(s(tuned[i], i), s(base, i), 1 / tuned[i]["general_ppl"], s_g0) for i in domains},
        "gg": {i: generalization_gap(1 / tuned[i]["general_ppl"], s_g0) for i in domains},
        "general_degradation_pct": {
            i: degradation_pct(tuned[i]["general_ppl"], base["general_ppl"]) for i in domains
        },
        "cdtr": {
            i: {j: cdtr(s(tuned[i], j), s(base, j), s(tuned[j], j)) for j in domains if j != i}
            for i in domains
        },
        "cross_domain_accuracy": {"mean": mean, "std": std, "n": len(off_diagonal)},
    }


def transfer_run(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`edgeadapt transfer CONFIG`: train, evaluate the full matrix, write transfer.json and reports."""
    started = time.perf_counter()
    runs = domain_runs(cfg)  # every domain's data and every method's options are checked before work
    out_dir = cfg.run_dir()
    # the previous summary stays until the new one replaces it whole: a stopped study loses nothing
    trained = {domain: train_run(run, resume, log) for domain, run in runs.items()}
    first = next(iter(runs.values()))
    sets = {domain: eval_sets(run.data, run.tokenizer, run.cfg) for domain, run in runs.items()}
    general = sets[cfg.transfer.domains[0]].general_chunks
    log("[base] evaluating on every domain")
    base = score_model(first.open(), sets, general, cfg)
    matrix: dict[str, dict[str, Any]] = {}
    for variant in first.method_cfgs:
        matrix[variant] = {}
        for domain, run in runs.items():
            log(f"[{variant} tuned on {domain}] evaluating on every domain")
            tuned = run.open(variant)  # merged, as a device runs it
            matrix[variant][domain] = score_model(tuned, sets, general, cfg)
            del tuned
    results = {
        "edgeadapt_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": first.device.type,
        "versions": versions(),
        "seconds": round(
            time.perf_counter()
            - started
            + sum(r.seconds for per_domain in trained.values() for r in per_domain.values()),
            1,
        ),
        "model": models.model_info(first.model_path),
        "domains": list(runs),
        "rows": {domain: run.data.sizes() for domain, run in runs.items()},
        "config": to_dict(cfg),
        "base": base,
        "methods": {
            variant: {
                "lr": first.method_cfgs[variant].lr,
                "trained_on": per_domain,
                "metrics": transfer_metrics(base, per_domain),
            }
            for variant, per_domain in matrix.items()
        },
    }
    write_json_atomic(out_dir / RESULTS, results)
    return results
