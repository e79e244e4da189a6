"""General ability under each kind of model in the LoRA-Gen study (`edgeadapt loragen eval`): the project's
general perplexity, topic retention and fact recall, as every other study measures them."""

from __future__ import annotations

from typing import Any

from edgeadapt.data.format import text_chunks
from edgeadapt.evaluation.sets import benchmark_sets
from edgeadapt.evaluation.suite import EvalSets, general_scores
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.embedder import Embedder
from edgeadapt.loragen.make import Generator
from edgeadapt.loragen.merge import merged, read_adapter
from edgeadapt.studies.loragen import generator_dir, lora_update_dir, trained_per_task

FORGETTING_BENCHMARKS = ("probes", "facts")  # what the study's first run measured; MMLU is not in its budget


def forgetting(evaluation: Any, generated: dict[str, Any]) -> dict[str, Any]:
    """General ability under each kind of model: the base (also what in-context and few-shot prompting
    run), the multi-task LoRA, and the mean over the first `forgetting_tasks` held-out tasks of the
    generated and per-task adapters. `evaluation`: the study's `loragen_eval.Evaluation` (its loaded model,
    predictor, task groups and test rows), which imports this module."""
    cfg, run = evaluation.cfg, evaluation.run
    data = run.data
    tok = evaluation.tokenizer
    sets = EvalSets(
        domain_rows=[],
        domain_encoded=[],
        domain_prompts=[],
        general_chunks=text_chunks(tok, data.general_text, cfg.eval.chunk_tokens, cfg.eval.general_chunks),
        benchmarks=benchmark_sets(data, tok, cfg, only=FORGETTING_BENCHMARKS),
    )
    topics: dict[str, list[str]] = {}
    for row in data.probes:
        topics.setdefault(row["topic"], []).append(row["prompt"])
    task_texts = [r["prompt"] for rows in evaluation.rows.values() for r in rows[:4]]
    space = TopicSpace(Embedder(), topics, {"domain:tasks": task_texts})
    keep = ("general_ppl", "on_topic_rate", "domain_leakage", "fact_recall")

    def general(label: str) -> dict[str, float]:
        evaluation.predictor.name = label
        return {
            k: v for k, v in general_scores(evaluation.predictor, sets, cfg.eval, space).items() if k in keep
        }

    out = {"base": general("base")}
    tensors, scaling = read_adapter(lora_update_dir(cfg, "multitask"))
    with merged(evaluation.model, tensors, scaling):
        out["multitask"] = general("multitask")
    tasks = evaluation.groups["heldout"][: cfg.loragen.forgetting_tasks]
    for spec in generated:
        generator = Generator.open(generator_dir(cfg, spec), cfg.base_dir)
        points = []
        for task in tasks:
            with merged(evaluation.model, generator.generate(task.description)[0], generator.cfg.scaling):
                points.append(general(f"generated {task.name}"))
        out[f"generated[{spec}]"] = mean_dicts(points)
    points = []
    for task in tasks:
        folder = trained_per_task(cfg, task.name)
        if folder is None:
            continue
        tensors, scaling = read_adapter(folder)
        with merged(evaluation.model, tensors, scaling):
            points.append(general(f"per-task {task.name}"))
    out["per-task"] = mean_dicts(points) if points else {}
    out["tasks"] = [t.name for t in tasks]
    return out


def mean_dicts(points: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in points[0] if all(isinstance(p.get(k), (int, float)) for p in points)]
    return {k: sum(p[k] for p in points) / len(points) for k in keys}
