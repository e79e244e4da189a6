"""`edgeadapt loragen eval CONFIG`: the generated adapters against the ways a user has today, side by side on
held-out tasks, on seen tasks with unseen paraphrases, and on unseen concepts of a seen source.

Rows: the base model told only a short task name (zero-shot), the description (in-context), the description
and worked examples (few-shot); the adapter generated from the description, merged, with no description in the
prompt (one row per encoder); the multi-task LoRA; the per-task LoRA. Controls: adapters generated from a
random string, another task's description, the description's words shuffled. Robustness: each paraphrase.

Per row: task score, prompt tokens, prefill and total latency per request (batch 1; each generator's rows also
time in-context requests beside them), forgetting, adapter generation time and size. Results go to
RUN/loragen.json and RUN/loragen.md; each finished part (the prompting rows, each encoder's generated rows,
the LoRA rows, forgetting) also to RUN/loragen-parts/, which `--resume` reads back instead of measuring again.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from edgeadapt.core.config import RunConfig
from edgeadapt.core.resources import bf16_warning
from edgeadapt.data.tasks import Collection, Task
from edgeadapt.evaluation.task_scores import Prompting, prompt_for, score_rows, user_ids
from edgeadapt.inference.predictor import ModelPredictor, answering
from edgeadapt.inference.timing import timed_answer
from edgeadapt.loragen.make import Generator
from edgeadapt.loragen.merge import merged, read_adapter
from edgeadapt.loragen.registry import WEIGHTS
from edgeadapt.runs import schema
from edgeadapt.studies.loragen import (
    ADAPTER_WEIGHTS,
    adapter_bytes,
    asked_texts,
    base_run,
    collection_of,
    encoders_of,
    generator_dir,
    lora_update_dir,
    per_task_names,
    seen_sample,
    study_budget,
    trained_per_task,
)
from edgeadapt.studies.loragen_forgetting import Forgetting
from edgeadapt.studies.parts import digest, part

GROUPS = ("heldout", "seen", "unseen-concept")
READS = (
    "model",
    "data",
    "eval",
    "tasks",
    "train.seed",
    "loragen.seen_tasks",
    "loragen.per_task",
    "loragen.train_paraphrases",
    "loragen.eval_rows",
    "loragen.shots",
    "loragen.latency_requests",
    "loragen.generation_repeats",
    "loragen.forgetting_tasks",
    "loragen.answer_precision",
)
"""The settings every part of the study reads: the model, its evaluation, the tasks and rows scored. What was
trained enters a part as the digest of its files (`identities`), so retraining one generator measures its
rows again and a change to a generator's settings alone measures nothing until it is retrained."""
PROMPTING_READS = tuple(key for key in READS if key != "train.seed")
"""The base model's rows (zero-shot, in-context, few-shot) read no training seed: greedy answers to the same
rows. A second seed's study reuses the first's when RUN/loragen-parts/prompting.json is copied into its run
(`--resume`); on two cores that part is most of an hour with 48 seen tasks."""


def test_rows(collection: Collection, task: Task, cap: int) -> list[dict]:
    return collection.rows(task.name, "test")[:cap]


CONTROLS_OF = "the text read"
"""What a control is made from, recorded with every generator's rows: the text the right row reads (a seen
task's unseen paraphrase, a held-out task's description). Controls once shuffled a seen task's *trained*
description, nearly a trained text to a bag-of-words reader; runs measured so lack the record."""


def controls(read: str, task: Task, others: list[Task], seed: int) -> dict[str, str]:
    """Descriptions an adapter should not do well from: random letters of the same length as `read` (the text
    the right row reads), another task's description, `read`'s words in random order."""
    rng = random.Random(f"{seed}:{task.name}")
    words = read.split()
    random_words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(max(2, len(w)))) for w in words
    ]
    shuffled = words[:]
    rng.shuffle(shuffled)
    other = others[(others.index(task) + 1) % len(others)] if task in others else others[0]
    return {
        "random": " ".join(random_words),
        "other": other.description,
        "shuffled": " ".join(shuffled),
    }


class Evaluation:
    """One loaded base model, every prompting and every adapter in turn; scores and timings per task."""

    def __init__(self, cfg: RunConfig, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        self.collection = collection_of(cfg, log)
        self.run = base_run(cfg)
        self.tokenizer = self.run.tokenizer
        self.model = self.run.load_model(torch.float32)
        bf16 = cfg.loragen.answer_precision == "bf16"
        if bf16 and (warning := bf16_warning("loragen.answer_precision", self.run.device.type)):
            log(warning)
        self.predictor = ModelPredictor(self.model, self.tokenizer, "loragen", bf16)
        g = cfg.loragen
        seen = seen_sample(self.collection.by_role("train"), g.seen_tasks, g.per_task)
        self.groups = {
            "heldout": self.collection.by_role("heldout"),
            "seen": seen,
            "unseen-concept": self.collection.by_role("unseen-concept"),
        }
        self.rows = {
            t.name: test_rows(self.collection, t, g.eval_rows) for ts in self.groups.values() for t in ts
        }
        self.stop_ids = {
            i
            for i in (self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>"))
            if isinstance(i, int) and i >= 0
        }

    def group_names(self) -> dict[str, list[str]]:
        """Each group's task names, as loragen.json records them."""
        return {g: [t.name for t in ts] for g, ts in self.groups.items()}

    def score(self, task: Task, how: Prompting, label: str) -> dict[str, Any]:
        e = self.cfg.eval
        out = score_rows(
            self.predictor,
            task.kind,
            self.rows[task.name],
            how,
            self.cfg.data.max_length * 2,
            e.max_new_tokens,
            e.generate_batch_size if task.kind == "exact" else e.batch_size,
            f"{label} {task.name}",
        )
        return {"score": out["score"], "prompt_tokens": out["prompt_tokens"], "samples": out["answers"][:3]}

    def latency(self, task: Task, how: Prompting) -> dict[str, float]:
        """Median prefill and total seconds of `latency_requests` requests, one at a time, as served."""
        with answering(self.model, self.predictor.bf16):  # timed as it scores
            timings = [
                self.one_request(row, how)
                for row in self.rows[task.name][: self.cfg.loragen.latency_requests]
            ]
        return {
            "prefill_ms": 1000 * statistics.median(t["prefill_s"] for t in timings),
            "total_ms": 1000 * statistics.median(t["total_s"] for t in timings),
            "new_tokens": statistics.mean(t["new_tokens"] for t in timings),
        }

    def one_request(self, row: dict, how: Prompting) -> dict[str, float]:
        """One request answered alone, as served."""
        return timed_answer(
            self.model,
            user_ids(self.tokenizer, prompt_for(row, how)),
            self.cfg.eval.max_new_tokens,
            self.stop_ids,
        )

    def measure(self, task: Task, how: Prompting, label: str, timed: bool = True) -> dict[str, Any]:
        result = self.score(task, how, label)
        if timed:
            result.update(self.latency(task, how))
        # one line a measurement: the only sign of progress in a log, where the bars stay silent
        speed = f", {result['total_ms']:,.0f} ms a request" if timed else ""
        self.log(f"  {label} {task.name}: {result['score']:.0%}{speed}")
        return result

    def shots_of(self, task: Task) -> tuple[dict, ...]:
        return tuple(self.collection.rows(task.name, "train")[: self.cfg.loragen.shots])

    def prompting_rows(self) -> dict[str, dict[str, dict]]:
        """Rows 1-2: the base model told the task name, the description, the description and examples."""
        out: dict[str, dict[str, dict]] = {"zero-shot": {}, "in-context": {}, "few-shot": {}}
        for tasks in self.groups.values():
            for task in tasks:
                out["zero-shot"][task.name] = self.measure(task, Prompting("title", task.title), "zero-shot")
                out["in-context"][task.name] = self.measure(
                    task, Prompting("description", task.description), "in-context"
                )
                out["few-shot"][task.name] = self.measure(
                    task, Prompting("shots", task.description, self.shots_of(task)), "few-shot"
                )
        return out

    def with_adapter(
        self, tensors, scaling, tasks: list[Task], label: str, timed: bool = True
    ) -> dict[str, dict]:
        with merged(self.model, tensors, scaling):
            return {t.name: self.measure(t, Prompting("none"), label, timed) for t in tasks}

    def generated_rows(self, spec: str) -> dict[str, Any]:
        """Row 3 for one encoder: held-out and unseen-concept tasks from their description (and each
        paraphrase, for the spread), seen tasks from their unseen paraphrases; controls on held-out and seen."""
        generator = Generator.open(generator_dir(self.cfg, spec), self.cfg.base_dir)
        scaling, k = generator.cfg.scaling, self.cfg.loragen.train_paraphrases
        out: dict[str, Any] = {
            "tasks": {},
            "paraphrases": {},
            "controls": {},
            "controls_of": CONTROLS_OF,
            "familiarity": {},
        }
        for group, tasks in self.groups.items():
            for task in tasks:
                if not (texts := asked_texts(task, group, k)):  # a seen task with no untrained paraphrase
                    continue
                scores = []
                for n, text in enumerate(texts):
                    tensors, embedding, _ = generator.generate(text)
                    result = self.with_adapter(
                        {**tensors}, scaling, [task], f"generated[{spec}]", timed=n == 0
                    )[task.name]
                    scores.append(result["score"])
                    if n == 0:
                        out["tasks"][task.name] = result
                        out["familiarity"][task.name] = generator.familiarity(embedding)
                out["paraphrases"][task.name] = scores
                if group != "unseen-concept":
                    out["controls"][task.name] = {
                        kind: self.with_adapter(
                            generator.generate(text)[0], scaling, [task], f"control {kind}", False
                        )[task.name]["score"]
                        for kind, text in controls(texts[0], task, tasks, self.cfg.train.seed).items()
                    }
        # in-context timed again here: a speed-up divides one process's timings, never two sessions'
        out["in_context_latency"] = {
            t.name: self.latency(t, Prompting("description", t.description)) for t in self.groups["heldout"]
        }
        out["generation_ms"] = generation_ms(
            generator, self.groups["heldout"][0].description, self.cfg.loragen.generation_repeats
        )
        out["adapter_bytes"] = sum(
            t.numel() * t.element_size() for t in generator.generate("x " * 4)[0].values()
        )
        return out

    def multitask_rows(self) -> dict[str, dict]:
        """Row 4: the multi-task LoRA on every task of every group."""
        tensors, scaling = read_adapter(lora_update_dir(self.cfg, "multitask"))
        every = [t for ts in self.groups.values() for t in ts]
        return self.with_adapter(tensors, scaling, every, "multitask")

    def lora_rows(self) -> dict[str, Any]:
        """Rows 4 and 5: the multi-task LoRA on every task, the per-task LoRAs on their own task."""
        folder = lora_update_dir(self.cfg, "multitask")
        out = {"multitask": self.multitask_rows(), "per-task": {}, "multitask_bytes": adapter_bytes(folder)}
        sizes, missing = [], []
        for name in per_task_names(self.cfg, self.collection):
            folder = trained_per_task(self.cfg, name)
            if folder is None:
                missing.append(name)
                continue
            tensors, scaling = read_adapter(folder)
            out["per-task"].update(
                self.with_adapter(tensors, scaling, [self.collection.tasks[name]], "per-task")
            )
            sizes.append(adapter_bytes(folder))
        out["per_task_bytes"] = sizes[0] if sizes else None
        if missing:
            out["per_task_missing"] = missing
            print(f"per-task LoRAs not trained (rows left out): {', '.join(missing)}")
        return out


def generation_ms(generator: Generator, description: str, repeats: int) -> dict[str, float]:
    """Median milliseconds to turn a description into adapter weights (the encoder or reader, and the
    generator), on one thread count as configured; the first call (warm-up) is left out."""
    generator.generate(description)
    total, encode = [], []
    for _ in range(repeats):
        encode.append(generator.read_seconds(description))
        total.append(generator.generate(description)[2])
    return {"total_ms": 1000 * statistics.median(total), "encoder_ms": 1000 * statistics.median(encode)}


def identities(cfg: RunConfig, evaluation: Evaluation) -> dict[str, str | None]:
    """The digest of what each part measures: every generator's weights, the multi-task and per-task LoRAs'."""
    ids = {spec: digest(generator_dir(cfg, spec) / WEIGHTS) for spec in encoders_of(cfg)}
    ids["multitask"] = digest(lora_update_dir(cfg, "multitask") / ADAPTER_WEIGHTS)
    for name in per_task_names(cfg, evaluation.collection):
        ids[f"per-task/{name}"] = digest(lora_update_dir(cfg, f"per-task/{name}") / ADAPTER_WEIGHTS)
    return ids


Part = tuple[str, Callable[[], Any], str, dict]
"""One part of the study: its name, what measures it, the heading it logs, the identity of what it measures."""


def generated_part(evaluation: Evaluation, spec: str, generator_id: str | None) -> Part:
    """Row 3 for one generator: its adapters' rows and controls, keyed on its weights and the controls' text."""
    return (
        f"generated-{spec}",
        lambda: evaluation.generated_rows(spec),
        f"row 3: adapters generated with encoder {spec}",
        {"generator": generator_id, "controls_of": CONTROLS_OF},
    )


def forgetting_part(general: Forgetting, spec: str, generator_id: str | None) -> Part:
    """General ability under one generator's adapters, keyed on its weights."""
    return (
        f"forgetting-{spec}",
        lambda: general.generated(spec),
        f"forgetting of general ability: adapters generated with encoder {spec}",
        {"generator": generator_id},
    )


def part_runner(
    cfg: RunConfig, resume: bool, log: Callable[[str], None], seconds: list[float]
) -> Callable[[str, Callable[[], Any], str, dict], Any]:
    """What runs one `Part` of the study: logs its heading, measures it (or with `resume` reads it back from
    RUN/loragen-parts/, if measured under the same `reads`), adds its seconds to `seconds`, returns its result."""

    def run_part(
        name: str, compute: Callable[[], Any], heading: str, identity: dict, reads: tuple[str, ...] = READS
    ) -> Any:
        log(heading)
        result, took = part(cfg, "loragen-parts", name, compute, resume, log, reads, identity)
        seconds.append(took)
        return result

    return run_part


def evaluate(cfg: RunConfig, log: Callable[[str], None] = print, resume: bool = False) -> dict[str, Any]:
    """Every part of the study (with `resume`, those an earlier invocation finished are read back); the
    results with their summary in RUN/loragen.json. `seconds` adds up the parts' measured times."""
    from edgeadapt.studies.loragen_summary import summarize

    start = time.perf_counter()
    evaluation = Evaluation(cfg, log)
    seconds = [time.perf_counter() - start]

    ids = identities(cfg, evaluation)
    run_part = part_runner(cfg, resume, log, seconds)
    results: dict[str, Any] = {
        "schema_version": schema.SCHEMA_VERSION,
        "prompting": run_part(
            "prompting",
            evaluation.prompting_rows,
            "rows 1-2: the base model, zero-shot, in-context and few-shot",
            {},
            PROMPTING_READS,
        ),
    }
    results["generated"] = {
        spec: run_part(*generated_part(evaluation, spec, ids[spec])) for spec in encoders_of(cfg)
    }
    loras = {k: v for k, v in ids.items() if k not in results["generated"]}
    results["lora"] = run_part(
        "lora", evaluation.lora_rows, "rows 4-5: the multi-task and per-task LoRAs", {"adapters": loras}
    )
    general = Forgetting(evaluation)
    results["forgetting"] = run_part(
        "forgetting", general.baselines, "forgetting of general ability: base and LoRAs", {"adapters": loras}
    )
    for spec in results["generated"]:
        results["forgetting"][f"generated[{spec}]"] = run_part(*forgetting_part(general, spec, ids[spec]))
    results["groups"] = evaluation.group_names()
    results["task_info"] = {
        n: {"source": t.source, "kind": t.kind, "choices": len(t.choices)}
        for n, t in evaluation.collection.tasks.items()
    }
    results["budget"] = study_budget(cfg)
    results["answer_precision"] = cfg.loragen.answer_precision
    results["seconds"] = round(sum(seconds), 1)
    results["summary"] = summarize(results)
    return schema.write(cfg.run_dir() / "loragen.json", results, schema.LoragenResults)
