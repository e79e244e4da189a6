"""Evaluation of a trained run: the base model and every tuned one on the same sets, then results.

`evaluate_run` (`edgeadapt eval`) writes results.json, report.md and report.html into the run folder;
results.json is written last and atomically (`pipeline.write_results`). Each model's metrics are also saved
beside its update, so a sweep that resumes evaluates only what is new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from edgeadapt import __version__, models
from edgeadapt.config import RunConfig, to_dict
from edgeadapt.evaluate import EvalSets, domain_scores, evaluate_model
from edgeadapt.evaluate.metrics import degradation_pct, retention
from edgeadapt.evaluate.topics import TopicSpace
from edgeadapt.methods.quantize import weight_bytes
from edgeadapt.package import update_size
from edgeadapt.pipeline import (
    EVAL_CACHE,
    Run,
    eval_sets,
    other_domain_sets,
    topic_space,
    trained_results,
    versions,
    write_results,
)
from edgeadapt.train import TrainResult


def score_other_domains(model, run: Run, others: dict[str, EvalSets]) -> dict[str, Any]:
    """Domain perplexity and accuracy on every other domain, and their mean accuracy."""
    if not others:
        return {}
    scores = {d: domain_scores(model, run.tokenizer, s, run.cfg.eval)[0] for d, s in others.items()}
    mean = sum(s["domain_accuracy"] for s in scores.values()) / len(scores)
    return {"other_domains": scores, "out_of_domain_accuracy": mean}


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
    tuned = method.merge(method.load_tuned(run.load_model(dtype), run.dir / name / "update"))
    metrics = evaluate_model(tuned, run.tokenizer, sets, run.cfg.eval, topics)
    metrics["weight_bytes"] = weight_bytes(tuned)
    metrics.update(score_other_domains(tuned, run, others))
    metrics.update(method.describe(tuned) if hasattr(method, "describe") else {})
    size = update_size([run.dir / name / f for f in result.update_files])
    metrics.update(
        general_degradation_pct=degradation_pct(metrics["general_ppl"], base["general_ppl"]),
        topic_retention=retention(metrics["on_topic_rate"], base["on_topic_rate"]),
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


def evaluate_run(run: Run, log: Callable[[str], None] = print, reuse: bool = False) -> dict[str, Any]:
    """`edgeadapt eval`: evaluate the base model and every trained method; write results and reports.

    With `reuse` (the sweep), metrics saved by an earlier evaluation with the same settings are reused.
    """
    started = time.perf_counter()
    run.invalidate_results()
    trained = trained_results(run)
    key = eval_key(run.cfg)
    cached = {n: read_cache(run.dir / n, key) for n in trained} if reuse else {}
    base = read_cache(run.dir, key) if reuse else None
    if base is not None and all(cached.values()):
        log("[all] reusing earlier evaluations")
        return finish_results(run, base, cached, trained, started)
    dtype = models.pick_dtype(run.cfg.model.dtype, run.device)
    sets, topics = eval_sets(run.data, run.tokenizer, run.cfg), topic_space(run.data)
    others = other_domain_sets(run)
    if base is None:
        base = evaluate_base(run, dtype, sets, topics, others, log)
        write_cache(run.dir, key, base)
    per_method = {}
    for name, result in trained.items():
        if cached.get(name):
            per_method[name] = cached[name]
            continue
        log(f"[{name}] evaluating")
        per_method[name] = method_metrics(run, name, result, base, sets, topics, dtype, others)
        write_cache(run.dir / name, key, per_method[name])
    return finish_results(run, base, per_method, trained, started)


def evaluate_base(run: Run, dtype, sets: EvalSets, topics: TopicSpace, others, log) -> dict[str, Any]:
    log("[base] evaluating")
    base_model = run.load_model(dtype)
    base = evaluate_model(base_model, run.tokenizer, sets, run.cfg.eval, topics)
    base.update(score_other_domains(base_model, run, others))
    params = models.count_parameters(base_model)
    base.update(
        params=params,
        full_model_bytes={"fp32": params * 4, "bf16": params * 2},
        weight_bytes=weight_bytes(base_model),
    )
    return base


def eval_key(cfg: RunConfig) -> str:
    """What an evaluation's numbers depend on besides the weights: model, data and eval settings."""
    return json.dumps([cfg.model.name, asdict(cfg.data), asdict(cfg.eval)], sort_keys=True)


def read_cache(folder: Path, key: str) -> dict[str, Any] | None:
    path = folder / EVAL_CACHE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved["metrics"] if saved.get("key") == key else None


def write_cache(folder: Path, key: str, metrics: dict[str, Any]) -> None:
    (folder / EVAL_CACHE).write_text(json.dumps({"key": key, "metrics": metrics}))


def finish_results(run: Run, base: dict, per_method: dict, trained: dict, started: float) -> dict[str, Any]:
    results = {
        "edgeadapt_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": run.device.type,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "seconds": round(time.perf_counter() - started + sum(r.seconds for r in trained.values()), 1),
        "model": models.model_info(run.model_path),
        "data": {"domain": run.data.domain_name, "sources": run.data.sources, "rows": run.data.sizes()},
        "config": to_dict(run.cfg),
        "base": base,
        "methods": per_method,
    }
    write_results(run.dir, results)
    return results
