"""The comparison pipeline: train every method on the same data, evaluate base and tuned models, report.

`train_run` and `evaluate_run` (composed by `edgeadapt.compare`) write OUT_DIR/NAME/: one folder per
method (its update and training curve), results.json, report.md and report.html. results.json is written
last and atomically, so a failed run never leaves a results file that looks complete.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from edgeadapt import __version__, methods, models
from edgeadapt.config import RunConfig, to_dict
from edgeadapt.data import packs
from edgeadapt.data.format import encode, prompt_ids, split_row, text_chunks
from edgeadapt.errors import UserError
from edgeadapt.evaluate import EvalSets, evaluate_model
from edgeadapt.evaluate.metrics import degradation_pct, retention
from edgeadapt.evaluate.topics import Embedder, TopicSpace
from edgeadapt.package import update_size
from edgeadapt.report import write_reports
from edgeadapt.train import TrainResult, train

RESULTS = "results.json"
OUTPUTS = (RESULTS, "report.md", "report.html")


def set_threads(threads: int) -> None:
    # One process on all cores; more threads than cores makes OpenMP spin and slows everything down.
    torch.set_num_threads(threads or os.cpu_count() or 1)


class RunData:
    """The run's rows, read once: domain train/val/test, general text and probes."""

    def __init__(self, cfg: RunConfig):
        d = cfg.data
        domain_dir = packs.resolve(d.domain, d.seed, packs.DOMAIN_SPLITS, cfg.base_dir)
        general_dir = packs.resolve(d.general, d.seed, packs.GENERAL_FILES, cfg.base_dir)
        self.domain_name = d.domain if d.domain in packs.PACKS else Path(d.domain).name
        self.train = packs.load_split(domain_dir, "train")[: d.train_rows or None]
        self.val = packs.load_split(domain_dir, "val")[: d.val_rows]
        self.test = [r for r in packs.load_split(domain_dir, "test") if split_row(r)[0] is not None][
            : d.test_rows
        ]
        if not self.test:
            raise UserError(f"{domain_dir}/test.jsonl: needs prompt/response or messages rows to ask.")
        general_text = [r["text"] for r in packs.load_split(general_dir, "text") if "text" in r]
        self.general_text, self.replay_pool = general_text, []
        if d.replay_ratio > 0:  # replay draws from the second half, which no evaluation reads
            half = len(general_text) // 2
            self.general_text, self.replay_pool = general_text[:half], general_text[half:]
            if not half:
                raise UserError(
                    f"{general_dir}/text.jsonl: replay needs at least 2 text rows (half for replay)."
                )
        self.probes = packs.load_split(general_dir, "probes")[: cfg.eval.probes or None]
        self.sources = {"domain": str(domain_dir), "general": str(general_dir)}

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "replay_pool": len(self.replay_pool),
            "val": len(self.val),
            "test": len(self.test),
            "probes": len(self.probes),
            "general_texts": len(self.general_text),
        }


def eval_sets(data: RunData, tokenizer, cfg: RunConfig) -> EvalSets:
    return EvalSets(
        domain_rows=data.test,
        domain_encoded=[encode(tokenizer, r, cfg.data.max_length) for r in data.test],
        domain_prompts=[prompt_ids(tokenizer, split_row(r)[0]) for r in data.test],
        general_chunks=text_chunks(
            tokenizer, data.general_text, cfg.eval.chunk_tokens, cfg.eval.general_chunks
        ),
        probe_prompts=[
            prompt_ids(tokenizer, [{"role": "user", "content": r["prompt"]}]) for r in data.probes
        ],
        probe_topics=[r["topic"] for r in data.probes],
    )


def topic_space(data: RunData) -> TopicSpace:
    topics: dict[str, list[str]] = {}
    for row in data.probes:
        topics.setdefault(row["topic"], []).append(row["prompt"])
    domain_texts = [
        " ".join(filter(None, (r.get("prompt"), r.get("response"), r.get("text")))) for r in data.train[:64]
    ]
    return TopicSpace(Embedder(), topics, f"domain:{data.domain_name}", domain_texts)


class Run:
    """What every stage of a run shares: config, validated method options, device, model path, data."""

    def __init__(self, cfg: RunConfig, only: list[str] | None = None):
        self.cfg = cfg
        method_cfgs = methods.parse_configs(cfg.methods)  # every config problem surfaces before any work
        missing = [m for m in only or () if m not in method_cfgs]
        if missing:
            raise UserError(
                f"Method {missing[0]} is not in this config's methods ({', '.join(method_cfgs)})."
            )
        self.method_cfgs = {m: method_cfgs[m] for m in only} if only else method_cfgs
        set_threads(cfg.train.threads)
        self.device = models.pick_device()
        self.model_path = models.resolve(cfg.model.name, cfg.base_dir)
        self.data = RunData(cfg)
        self.tokenizer = models.load_tokenizer(self.model_path)
        self.dir = cfg.run_dir()
        self.dir.mkdir(parents=True, exist_ok=True)

    def invalidate_results(self) -> None:
        """Inputs are valid and work starts: earlier results of this run no longer describe its updates."""
        for name in OUTPUTS:
            (self.dir / name).unlink(missing_ok=True)

    def load_model(self, dtype: torch.dtype):
        return models.load(self.model_path, dtype, self.device)[0]


def train_run(run: Run, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, TrainResult]:
    """`edgeadapt train`: train each method from a fresh copy of the base model and save its update.

    With `resume`, a method that finished is reused and one that was interrupted continues from its last
    checkpoint.
    """
    cfg, tokenizer = run.cfg, run.tokenizer
    run.invalidate_results()
    log(
        f"Run '{cfg.name}': model {cfg.model.name} on {run.device}, domain {run.data.domain_name} {run.data.sizes()}"
    )
    train_rows = [encode(tokenizer, r, cfg.data.max_length) for r in run.data.train + replay_rows(run)]
    curve_sets = {
        "domain": [encode(tokenizer, r, cfg.data.max_length) for r in run.data.val],
        "general": text_chunks(
            tokenizer, run.data.general_text, cfg.eval.chunk_tokens, cfg.train.curve_general_chunks
        ),
    }
    bf16 = run.device.type == "cuda" and cfg.model.dtype != "float32"
    results = {}
    for name, method_cfg in run.method_cfgs.items():
        folder, method = run.dir / name, methods.get(name)
        done = TrainResult.load(folder) if resume else None
        if done is not None:
            log(f"[{name}] already trained ({done.steps} steps): reusing {folder / 'update'}")
            results[name] = done
            continue
        log(f"[{name}] {method.DESCRIPTION}; lr {method_cfg.lr}, {cfg.train.steps} steps")
        model = method.prepare(run.load_model(torch.float32), method_cfg)  # fp32 master weights
        result = train(
            model,
            tokenizer,
            name,
            method_cfg.lr,
            train_rows,
            curve_sets,
            cfg.train,
            folder,
            run.device,
            bf16=bf16,
            resume=resume,
        )
        files = method.save_update(model, folder / "update")
        result.update_files = [str(f.relative_to(folder)) for f in files]
        result.save(folder)  # last: its presence means the update is complete
        results[name] = result
        del model
    return results


def replay_rows(run: Run) -> list[dict]:
    """General text rows making up `data.replay_ratio` of the training rows (none by default)."""
    ratio, pool = run.cfg.data.replay_ratio, run.data.replay_pool
    count = round(len(run.data.train) * ratio / (1 - ratio)) if ratio else 0
    return [{"text": pool[i % len(pool)]} for i in range(count)]


def trained_results(run: Run) -> dict[str, TrainResult]:
    trained = {}
    for name in run.method_cfgs:
        trained[name] = TrainResult.load(run.dir / name)
        if trained[name] is None:
            raise UserError(
                f"Method '{name}' has not been trained in {run.dir}: run `edgeadapt train CONFIG "
                f"--method {name}` or `edgeadapt compare CONFIG`."
            )
    return trained


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
    tuned = methods.get(name).load_tuned(run.load_model(dtype), run.dir / name / "update")
    metrics = evaluate_model(tuned, run.tokenizer, sets, run.cfg.eval, topics)
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
        options=asdict(run.method_cfgs[name]),
    )
    return metrics


def evaluate_run(run: Run, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`edgeadapt eval`: evaluate the base model and every trained method; write results and reports."""
    started = time.perf_counter()
    run.invalidate_results()
    trained = trained_results(run)
    dtype = models.pick_dtype(run.cfg.model.dtype, run.device)
    sets, topics = eval_sets(run.data, run.tokenizer, run.cfg), topic_space(run.data)
    log("[base] evaluating")
    base_model = run.load_model(dtype)
    base = evaluate_model(base_model, run.tokenizer, sets, run.cfg.eval, topics)
    params = models.count_parameters(base_model)
    base.update(params=params, full_model_bytes={"fp32": params * 4, "bf16": params * 2})
    del base_model
    per_method = {}
    for name, result in trained.items():
        log(f"[{name}] evaluating")
        per_method[name] = method_metrics(run, name, result, base, sets, topics, dtype)
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


def versions() -> dict[str, str]:
    import platform
    from importlib.metadata import version

    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "accelerate"):
        found[package] = version(package)
    return found


def write_results(run_dir: Path, results: dict) -> None:
    """results.json via a temporary file and a rename, then the reports."""
    write_reports(run_dir, results)
    tmp = run_dir / (RESULTS + ".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(run_dir / RESULTS)
