"""`edgeadapt eval`: the base model and every tuned one of a trained run on the same sets, then results.

Every model is asked through a predictor, tuned models with their update merged as a device runs them.
Each model's metrics are also saved beside its update, so a sweep that resumes evaluates only what is new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

import torch

from edgeadapt import __version__, models
from edgeadapt.core.config import RunConfig, to_dict
from edgeadapt.evaluation.metrics import degradation_pct, retention
from edgeadapt.evaluation.sets import eval_sets, topic_space
from edgeadapt.evaluation.suite import EvalSets, evaluate_model, other_domain_scores
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.predictor import Predictor
from edgeadapt.models.quantize import weight_bytes
from edgeadapt.runs import results as results_io
from edgeadapt.runs.run import Run, trained_results
from edgeadapt.training.loop import TrainResult
from edgeadapt.updates.sizes import update_size


def other_domain_sets(run: Run) -> dict[str, EvalSets]:
    """Test sets of `eval.other_domains`, for out-of-domain accuracy."""
    import copy

    from edgeadapt.data.run_data import RunData

    sets = {}
    for domain in run.cfg.eval.other_domains:
        cfg = copy.deepcopy(run.cfg)
        cfg.data.domain = domain
        data = RunData(cfg)
        sets[data.domain_name] = eval_sets(data, run.tokenizer, cfg)
    return sets


def model_metrics(
    predictor: Predictor, run: Run, sets: EvalSets, topics: TopicSpace, others: dict[str, EvalSets]
) -> dict[str, Any]:
    """Every metric of one model (base, tuned, routed or generated) on the run's sets."""
    metrics = evaluate_model(predictor, sets, run.cfg.eval, topics)
    metrics["weight_bytes"] = weight_bytes(predictor.model)
    metrics.update(other_domain_scores(predictor, others, run.cfg.eval))
    return metrics


def compared_to_base(metrics: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """What sets a model apart from the base: forgetting as a change, retention as a ratio."""
    return {
        "general_degradation_pct": degradation_pct(metrics["general_ppl"], base["general_ppl"]),
        "topic_retention": retention(metrics["on_topic_rate"], base["on_topic_rate"]),
    }


def method_metrics(
    run: Run,
    name: str,
    result: TrainResult,
    base: dict,
    sets: EvalSets,
    topics: TopicSpace,
    dtype: torch.dtype,
    others: dict[str, EvalSets],
) -> dict[str, Any]:
    """Evaluate one tuned model and add what sets it apart from the base: forgetting, size, training."""
    method = run.method(name)
    # Evaluated as a device runs it, the update folded in: the same outputs, and an adapter of any rank then
    # costs no more per token than the base model (unmerged, r=576 doubled the evaluation's time).
    tuned = run.open(name, dtype)
    metrics = model_metrics(tuned, run, sets, topics, others)
    metrics.update(method.describe(tuned.model) if method.describe else {})
    if run.cfg.eval.deploy_variants and method.deploy_variants:
        metrics["deploy_variants"] = deploy_variant_metrics(run, name, base, sets, dtype)
    size = update_size([run.dir / name / f for f in result.update_files])
    metrics.update(
        **compared_to_base(metrics, base),
        trainable_params=result.trainable_params,
        trainable_pct=100.0 * result.trainable_params / base["params"],
        update_bytes={"fp32": size["fp32"], "bf16": size["bf16"]},
        update_file_bytes=size["file_bytes"],
        update_ratio=size["fp32"] / base["full_model_bytes"]["fp32"],
        lr=result.lr,
        steps=result.steps,
        train_seconds=result.seconds,
        curve=result.curve,
        budget=result.budget,
        options={"method": run.method_names[name], **asdict(run.method_cfgs[name])},
    )
    return metrics


def deploy_variant_metrics(
    run: Run, name: str, base: dict, sets: EvalSets, dtype: torch.dtype
) -> dict[str, Any]:
    """Domain and general scores of each other way the variant's update could be deployed."""
    from edgeadapt.evaluation.suite import domain_and_general

    out = {}
    for variant, make in run.method(name).deploy_variants.items():
        predictor = run.open(name, dtype)
        predictor.model = make(predictor.model).eval()
        metrics, _ = domain_and_general(predictor, sets, run.cfg.eval)
        metrics["general_degradation_pct"] = degradation_pct(metrics["general_ppl"], base["general_ppl"])
        metrics["weight_bytes"] = weight_bytes(predictor.model)
        out[variant] = metrics
    return out


def evaluate_run(run: Run, log: Callable[[str], None] = print, reuse: bool = False) -> dict[str, Any]:
    """`edgeadapt eval`: evaluate the base model and every trained method; write results.json.

    With `reuse` (the sweep), metrics saved by an earlier evaluation with the same settings are reused.
    """
    started = time.perf_counter()
    _ = run.data  # bad data is an error before the earlier results are removed
    run.invalidate_results()
    trained = trained_results(run)
    key = eval_key(run.cfg)
    cached = {n: results_io.read_cache(run.dir / n, key) for n in trained} if reuse else {}
    base = results_io.read_cache(run.dir, key) if reuse else None
    if base is not None and all(cached.values()):
        log("[all] reusing earlier evaluations")
        return finish_results(run, base, cached, trained, started)
    dtype = run.dtype
    sets, topics = eval_sets(run.data, run.tokenizer, run.cfg), topic_space(run.data)
    others = other_domain_sets(run)
    if base is None:
        base = evaluate_base(run, dtype, sets, topics, others, log)
        results_io.write_cache(run.dir, key, base)
    per_method = {}
    for name, result in trained.items():
        if cached.get(name):
            per_method[name] = cached[name]
            continue
        log(f"[{name}] evaluating")
        per_method[name] = method_metrics(run, name, result, base, sets, topics, dtype, others)
        results_io.write_cache(run.dir / name, key, per_method[name])
    return finish_results(run, base, per_method, trained, started)


def evaluate_base(run: Run, dtype, sets: EvalSets, topics: TopicSpace, others, log) -> dict[str, Any]:
    log("[base] evaluating")
    base = run.open(None, dtype)
    metrics = model_metrics(base, run, sets, topics, others)
    params = models.count_parameters(base.model)
    metrics.update(params=params, full_model_bytes={"fp32": params * 4, "bf16": params * 2})
    return metrics


def eval_key(cfg: RunConfig) -> str:
    """What an evaluation's numbers depend on besides the weights: model, data and eval settings."""
    return json.dumps([cfg.model.name, asdict(cfg.data), asdict(cfg.eval)], sort_keys=True)


def finish_results(run: Run, base: dict, per_method: dict, trained: dict, started: float) -> dict[str, Any]:
    results = {
        "edgeadapt_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": run.device.type,
        "torch_threads": torch.get_num_threads(),
        "versions": results_io.versions(),
        "seconds": round(time.perf_counter() - started + sum(r.seconds for r in trained.values()), 1),
        "model": models.model_info(run.model_path),
        "data": {"domain": run.data.domain_name, "sources": run.data.sources, "rows": run.data.sizes()},
        "config": to_dict(run.cfg),
        "base": base,
        "methods": per_method,
    }
    results_io.write_results(run.dir, results)
    return results
