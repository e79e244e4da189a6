"""`edgeadapt train`: train each method of a run from a fresh copy of the base model and save its update.

With `resume`, a method that finished is reused (unless the config now asks for another number of steps:
then it trains again) and one that was interrupted continues from its last checkpoint. Under `torchrun`
every rank trains, rank 0 saves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import torch

from edgeadapt.core.config import TrainConfig
from edgeadapt.data.format import encode, text_chunks
from edgeadapt.data.run_data import rows_in_words
from edgeadapt.runs.results import EVAL_CACHE, forget_method
from edgeadapt.runs.run import Run, non_defaults
from edgeadapt.studies.mitigations import regularizers, self_distilled, self_replay_rows
from edgeadapt.training.distributed import is_main_process, wait_for_everyone, world_size
from edgeadapt.training.loop import RESULT_FILE, TrainResult, train, training_precision


def curve_sets(run: Run, val_rows: list[dict]) -> dict[str, list[dict]]:
    """The forgetting curve's sets: domain validation rows and general held-out chunks."""
    cfg, tokenizer = run.cfg, run.tokenizer
    return {
        "domain": [encode(tokenizer, r, cfg.data.max_length) for r in val_rows],
        "general": text_chunks(
            tokenizer, run.data.general_text, cfg.eval.chunk_tokens, cfg.train.curve_general_chunks
        ),
    }


def train_variant(
    run: Run,
    name: str,
    method_cfg,
    train_rows: list[dict[str, list[int]]],
    curves: dict[str, list[dict]],
    calibration: list[dict[str, list[int]]],
    steps: int | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train one variant of the run into RUN/NAME/update from a fresh copy of the base model (or reuse it
    when `resume` finds it finished). `steps` overrides train.steps."""
    from transformers import set_seed

    folder, method, cfg = run.dir / name, run.method(name), run.cfg
    train_cfg = dataclasses.replace(cfg.train, steps=steps or cfg.train.steps)
    done = TrainResult.load(folder) if resume else None
    precision = training_precision(train_cfg, run.device, cfg.model.dtype)
    stale = trained_otherwise(done, train_cfg, precision) if done is not None else None
    if stale:
        log(f"[{name}] {stale}: training again")
        forget_training(folder)
    elif done is not None:
        log(f"[{name}] already trained ({done.steps} steps): reusing {folder / 'update'}")
        return done
    (folder / EVAL_CACHE).unlink(missing_ok=True)  # its update is about to change
    removed = forget_method(run.dir, name) if is_main_process() else []
    if removed:
        log(
            f"[{name}] retraining: results.json no longer holds {', '.join(removed)} (rerun `edgeadapt eval`)"
        )
    changed = "".join(f", {k} {v}" for k, v in non_defaults(method_cfg).items() if k != "lr")
    log(f"[{name}] {method.description}; lr {method_cfg.lr}, {train_cfg.steps} steps{changed}")
    model = run.load_model(torch.float32)  # fp32 master weights
    # Adapters draw their initial weights from the global generator: seed it here, so a variant starts
    # from the same weights whatever the process trained before it (the Trainer seeds only later).
    set_seed(cfg.train.seed)
    model = method.prepare(model, method_cfg, calibration)
    terms = regularizers(run, model, log)  # on the model training starts from
    result = train(
        model,
        run.tokenizer,
        name,
        method_cfg.lr,
        train_rows,
        curves,
        train_cfg,
        folder,
        run.device,
        bf16=precision == "bf16",
        resume=resume,
        log=log,
        regularizers=terms,
    )
    if is_main_process():  # under torchrun every rank holds the same weights; one writes them
        files = method.save_update(model, run.update_dir(name))
        result.update_files = [str(f.relative_to(folder)) for f in files]
        result.save(folder)  # last: its presence means the update is complete
    wait_for_everyone()
    return TrainResult.load(folder) or result


def trained_otherwise(done: TrainResult, train_cfg: TrainConfig, precision: str) -> str | None:
    """How a finished training differs from what the config now asks (None: it is what the config asks)."""
    if done.steps != train_cfg.steps and not done.budget:
        return f"trained for {done.steps} steps, the config asks {train_cfg.steps}"
    if done.precision not in (None, precision):  # None: not recorded
        return f"trained in {done.precision}, train.precision asks otherwise"
    if done.group_by_length != train_cfg.group_by_length:
        return "trained on other batches than train.group_by_length asks"
    return None


def train_run(run: Run, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, TrainResult]:
    """Train every method of the run (or reuse finished ones with `resume`); return their results."""
    cfg, tokenizer, data = run.cfg, run.tokenizer, run.data  # bad data is an error before anything changes
    where = f"{run.device}" + (f" x {world_size()} processes" if world_size() > 1 else "")
    if is_main_process():
        log(
            f"Run '{cfg.name}': model {cfg.model.name} on {where}, domain {data.domain_name}: {rows_in_words(data.sizes())}"
        )
    domain = self_distilled(run, data.train, log)
    general = data.replay_rows() + self_replay_rows(run, log)
    train_rows = [encode(tokenizer, r, cfg.data.max_length) for r in domain + general]
    calibration = train_rows[: len(data.train)]  # domain rows only, for methods that profile the data
    curves = curve_sets(run, data.val)
    steps = epoch_steps(cfg.train, len(train_rows))
    return {
        name: train_variant(run, name, method_cfg, train_rows, curves, calibration, steps, resume, log)
        for name, method_cfg in run.method_cfgs.items()
    }


def forget_training(folder: Path) -> None:
    """Remove a finished variant's result and checkpoints, so that neither is resumed into a run of other
    length (its update folder stays until the new one replaces it)."""
    import shutil

    (folder / RESULT_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)


def epoch_steps(train_cfg, rows: int) -> int | None:
    """With train.epochs: the steps that pass over the rows that many times (None: train.steps decides)."""
    if not train_cfg.epochs:
        return None
    per_step = train_cfg.batch_size * train_cfg.grad_accum * world_size()
    return max(1, math.ceil(train_cfg.epochs * rows / per_step))
