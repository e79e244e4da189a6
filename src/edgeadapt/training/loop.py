"""The one training loop: transformers' Trainer, for every method.

Methods differ only in which parameters train (`method.prepare`) and what is saved (`method.save_update`).
Every `train.eval_every` steps the loop measures the domain validation loss and the loss on general held-out
text, so every run has a forgetting curve; with `train.forgetting_budget_pct` it also keeps the best weights
within that budget and stops early past it (`edgeadapt.budget`). Checkpoints every `train.save_every` steps
make `--resume` work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeadapt.core.config import TrainConfig
from edgeadapt.core.resources import bf16_warning
from edgeadapt.data.collate import collator
from edgeadapt.models.loading import count_parameters
from edgeadapt.models.scoring import accepts_logits_to_keep, labelled_loss
from edgeadapt.training.forgetting_budget import ForgettingBudget

RESULT_FILE = "train_result.json"


@dataclass
class TrainResult:
    variant: str
    """The `methods:` entry trained (a method's name, or a variant of it)."""
    lr: float
    steps: int
    seconds: float
    trainable_params: int
    curve: list[dict[str, float]] = field(default_factory=list)
    """One point per evaluation: step, domain_loss, general_loss; and train_loss where logged."""
    update_files: list[str] = field(default_factory=list)
    budget: dict[str, Any] | None = None
    """With train.forgetting_budget_pct: which evaluation's weights were kept, and why."""
    regularizers: dict[str, Any] | None = None
    """With train.kl_to_base or train.ewc: each term's weight, mean value and what it cost (setup seconds,
    seconds per step, memory held)."""
    precision: str | None = None
    """What the matrix products ran in: bf16 (autocast, fp32 weights) or fp32; None in results from before it
    was recorded (fp32 on the CPU, bf16 on CUDA unless model.dtype was float32)."""
    group_by_length: bool = False
    """Whether batches were grouped by length (`train.group_by_length`); False in results from before."""

    def save(self, folder: Path) -> None:
        (folder / RESULT_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> TrainResult | None:
        path = folder / RESULT_FILE
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        if "method" in saved:  # written before the field was named for what it holds
            saved["variant"] = saved.pop("method")
        return cls(**saved)


def to_dataset(encoded: list[dict[str, list[int]]]):
    from datasets import Dataset

    return Dataset.from_list(encoded)


def interactive() -> bool:
    """A terminal is watching: progress bars help. In a log file they are debris: one line per stage instead."""
    import sys

    return sys.stderr.isatty()


PROGRESS_EVERY_S = 300.0
"""In a log file, a line of progress at most this often between evaluations (a generator's evaluations can
be a quarter of an hour apart)."""


def stage_progress(variant: str):
    """The Trainer's progress: a bar named "train VARIANT" in a terminal; in a log file, a line with the step,
    the time a step takes and the time left every `PROGRESS_EVERY_S`; and one line per evaluation with the
    training loss and the forgetting curve's two losses."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class StageProgress(TrainerCallback):
        bar = None
        start: tuple[float, int] | None = None  # (time, step) this invocation began at
        last_line = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            if interactive():
                self.bar = tqdm(
                    total=state.max_steps, initial=state.global_step, desc=f"train {variant}", leave=False
                )
            else:
                self.start = time.monotonic(), state.global_step
                self.last_line = self.start[0]

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)
            elif self.start is not None and time.monotonic() - self.last_line >= PROGRESS_EVERY_S:
                self.last_line = time.monotonic()
                began, first = self.start
                per_step = (self.last_line - began) / max(1, state.global_step - first)
                left = per_step * (state.max_steps - state.global_step) / 60
                tqdm.write(
                    f"  [{variant}] step {state.global_step} of {state.max_steps}, {per_step:.1f} s a step, "
                    f"about {left:.0f} min left"
                )

        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {
                k.removeprefix("eval_"): v
                for k, v in (logs or {}).items()
                if k in ("loss", "eval_domain_loss", "eval_general_loss")
            }
            if shown and state.is_world_process_zero:
                tqdm.write(
                    f"  [{variant}] step {state.global_step}: "
                    + ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
                )

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return StageProgress()


def no_final_checkpoint():
    """A callback that keeps the Trainer from writing a checkpoint at the last step: the update and its
    result are what the last step saves. Resumed from a checkpoint at the last step, the Trainer would run
    one step more (a phantom step 5 of 4, and the run retrained on the next resume); from the checkpoint
    before it, a run killed while saving its update trains the last steps again, to the same weights."""
    from transformers import TrainerCallback

    class NoFinalCheckpoint(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False
            return control

    return NoFinalCheckpoint()


def training_clock():
    """Seconds of training across resumes. The clock's reading is saved inside each checkpoint (the Trainer
    writes an `ExportableState` callback's state into the checkpoint's trainer_state.json, atomically with
    the step it belongs to) and read back from the resumed state, so a run killed and resumed reports all
    the time it trained, less only what it lost after its last checkpoint. A checkpoint written before the
    clock existed holds no reading: the time before it is then not counted (`resumed_unclocked`)."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class TrainingClock(TrainerCallback, ExportableState):
        def __init__(self):
            self.seconds_before, self.started, self.resumed_unclocked = 0.0, time.perf_counter(), False

        def seconds(self) -> float:
            return self.seconds_before + time.perf_counter() - self.started

        def state(self) -> dict:
            return {"args": {}, "attributes": {"seconds": round(self.seconds(), 2)}}

        def on_train_begin(self, args, state, control, **kwargs):
            # A resumed state holds the reading saved with its checkpoint (a fresh one, the clock's own state)
            saved = state.stateful_callbacks.get(type(self).__name__) if state.global_step > 0 else None
            self.seconds_before = saved["attributes"]["seconds"] if isinstance(saved, dict) else 0.0
            self.resumed_unclocked = state.global_step > 0 and not isinstance(saved, dict)
            state.stateful_callbacks.setdefault(type(self).__name__, {})  # the Trainer fills it at a save
            self.started = time.perf_counter()

    return TrainingClock()


def tensorboard_callback(out_dir: Path):
    """`train.report_to: tensorboard`: the Trainer's scalars (train loss, the curve's domain and general
    losses) under RUN/VARIANT/tensorboard/, written offline."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        from edgeadapt.core.errors import UserError

        raise UserError(
            "train.report_to: tensorboard needs the tensorboard package: `pip install tensorboard`"
        ) from None
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(out_dir / "tensorboard")))


def training_precision(cfg: TrainConfig, device: torch.device, model_dtype: str = "auto") -> str:
    """bf16 or fp32: what training multiplies in (`train.precision`; auto follows `model.dtype` on CUDA)."""
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if device.type == "cuda" and model_dtype != "float32" else "fp32"


def bf16_training(cfg: TrainConfig, device: torch.device, model_dtype: str = "auto") -> bool:
    """Whether training multiplies in bf16 (`training_precision`)."""
    return training_precision(cfg, device, model_dtype) == "bf16"


def regularized_trainer(regularizers: tuple):
    """transformers' Trainer with each regularizer's penalty added to the training loss (never to the curve's
    evaluation losses)."""
    from transformers import Trainer

    class RegularizedTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if not (regularizers and model.training):
                return result
            loss, outputs = result if return_outputs else (result, None)
            extra = sum(r.penalty(model, self.state.global_step) for r in regularizers)
            if num_items_in_batch is not None and self.args.gradient_accumulation_steps > 1:
                # the loss above is already a share of the accumulated batch; the penalty is per step
                extra = extra / self.args.gradient_accumulation_steps
            return (loss + extra, outputs) if return_outputs else loss + extra

    return RegularizedTrainer


def training_arguments(cfg: TrainConfig, lr: float, out_dir: Path, device: torch.device, bf16: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        eval_strategy="steps",
        eval_steps=cfg.eval_every,
        eval_on_start=True,  # the curve starts at the base model
        logging_steps=cfg.eval_every,
        save_strategy="steps" if cfg.save_every else "no",
        save_steps=cfg.save_every or cfg.steps,
        save_total_limit=1,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # grouped rows come ordered (`grouped_rows`): read as they are
        train_sampling_strategy="sequential" if cfg.group_by_length else "random",
        bf16=bf16,
        use_cpu=device.type == "cpu",
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=device.type == "cuda",
        remove_unused_columns=False,
        prediction_loss_only=True,
        ddp_find_unused_parameters=False,  # under torchrun: every trainable parameter is used each step
        disable_tqdm=False,  # True would make the Trainer print raw log dicts; its bar is replaced instead
        # Fused AdamW runs on the CPU too and saves ~0.3 s per full fine-tuning step of a 135M model there.
        optim="adamw_torch_fused",
    )


def train(
    model: nn.Module,
    tokenizer,
    variant: str,
    lr: float,
    train_rows: list[dict[str, list[int]]],
    eval_sets: dict[str, list[dict[str, list[int]]]],
    cfg: TrainConfig,
    out_dir: Path,
    device: torch.device,
    bf16: bool = False,
    resume: bool = False,
    callbacks: tuple = (),
    log: Callable[[str], None] = print,
    regularizers: tuple = (),
) -> TrainResult:
    """Train a prepared model; return its curve. `eval_sets` maps a curve name (domain, general) to rows.

    `callbacks`: extra transformers TrainerCallbacks (bench/throughput.py times steps with one).
    `regularizers`: terms added to every step's loss (`training.regularizers`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if bf16 and (warning := bf16_warning("train.precision", device.type)):
        log(warning)
    sparse = accepts_logits_to_keep(model)
    trainer = regularized_trainer(tuple(regularizers))(
        model=model,
        args=training_arguments(cfg, lr, out_dir, device, bf16),
        data_collator=collator(tokenizer, sparse),
        train_dataset=to_dataset(grouped_rows(train_rows, cfg) if cfg.group_by_length else train_rows),
        eval_dataset={name: to_dataset(rows) for name, rows in eval_sets.items()},
        compute_loss_func=labelled_loss if sparse else None,
    )
    from transformers.trainer_callback import ProgressCallback

    trainer.remove_callback(ProgressCallback)  # its bars and raw log lines: stage_progress says it shorter
    trainer.add_callback(stage_progress(variant))
    trainer.add_callback(no_final_checkpoint())  # after the Trainer's own flow callback, which asks to save
    if cfg.report_to == "tensorboard":
        trainer.add_callback(tensorboard_callback(out_dir))
    for callback in callbacks:
        trainer.add_callback(callback)
    budget = None
    if cfg.forgetting_budget_pct > 0:
        budget = ForgettingBudget(model, cfg.forgetting_budget_pct, cfg.budget_patience)
        trainer.add_callback(budget)
    clock = training_clock()
    trainer.add_callback(clock)
    checkpoint = latest_complete_checkpoint(out_dir / "checkpoints") if resume else None
    if checkpoint is not None:
        log(f"[{variant}] resuming from {checkpoint} (step {checkpoint.name.rsplit('-', 1)[-1]})")
    elif resume:
        log(f"[{variant}] no complete checkpoint to resume from: training from the start")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = clock.seconds()
    if clock.resumed_unclocked:
        log(
            f"[{variant}] its checkpoint holds no clock reading: {seconds:.0f} s counts the resumed part only"
        )
    if budget is not None and budget.snapshot:
        budget.restore()
    return TrainResult(
        variant=variant,
        lr=lr,
        steps=trainer.state.global_step,
        seconds=round(seconds, 2),
        trainable_params=count_parameters(model, trainable_only=True),
        curve=curve_from_history(trainer.state.log_history, list(eval_sets)),
        budget=budget.summary(trainer.state.global_step) if budget else None,
        regularizers={r.name: r.summary() for r in regularizers} or None,
        precision="bf16" if bf16 else "fp32",
        group_by_length=cfg.group_by_length,
    )


def grouped_rows(rows: list[dict], cfg: TrainConfig) -> list[dict]:
    """The training rows in the order `train.group_by_length` reads them: batches of like length in random
    order, as many as the steps take (each process of a distributed run reads every world-size-th batch)."""
    from edgeadapt.data.batches import grouped_by_length
    from edgeadapt.training.distributed import world_size

    needed = cfg.steps * cfg.batch_size * cfg.grad_accum * world_size()
    lengths = [len(row["input_ids"]) for row in rows]
    return [rows[i] for i in grouped_by_length(lengths, cfg.batch_size, needed, cfg.seed)]


def latest_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint the Trainer finished writing (its trainer_state.json, written last, is whole);
    newer ones that a kill interrupted are removed, so a resumed run starts from what is really there."""
    import shutil

    def step(path: Path) -> int:
        suffix = path.name.rsplit("-", 1)[-1]
        return int(suffix) if suffix.isdigit() else -1

    for candidate in sorted(folder.glob("checkpoint-*"), key=step, reverse=True):
        try:
            json.loads((candidate / "trainer_state.json").read_text())
            return candidate
        except (OSError, ValueError):
            shutil.rmtree(candidate, ignore_errors=True)
    return None


def curve_from_history(history: list[dict[str, Any]], names: list[str]) -> list[dict[str, float]]:
    """Merge the Trainer's log entries into one point per step."""
    points: dict[int, dict[str, float]] = {}
    for entry in history:
        point = points.setdefault(int(entry.get("step", 0)), {"step": int(entry.get("step", 0))})
        for name in names:
            if f"eval_{name}_loss" in entry:
                point[f"{name}_loss"] = float(entry[f"eval_{name}_loss"])
        if "loss" in entry:
            point["train_loss"] = float(entry["loss"])
    return [points[s] for s in sorted(points) if len(points[s]) > 1]
