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
KEEP = ("general_ppl", "on_topic_rate", "domain_leakage", "fact_recall")


class Forgetting:
    """General ability under each kind of model: the base (also what in-context and few-shot prompting
    run), the multi-task LoRA, and the mean over the first `forgetting_tasks` held-out tasks of the
    generated and per-task adapters. `evaluation`: the study's `loragen_eval.Evaluation` (its loaded model,
    predictor, task groups and test rows), which imports this module. The evaluation sets are built on first
    use: a study whose forgetting parts were all measured earlier builds none."""

    def __init__(self, evaluation: Any):
        self.evaluation, self.cfg = evaluation, evaluation.cfg
        self.tasks = evaluation.groups["heldout"][: self.cfg.loragen.forgetting_tasks]
        self._sets: tuple[EvalSets, TopicSpace] | None = None

    def sets(self) -> tuple[EvalSets, TopicSpace]:
        if self._sets is None:
            cfg, evaluation = self.cfg, self.evaluation
            data, tok = evaluation.run.data, evaluation.tokenizer
            sets = EvalSets(
                domain_rows=[],
                domain_encoded=[],
                domain_prompts=[],
                general_chunks=text_chunks(
                    tok, data.general_text, cfg.eval.chunk_tokens, cfg.eval.general_chunks
                ),
                benchmarks=benchmark_sets(data, tok, cfg, only=FORGETTING_BENCHMARKS),
            )
            topics: dict[str, list[str]] = {}
            for row in data.probes:
                topics.setdefault(row["topic"], []).append(row["prompt"])
            task_texts = [r["prompt"] for rows in evaluation.rows.values() for r in rows[:4]]
            self._sets = sets, TopicSpace(Embedder(), topics, {"domain:tasks": task_texts})
        return self._sets

    def general(self, label: str) -> dict[str, float]:
        sets, space = self.sets()
        self.evaluation.predictor.name = label
        scores = general_scores(self.evaluation.predictor, sets, self.cfg.eval, space)
        return {k: v for k, v in scores.items() if k in KEEP}

    def under(self, tensors: dict, scaling: float, label: str) -> dict[str, float]:
        with merged(self.evaluation.model, tensors, scaling):
            return self.general(label)

    def baselines(self) -> dict[str, Any]:
        """The base, the multi-task LoRA and the per-task LoRAs of the forgetting tasks."""
        out = {"base": self.general("base")}
        out["multitask"] = self.multitask()
        folders = {t.name: trained_per_task(self.cfg, t.name) for t in self.tasks}
        points = [
            self.under(*read_adapter(folder), f"per-task {name}")
            for name, folder in folders.items()
            if folder is not None
        ]
        out["per-task"] = mean_dicts(points) if points else {}
        out["tasks"] = [t.name for t in self.tasks]
        return out

    def multitask(self) -> dict[str, float]:
        return self.under(*read_adapter(lora_update_dir(self.cfg, "multitask")), "multitask")

    def generated(self, spec: str) -> dict[str, float]:
        """The mean over the forgetting tasks of the adapters one generator makes from their descriptions."""
        generator = Generator.open(generator_dir(self.cfg, spec), self.cfg.base_dir)
        return mean_dicts(
            [
                self.under(generator.generate(t.description)[0], generator.cfg.scaling, f"generated {t.name}")
                for t in self.tasks
            ]
        )


def mean_dicts(points: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in points[0] if all(isinstance(p.get(k), (int, float)) for p in points)]
    return {k: sum(p[k] for p in points) / len(points) for k in keys}
