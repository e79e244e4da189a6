"""The comparison pipeline: train every method on the same data, evaluate base and tuned models, report.

`compare(cfg)` writes OUT_DIR/NAME/: one folder per method (its update and training curve), results.json,
report.md and report.html. results.json is written last and atomically, so a failed run never leaves a
results file that looks complete.
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
        self.general_text = [r["text"] for r in packs.load_split(general_dir, "text") if "text" in r]
        self.probes = packs.load_split(general_dir, "probes")[: cfg.eval.probes or None]
        self.sources = {"domain": str(domain_dir), "general": str(general_dir)}

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
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


def train_methods(
    cfg: RunConfig,
    method_cfgs: dict,
    model_path: Path,
    tokenizer,
    data: RunData,
    device: torch.device,
    resume: bool,
    log: Callable[[str], None],
) -> dict[str, TrainResult]:
    """Train each method from a fresh copy of the base model; with resume, reuse finished ones."""
    train_rows = [encode(tokenizer, r, cfg.data.max_length) for r in data.train]
    curve_sets = {
        "domain": [encode(tokenizer, r, cfg.data.max_length) for r in data.val],
        "general": text_chunks(
            tokenizer, data.general_text, cfg.eval.chunk_tokens, cfg.train.curve_general_chunks
        ),
    }
    bf16 = device.type == "cuda" and cfg.model.dtype != "float32"
    results = {}
    for name, method_cfg in method_cfgs.items():
        folder = cfg.run_dir() / name
        done = TrainResult.load(folder) if resume else None
        if done is not None:
            log(f"[{name}] already trained ({done.steps} steps): reusing {folder / 'update'}")
            results[name] = done
            continue
        log(f"[{name}] {methods.get(name).DESCRIPTION}; lr {method_cfg.lr}, {cfg.train.steps} steps")
        model, _ = models.load(
            model_path, torch.float32, device
        )  # fp32 master weights; bf16 autocast on CUDA
        model = methods.get(name).prepare(model, method_cfg)
        result = train(
            model,
            tokenizer,
            name,
            method_cfg.lr,
            train_rows,
            curve_sets,
            cfg.train,
            folder,
            device,
            bf16=bf16,
            resume=resume,
        )
        files = methods.get(name).save_update(model, folder / "update")
        result.update_files = [str(f.relative_to(folder)) for f in files]
        result.save(folder)
        results[name] = result
        del model
    return results


def evaluate_all(
    cfg: RunConfig,
    trained: dict[str, TrainResult],
    model_path: Path,
    data: RunData,
    device: torch.device,
    log: Callable[[str], None],
) -> tuple[dict, dict]:
    dtype = models.pick_dtype(cfg.model.dtype, device)
    base, tokenizer = models.load(model_path, dtype, device)
    sets, topics = eval_sets(data, tokenizer, cfg), topic_space(data)
    log("[base] evaluating")
    base_metrics = evaluate_model(base, tokenizer, sets, cfg.eval, topics)
    full_params = models.count_parameters(base)
    base_metrics.update(
        params=full_params, full_model_bytes={"fp32": full_params * 4, "bf16": full_params * 2}
    )
    per_method = {}
    for name, result in trained.items():
        log(f"[{name}] evaluating")
        fresh, _ = models.load(model_path, dtype, device)
        tuned = methods.get(name).load_tuned(fresh, cfg.run_dir() / name / "update")
        metrics = evaluate_model(tuned, tokenizer, sets, cfg.eval, topics)
        size = update_size([cfg.run_dir() / name / f for f in result.update_files])
        metrics.update(
            general_degradation_pct=degradation_pct(metrics["general_ppl"], base_metrics["general_ppl"]),
            topic_retention=retention(metrics["on_topic_rate"], base_metrics["on_topic_rate"]),
            trainable_params=result.trainable_params,
            trainable_pct=100.0 * result.trainable_params / full_params,
            update_bytes={"fp32": size["fp32"], "bf16": size["bf16"]},
            update_file_bytes=size["file_bytes"],
            update_ratio=size["fp32"] / (full_params * 4),
            lr=result.lr,
            steps=result.steps,
            train_seconds=result.seconds,
            curve=result.curve,
            options=asdict(methods.parse_configs({name: cfg.methods[name]})[name]),
        )
        per_method[name] = metrics
        del tuned, fresh
    return base_metrics, per_method


class Run:
    """What every stage of a run shares: config, validated method options, device, model path, data."""

    def __init__(self, cfg: RunConfig, only: list[str] | None = None):
        self.cfg = cfg
        method_cfgs = methods.parse_configs(cfg.methods)  # every config problem surfaces before any work
        if only:
            missing = [m for m in only if m not in method_cfgs]
            if missing:
                raise UserError(
                    f"Method {missing[0]} is not in this config's methods ({', '.join(method_cfgs)})."
                )
            method_cfgs = {m: method_cfgs[m] for m in only}
        self.method_cfgs = method_cfgs
        set_threads(cfg.train.threads)
        self.device = models.pick_device()
        self.model_path = models.resolve(cfg.model.name, cfg.base_dir)
        self.data = RunData(cfg)
        _, self.tokenizer = models.load(self.model_path, torch.float32, torch.device("cpu"))
        self.dir = cfg.run_dir()
        self.dir.mkdir(parents=True, exist_ok=True)

    def invalidate_results(self) -> None:
        """Inputs are valid and work starts: earlier results of this run no longer describe its updates."""
        for name in OUTPUTS:
            (self.dir / name).unlink(missing_ok=True)


def train_run(run: Run, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, TrainResult]:
    """`edgeadapt train`: train the run's methods and save their updates."""
    log(
        f"Run '{run.cfg.name}': model {run.cfg.model.name} on {run.device}, "
        f"domain {run.data.domain_name} {run.data.sizes()}"
    )
    return train_methods(
        run.cfg, run.method_cfgs, run.model_path, run.tokenizer, run.data, run.device, resume, log
    )


def evaluate_run(run: Run, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`edgeadapt eval`: evaluate the base model and every trained method; write results and reports."""
    started = time.perf_counter()
    run.invalidate_results()
    trained = {}
    for name in run.method_cfgs:
        result = TrainResult.load(run.dir / name)
        if result is None:
            raise UserError(
                f"Method '{name}' has not been trained in {run.dir}: run `edgeadapt train CONFIG "
                f"--method {name}` or `edgeadapt compare CONFIG`."
            )
        trained[name] = result
    base, per_method = evaluate_all(run.cfg, trained, run.model_path, run.data, run.device, log)
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


def compare(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, evaluate and report every method in `cfg`; return the results written to results.json."""
    run = Run(cfg)
    train_run(run, resume, log)
    return evaluate_run(run, log)


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
