"""`edgeadapt loragen train CONFIG`: the generator, and the two baselines it is judged against, all trained by
the one training loop on the collection's training tasks.

- the generator (RUN/generators/SPEC/, of the design `loragen.kind` or the one its spec names): for each
  training row, one of its task's training descriptions (the description and `loragen.train_paraphrases`
  paraphrases) is read, the generator turns it into a LoRA, and the frozen edge model with that LoRA is
  scored on the row's answer (the multi-task SFT loss); only the generator learns;
- `multitask` (RUN/multitask/): one ordinary LoRA on the same rows, for the same steps (no description);
- `per-task` (RUN/per-task/TASK/): a LoRA on one task's own rows, for every held-out task and the training
  tasks of `loragen.per_task` (the upper bound: it needs that task's data, the generator does not).

Every stage is resumable (`--resume` reuses what finished).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from peft.utils import SAFETENSORS_WEIGHTS_NAME as ADAPTER_WEIGHTS  # PEFT's name for a LoRA's weights

from edgeadapt.core.config import RunConfig
from edgeadapt.core.errors import UserError
from edgeadapt.core.files import file_name, write_json_atomic
from edgeadapt.data.format import encode, text_chunks
from edgeadapt.data.tasks import Collection, Task, open_collection
from edgeadapt.loragen.encoders import DescriptionEncoder
from edgeadapt.loragen.generated import GeneratedLoRAModel
from edgeadapt.loragen.make import DESCRIPTIONS, Generator, nearest_other_task
from edgeadapt.loragen.registry import GeneratorSetup, get_generator, split_spec
from edgeadapt.models.loading import pick_device
from edgeadapt.runs.run import Run
from edgeadapt.studies.parts import comparable, differences
from edgeadapt.studies.train import forget_training, train_variant
from edgeadapt.training.loop import TrainResult, bf16_training, train, training_precision

VAL_PER_TASK = 2  # rows of each training task kept out of training for the curve
GENERATOR_READS = (
    "model",
    "data.max_length",
    "tasks",
    "train.seed",
    "train.grad_accum",
    "train.scheduler",
    "train.weight_decay",
    "train.precision",
    "train.group_by_length",
    "loragen.targets",
    "loragen.rank",
    "loragen.alpha",
    "loragen.steps",
    "loragen.batch_size",
    "loragen.lr",
    "loragen.warmup_steps",
    "loragen.train_paraphrases",
)
"""The settings every generator is trained under (each design adds its own, `GeneratorKind.reads`): under
`--resume`, a generator trained under others is trained again."""
TRAINED_UNDER = "trained_under.json"
GENERATOR_PRECISION = "generator_precision"
"""Recorded beside train.precision bf16: what the generator multiplied in (bf16 too, before 2026-12-05)."""


def collection_of(cfg: RunConfig, log: Callable[[str], None] = print) -> Collection:
    t = cfg.tasks
    return open_collection(t.collection, t.seed, t.test_rows, t.train_rows, t.max_prompt_chars, log=log)


def generator_dir(cfg: RunConfig, encoder: str) -> Path:
    return cfg.run_dir() / "generators" / file_name(encoder)


def seen_sample(tasks: list[Task], count: int, keep: list[str]) -> list[Task]:
    """`count` training tasks (all when 0): those in `keep`, then one source at a time in turn, so every
    source is represented before any has two."""
    if not count or count >= len(tasks):
        return tasks
    chosen = [t for t in tasks if t.name in keep]
    by_source: dict[str, list[Task]] = {}
    for task in tasks:
        if task not in chosen:
            by_source.setdefault(task.source, []).append(task)
    queues = list(by_source.values())
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return [t for t in tasks if t in chosen]


def training_texts(
    tasks: list[Task], paraphrases: int, others: int | None = None, seen: frozenset[str] = frozenset()
) -> tuple[list[str], list[int]]:
    """Every training description (the description and the first `paraphrases` paraphrases of each task; of a
    task not in `seen`, the first `others` where given) and the index of the task it describes."""
    texts, task_of = [], []
    for index, task in enumerate(tasks):
        count = paraphrases if others is None or task.name in seen else others
        for text in trained_texts(task, count):
            texts.append(text)
            task_of.append(index)
    return texts, task_of


def generator_texts(cfg: RunConfig, tasks: list[Task]) -> tuple[list[str], list[int]]:
    """`training_texts` under the study's settings: what its generator trains on (and a probe of it reads)."""
    g = cfg.loragen
    seen = frozenset(t.name for t in seen_sample(tasks, g.seen_tasks, g.per_task))
    return training_texts(tasks, g.train_paraphrases, g.other_paraphrases, seen)


def trained_texts(task: Task, paraphrases: int) -> list[str]:
    """The texts a task trains the generator on: its description, then its first `paraphrases` paraphrases
    (`asked_texts` asks a seen task from the rest)."""
    return [task.description, *task.paraphrases[:paraphrases]]


def asked_texts(task: Task, group: str, paraphrases: int) -> list[str]:
    """The texts the study asks a task from, its headline text first: a seen task from each paraphrase it never
    trained on (after the first `paraphrases`), any other task from its description, then each paraphrase."""
    return task.paraphrases[paraphrases:] if group == "seen" else [task.description, *task.paraphrases]


def generator_rows(
    collection: Collection, tasks: list[Task], task_of: list[int], tokenizer, max_length: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows), encoded, each with `task`: the index of a description of its task
    (drawn at random among the task's training descriptions)."""
    rng = random.Random(seed)
    options = {i: [d for d, t in enumerate(task_of) if t == i] for i in range(len(tasks))}
    train_rows, val_rows = [], []
    for index, task in enumerate(tasks):
        rows = collection.rows(task.name, "train")
        for n, row in enumerate(rows):
            encoded = encode(tokenizer, {"prompt": row["prompt"], "response": row["response"]}, max_length)
            encoded["task"] = rng.choice(options[index])
            (val_rows if n >= len(rows) - VAL_PER_TASK else train_rows).append(encoded)
    rng.shuffle(train_rows)
    return train_rows, val_rows


def loop_config(cfg: RunConfig, steps: int):
    g = cfg.loragen
    return dataclasses.replace(
        cfg.train,
        steps=steps,
        batch_size=g.batch_size,
        warmup_steps=g.warmup_steps,
        eval_every=min(g.eval_every, steps),
        forgetting_budget_pct=0.0,
    )


def base_run(cfg: RunConfig) -> Run:
    return Run(cfg, only=[cfg.loragen.multitask], read_data=False)


def train_generator(
    cfg: RunConfig,
    collection: Collection,
    encoder_spec: str,
    resume: bool = False,
    log: Callable[[str], None] = print,
    encoder: DescriptionEncoder | None = None,
    callbacks: tuple = (),
) -> Path:
    """Train (or reuse) the generator of this spec (`[KIND:]ENCODER`, kind `loragen.kind` when not named);
    return its folder. `callbacks`: extra TrainerCallbacks (bench/loragen_steps.py times steps with one)."""
    from safetensors.torch import save_file

    folder = generator_dir(cfg, encoder_spec)
    kind_name, encoder_name = split_spec(encoder_spec, cfg.loragen.kind)
    kind = get_generator(kind_name, "loragen.kind")
    settings = generator_settings(cfg, kind)
    if resume and not same_training(folder, settings, f"[generator {encoder_spec}]", log):
        forget_training(folder)
    done = TrainResult.load(folder) if resume else None
    if done is not None:
        log(f"[generator {encoder_spec}] already trained ({done.steps} steps): reusing {folder}")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / TRAINED_UNDER, settings)
    run, g = base_run(cfg), cfg.loragen
    tasks = collection.by_role("train")
    if len(tasks) < 2:
        raise UserError(f"{collection.folder}: the generator needs at least two training tasks.")
    texts, task_of = generator_texts(cfg, tasks)
    base = run.load_model(torch.float32)
    setup = GeneratorSetup(
        g, encoder_name, texts, base, cfg.model.name, cfg.train.seed, cfg.base_dir, run.device, encoder
    )
    generator = kind.build(setup)
    model = GeneratedLoRAModel(base, generator)
    train_rows, val_rows = generator_rows(
        collection, tasks, task_of, run.tokenizer, cfg.data.max_length, cfg.train.seed
    )
    general = general_curve(run, len(texts))
    log(
        f"[generator {encoder_spec}] {kind.name}: {len(tasks)} tasks, {len(texts)} descriptions, "
        f"{len(train_rows)} rows; {sum(p.numel() for p in generator.parameters()):,} parameters; lr {g.lr}, "
        f"{g.steps} steps"
    )
    result = train(
        model,
        run.tokenizer,
        f"generator {encoder_spec}",
        g.lr,
        train_rows,
        {"domain": val_rows, "general": general},
        loop_config(cfg, g.steps),
        folder,
        run.device,
        bf16=bf16_training(cfg.train, run.device, cfg.model.dtype),
        resume=resume,
        callbacks=callbacks,
        regularizers=kind.regularizers(generator, g),
    )
    model.remove_hooks()
    generator.eval()
    # how far apart the tasks' descriptions end up, as the trained generator reads them: a new description
    # less similar to every training one than this is unfamiliar (`loragen make` warns)
    fingerprints = generator.fingerprint(generator.read(texts))
    generator.cfg.familiar_similarity = nearest_other_task(fingerprints, task_of)
    generator.save(folder)
    save_file({"embeddings": fingerprints.contiguous()}, str(folder / DESCRIPTIONS))
    result.save(folder)  # last: its presence means the generator is complete
    return folder


def generator_settings(cfg: RunConfig, kind) -> dict:
    """The settings a generator of this design (a `GeneratorKind`) is trained under, as its folder's
    trained_under.json records them: what `--resume` compares before reusing it."""
    reads = [*GENERATOR_READS, *(f"loragen.{key}" for key in kind.reads)]
    if cfg.loragen.other_paraphrases is not None:  # the seen sample then decides the training texts
        reads += ["loragen.other_paraphrases", "loragen.seen_tasks", "loragen.per_task"]
    settings = comparable(cfg, tuple(reads))
    if training_precision(cfg.train, pick_device(), cfg.model.dtype) == "bf16":
        # the generator's own products stay fp32 (`full_precision`); one trained in bf16 before is retrained
        settings[GENERATOR_PRECISION] = "fp32"
    return settings


def open_trained(cfg: RunConfig, spec: str) -> Generator:
    """The generator `spec` trained in the run the config names, refused (a UserError naming what differs)
    when it is missing or was trained under other settings: a bench then reads the generator it means."""
    folder = generator_dir(cfg, spec)
    if not (folder / TRAINED_UNDER).is_file():
        raise UserError(f"{folder}: no trained generator there; pass the overrides it was trained under")
    kind = get_generator(split_spec(spec, cfg.loragen.kind)[0], "loragen.kind")
    changed = differences(json.loads((folder / TRAINED_UNDER).read_text()), generator_settings(cfg, kind))
    if changed:
        raise UserError(f"{folder} was trained under other settings ({', '.join(changed)})")
    return Generator.open(folder, cfg.base_dir)


def same_training(folder: Path, settings: dict, label: str, log: Callable[[str], None]) -> bool:
    """Whether what `folder` holds (a finished generator, or checkpoints to resume) was trained under these
    settings. A folder from before settings were recorded is taken as it is, with a line saying so."""
    path = folder / TRAINED_UNDER
    if not path.is_file():
        if (folder / "checkpoints").is_dir() or TrainResult.load(folder) is not None:
            log(f"{label} {folder} does not record the settings it was trained under: taken as it is")
        return True
    changed = differences(json.loads(path.read_text()), settings)
    if changed:
        log(f"{label} {folder} was trained under other settings ({', '.join(changed)}): training again")
    return not changed


def general_curve(run: Run, descriptions: int) -> list[dict]:
    """General held-out chunks, each under a generated adapter (descriptions in turn): the forgetting curve."""
    cfg = run.cfg
    chunks = text_chunks(
        run.tokenizer, run.data.general_text, cfg.eval.chunk_tokens, cfg.train.curve_general_chunks
    )
    return [{**chunk, "task": i % descriptions} for i, chunk in enumerate(chunks)]


def sub_run(cfg: RunConfig, name: str) -> Run:
    sub = copy.deepcopy(cfg)
    sub.out_dir, sub.name = str(cfg.run_dir()), name
    return Run(sub, only=[cfg.loragen.multitask], read_data=False)


def lora_update_dir(cfg: RunConfig, sub: str) -> Path:
    """Where the LoRA baseline trained as sub-run `sub` (`multitask`, `per-task/TASK`) saved its update."""
    return cfg.run_dir() / sub / cfg.loragen.multitask / "update"


def lora_rows(collection: Collection, tasks: list[Task], tokenizer, max_length: int, seed: int):
    rows, val = [], []
    for task in tasks:
        task_rows = collection.rows(task.name, "train")
        for n, row in enumerate(task_rows):
            encoded = encode(tokenizer, {"prompt": row["prompt"], "response": row["response"]}, max_length)
            (val if n >= len(task_rows) - VAL_PER_TASK else rows).append(encoded)
    random.Random(seed).shuffle(rows)
    return rows, val


def train_lora(cfg: RunConfig, run: Run, collection: Collection, tasks: list[Task], steps: int, resume, log):
    """An ordinary LoRA (the `loragen.multitask` variant) on these tasks' rows, no description."""
    variant = cfg.loragen.multitask
    rows, val = lora_rows(collection, tasks, run.tokenizer, cfg.data.max_length, cfg.train.seed)
    general = text_chunks(
        run.tokenizer, run.data.general_text, cfg.eval.chunk_tokens, cfg.train.curve_general_chunks
    )
    sub_cfg = dataclasses.replace(  # the generator's batch and curve cadence: the same budget for both
        cfg.train, batch_size=cfg.loragen.batch_size, eval_every=min(cfg.loragen.eval_every, steps)
    )
    run.cfg.train = sub_cfg
    return train_variant(
        run,
        variant,
        run.method_cfgs[variant],
        rows,
        {"domain": val, "general": general},
        rows,
        steps,
        resume,
        log,
    )


def study_budget(cfg: RunConfig) -> dict[str, Any]:
    """What the generators and the multi-task LoRA train with (the same steps and batch; the LoRA keeps its
    method's lr), and the per-task LoRAs' steps: recorded with the results so a reader can tell a generator or
    baseline added under another budget (`bench/loragen_add.py`) from the study's own."""
    return {**generator_budget(cfg), "per_task_steps": cfg.loragen.per_task_steps}


def generator_budget(cfg: RunConfig) -> dict[str, Any]:
    """The steps, batch, learning rate, precision and seed a generator trains with."""
    g = cfg.loragen
    precision = training_precision(cfg.train, pick_device(), cfg.model.dtype)
    grouped = cfg.train.group_by_length
    return {
        "steps": g.steps,
        "batch_size": g.batch_size,
        "lr": g.lr,
        "precision": precision,
        "group_by_length": grouped,
        "seed": cfg.train.seed,
    }


def per_task_names(cfg: RunConfig, collection: Collection) -> list[str]:
    from edgeadapt.data.tasks import pick

    seen = [t.name for t in pick(collection, cfg.loragen.per_task)]
    return [t.name for t in collection.by_role("heldout")] + seen


def train_all(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Path]:
    """The generator for every encoder, the multi-task LoRA and the per-task LoRAs."""
    for spec in encoders_of(cfg):  # an unknown design stops here, before anything trains
        get_generator(split_spec(spec, cfg.loragen.kind)[0], "loragen.kind")
    collection = collection_of(cfg, log)
    folders = {spec: train_generator(cfg, collection, spec, resume, log) for spec in encoders_of(cfg)}
    train_lora(
        cfg,
        sub_run(cfg, "multitask"),
        collection,
        collection.by_role("train"),
        cfg.loragen.steps,
        resume,
        log,
    )
    for name in per_task_names(cfg, collection):
        run = sub_run(cfg, f"per-task/{name}")
        train_lora(cfg, run, collection, [collection.tasks[name]], cfg.loragen.per_task_steps, resume, log)
    return folders


def encoders_of(cfg: RunConfig) -> list[str]:
    return list(dict.fromkeys([cfg.loragen.encoder, *cfg.loragen.compare_encoders]))


def trained_per_task(cfg: RunConfig, name: str) -> Path | None:
    """The per-task LoRA's update folder, or None when training stopped before that task."""
    folder = lora_update_dir(cfg, f"per-task/{name}")
    return folder if (folder / ADAPTER_WEIGHTS).is_file() else None


def adapter_bytes(folder) -> int:
    return (folder / ADAPTER_WEIGHTS).stat().st_size
