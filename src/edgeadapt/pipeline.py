"""The comparison pipeline's shared parts: a run's data and evaluation sets, and training every method.

`train_run` (and `evaluation.evaluate_run`, composed by `edgeadapt.compare`) write OUT_DIR/NAME/: one folder
per method (its update and training curve), results.json, report.md and report.html. results.json is
written last and atomically, so a failed run never leaves a results file that looks complete.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from edgeadapt import methods, models
from edgeadapt.config import RunConfig, apply_override, parse
from edgeadapt.data import packs
from edgeadapt.data.facts import FACTS
from edgeadapt.data.format import encode, prompt_ids, read_jsonl, split_row, text_chunks
from edgeadapt.errors import UserError
from edgeadapt.evaluate import EvalSets
from edgeadapt.evaluate.topics import Embedder, TopicSpace
from edgeadapt.report import write_reports
from edgeadapt.train import TrainResult, train

RESULTS = "results.json"
EVAL_CACHE = "eval_metrics.json"  # a model's metrics beside its update (see evaluation.evaluate_run)
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
        self.facts = load_facts(cfg.eval.facts, cfg.base_dir)
        self.sources = {"domain": str(domain_dir), "general": str(general_dir)}

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "replay_pool": len(self.replay_pool),
            "val": len(self.val),
            "test": len(self.test),
            "probes": len(self.probes),
            "facts": len(self.facts),
            "general_texts": len(self.general_text),
        }


def load_facts(source: str, base_dir: str) -> list[dict]:
    """The fact_recall questions: the project's own, a user's JSONL of prompt/response rows, or none."""
    if source == "off":
        return []
    if source == "builtin":
        return [{"prompt": q, "response": a} for q, a in FACTS]
    rows = read_jsonl(Path(base_dir or ".", source).expanduser())
    bad = [
        i
        for i, r in enumerate(rows, 1)
        if not (isinstance(r.get("prompt"), str) and isinstance(r.get("response"), str))
    ]
    if bad:
        raise UserError(
            f"{source}: row {bad[0]} needs string 'prompt' and 'response' keys (a fact question)."
        )
    return rows


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
        fact_prompts=[prompt_ids(tokenizer, [{"role": "user", "content": r["prompt"]}]) for r in data.facts],
        fact_answers=[r["response"] for r in data.facts],
    )


def other_domain_sets(run: Run) -> dict[str, EvalSets]:
    """Test sets of `eval.other_domains`, for out-of-domain accuracy."""
    sets = {}
    for domain in run.cfg.eval.other_domains:
        cfg = copy.deepcopy(run.cfg)
        cfg.data.domain = domain
        data = RunData(cfg)
        sets[data.domain_name] = eval_sets(data, run.tokenizer, cfg)
    return sets


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
        self.method_names = {v: methods.method_of(v, cfg.methods[v]) for v in self.method_cfgs}
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

    def method(self, variant: str) -> methods.Method:
        """The method module a variant of this run's `methods:` runs."""
        return methods.get(self.method_names[variant])

    def load_model(self, dtype: torch.dtype):
        return models.load(self.model_path, dtype, self.device)[0]


def train_run(run: Run, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, TrainResult]:
    """`edgeadapt train`: train each method from a fresh copy of the base model and save its update.

    With `resume`, a method that finished is reused and one that was interrupted continues from its last
    checkpoint.
    """
    cfg, tokenizer = run.cfg, run.tokenizer
    run.invalidate_results()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    where = f"{run.device}" + (f" x {world} processes" if world > 1 else "")
    if is_main_process():
        log(
            f"Run '{cfg.name}': model {cfg.model.name} on {where}, domain {run.data.domain_name} {run.data.sizes()}"
        )
    train_rows = [encode(tokenizer, r, cfg.data.max_length) for r in run.data.train + replay_rows(run)]
    calibration = train_rows[: len(run.data.train)]  # domain rows only, for methods that profile the data
    curve_sets = {
        "domain": [encode(tokenizer, r, cfg.data.max_length) for r in run.data.val],
        "general": text_chunks(
            tokenizer, run.data.general_text, cfg.eval.chunk_tokens, cfg.train.curve_general_chunks
        ),
    }
    from transformers import set_seed

    bf16 = run.device.type == "cuda" and cfg.model.dtype != "float32"
    results = {}
    for name, method_cfg in run.method_cfgs.items():
        folder, method = run.dir / name, run.method(name)
        done = TrainResult.load(folder) if resume else None
        if done is not None:
            log(f"[{name}] already trained ({done.steps} steps): reusing {folder / 'update'}")
            results[name] = done
            continue
        (folder / EVAL_CACHE).unlink(missing_ok=True)  # its update is about to change
        changed = "".join(f", {k} {v}" for k, v in non_defaults(method_cfg).items() if k != "lr")
        log(f"[{name}] {method.DESCRIPTION}; lr {method_cfg.lr}, {cfg.train.steps} steps{changed}")
        model = run.load_model(torch.float32)  # fp32 master weights
        # Adapters draw their initial weights from the global generator: seed it here, so a variant starts
        # from the same weights whatever the process trained before it (the Trainer seeds only later).
        set_seed(cfg.train.seed)
        model = method.prepare(model, method_cfg, calibration)
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
        if is_main_process():  # under torchrun every rank holds the same weights; one writes them
            files = method.save_update(model, folder / "update")
            result.update_files = [str(f.relative_to(folder)) for f in files]
            result.save(folder)  # last: its presence means the update is complete
        wait_for_everyone()
        results[name] = TrainResult.load(folder) or result
        del model
    return results


def non_defaults(method_cfg) -> dict[str, Any]:
    """A method config's options that differ from the method's defaults (what makes a variant)."""
    default = type(method_cfg)()
    return {
        f.name: getattr(method_cfg, f.name)
        for f in dataclasses.fields(method_cfg)
        if getattr(method_cfg, f.name) != getattr(default, f.name)
    }


def is_main_process() -> bool:
    """True outside a multi-process launch, and on rank 0 within one (`torchrun`, `accelerate launch`)."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


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


def reopen(run_dir: str, overrides: list[str], section: str) -> tuple[Run, dict[str, Any]]:
    """A finished run and its results, for adding a section (`recovery`, `analysis`) afterwards.

    Only `SECTION.*` overrides are accepted (the rest of the run is fixed); they are recorded in the
    results' config, so results.json says which settings were used.
    """
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise UserError(f"{path} not found: run `edgeadapt compare CONFIG` first.")
    results = json.loads(path.read_text())
    data = results["config"]
    for override in overrides:
        if not override.startswith(f"{section}."):
            raise UserError(
                f"Override '{override}': only {section}.* keys are accepted here (the run is fixed)."
            )
        apply_override(data, override)
    cfg = parse(data, f"{path}: ")
    cfg.out_dir, cfg.name = str(Path(run_dir).parent), Path(run_dir).name  # the run may have moved
    return Run(cfg, only=list(results["methods"])), results  # the methods this run's results hold


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
    write_json_atomic(run_dir / RESULTS, results)


def write_json_atomic(path: Path, data: dict) -> None:
    """JSON via a temporary file and a rename: a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
