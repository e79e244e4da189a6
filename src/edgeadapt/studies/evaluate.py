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
from edgeadapt.core.errors import UserError
from edgeadapt.evaluation.metrics import degradation_pct
from edgeadapt.evaluation.registry import versus_base
from edgeadapt.evaluation.sets import eval_sets, topic_space
from edgeadapt.evaluation.suite import EvalSets, evaluate_model
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.predictor import Predictor
from edgeadapt.models.quantize import weight_bytes
from edgeadapt.runs import results as results_io
from edgeadapt.runs.run import Run, trained_results
from edgeadapt.runs.schema import SCHEMA_VERSION, RunResults
from edgeadapt.training.loop import TrainResult
from edgeadapt.updates.sizes import update_size


def model_metrics(predictor: Predictor, run: Run, sets: EvalSets, topics: TopicSpace) -> dict[str, Any]:
    """Every metric of one model (base, tuned, routed or generated) on the run's sets."""
    metrics = evaluate_model(predictor, sets, run.cfg.eval, topics)
    metrics["weight_bytes"] = weight_bytes(predictor.model)
    return metrics


def method_metrics(
    run: Run,
    name: str,
    result: TrainResult,
    base: dict,
    sets: EvalSets,
    topics: TopicSpace,
    dtype: torch.dtype,
) -> dict[str, Any]:
    """Evaluate one tuned model and add what sets it apart from the base: forgetting, size, training."""
    method = run.method(name)
    # Evaluated as a device runs it, the update folded in: the same outputs, and an adapter of any rank then
    # costs no more per token than the base model (unmerged, r=576 doubled the evaluation's time).
    tuned = run.open(name, dtype)
    metrics = model_metrics(tuned, run, sets, topics)
    metrics.update(method.describe(tuned.model) if method.describe else {})
    if run.cfg.eval.deploy_variants and method.deploy_variants:
        metrics["deploy_variants"] = deploy_variant_metrics(run, name, base, sets, dtype)
    size = update_size([run.dir / name / f for f in result.update_files])
    metrics.update(
        **versus_base(metrics, base),
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
        regularizers=result.regularizers,
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
    _ = run.data  # bad data is an error before any work
    trained = trained_results(run)
    key = eval_key(run.cfg)
    kept = kept_results(run, list(trained), key, log)
    cached = {n: results_io.read_cache(run.dir / n, key) for n in trained} if reuse else {}
    base = results_io.read_cache(run.dir, key) if reuse else None
    if base is not None and all(cached.values()):
        log("[all] reusing earlier evaluations")
        return finish_results(run, base, cached, trained, started, kept)
    dtype = run.dtype
    sets, topics = eval_sets(run.data, run.tokenizer, run.cfg), topic_space(run.data)
    if base is None:
        base = evaluate_base(run, dtype, sets, topics, log)
        results_io.write_cache(run.dir, key, base)
    per_method = {}
    for name, result in trained.items():
        if cached.get(name):
            per_method[name] = cached[name]
            continue
        log(f"[{name}] evaluating")
        per_method[name] = method_metrics(run, name, result, base, sets, topics, dtype)
        results_io.write_cache(run.dir / name, key, per_method[name])
    return finish_results(run, base, per_method, trained, started, kept)


def evaluate_base(run: Run, dtype, sets: EvalSets, topics: TopicSpace, log) -> dict[str, Any]:
    log("[base] evaluating")
    base = run.open(None, dtype)
    metrics = model_metrics(base, run, sets, topics)
    params = models.count_parameters(base.model)
    metrics.update(params=params, full_model_bytes={"fp32": params * 4, "bf16": params * 2})
    return metrics


def eval_key(cfg: RunConfig) -> str:
    """What an evaluation's numbers depend on besides the weights: model, data and eval settings."""
    return settings_key(to_dict(cfg))


def settings_key(config: dict[str, Any]) -> str:
    """eval_key of a config as plain data (results.json's)."""
    return json.dumps([config["model"]["name"], config["data"], config["eval"]], sort_keys=True)


def kept_results(run: Run, evaluating: list[str], key: str, log) -> dict[str, Any]:
    """What the run's earlier results.json holds that this evaluation keeps: every method of the config it
    does not evaluate again, and the sections later commands added (an evaluation changes no update, so
    they still describe the run). Refused before any work when the methods kept were measured under other
    model, data or eval settings: one table would mix them."""
    if not results_io.results_path(run.dir).is_file():
        return {}
    try:
        previous = results_io.read_results(run.dir)
    except UserError as exc:
        log(f"{exc} It will be replaced.")
        return {}
    others = {n: m for n, m in previous.methods.items() if n in run.cfg.methods and n not in evaluating}
    if others and settings_key(previous.config) != key:
        path = results_io.results_path(run.dir)
        raise UserError(
            f"{path} holds {', '.join(others)} measured under other model, data or eval settings; evaluating "
            f"{', '.join(evaluating)} alone would put them in one table. Evaluate every method (`edgeadapt eval "
            f"CONFIG` without --method), or move {path.name} away first; nothing was changed."
        )
    if others:
        log(f"results.json: keeping the results of {', '.join(others)}")
    return {"methods": others, **{k: previous[k] for k in results_io.SECTIONS if k in previous}}


def finish_results(
    run: Run, base: dict, per_method: dict, trained: dict, started: float, kept: dict[str, Any]
) -> RunResults:
    results = {
        "schema_version": SCHEMA_VERSION,
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
        "methods": order_like(run.cfg.methods, {**kept.get("methods", {}), **per_method}),
        **{k: v for k, v in kept.items() if k != "methods"},
    }
    return results_io.write_results(run.dir, results)


def order_like(config_methods: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """Methods' results in the config's order (a method evaluated alone takes its place among the others)."""
    return {name: results[name] for name in config_methods if name in results}
