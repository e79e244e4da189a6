"""The evaluation suite: the same held-out sets for the base model and every tuned, routed or generated one,
always through a predictor (`edgeadapt.inference.predictor`).

- `domain_ppl`, `domain_accuracy`: the domain test set (perplexity of the responses, greedy answers by
  normalized exact match), per domain where a study has several;
- `general_ppl`: perplexity of general held-out prose, in fixed chunks;
- every registered general benchmark (`evaluation.benchmarks`: topic retention from general probes, fact
  recall, MMLU, other domains' accuracy, ...) on the set it prepared, when the config turns it on;
- `peak_rss_bytes`: the process's peak resident memory while the model was evaluated (sampled every 20 ms;
  it includes what else the process holds, e.g. the embedding model for the probes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from edgeadapt.core.config import EvalConfig
from edgeadapt.core.resources import peak_rss
from edgeadapt.data.format import prompt_text, reference
from edgeadapt.evaluation.metrics import exact_match
from edgeadapt.evaluation.registry import BENCHMARKS
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.predictor import Predictor, perplexity


@dataclass
class EvalSets:
    """Everything tokenized once and shared by every model evaluated in a run."""

    domain_rows: list[dict]  # raw test rows (prompt/response or messages)
    domain_encoded: list[dict[str, list[int]]]  # prompt + response with the loss on the response
    domain_prompts: list[list[int]]  # prompt ids for generation
    general_chunks: list[dict[str, list[int]]] = field(default_factory=list)
    benchmarks: dict[str, Any] = field(default_factory=dict)
    """Each registered benchmark's prepared set, by name (absent or None: turned off)."""


@dataclass
class EvalContext:
    """What a benchmark may need besides its own set: the topic space probe answers are assigned in."""

    topics: TopicSpace | None = None


def label(predictor: Predictor) -> str:
    return f"eval {getattr(predictor, 'name', 'model')}"


def domain_scores(predictor: Predictor, sets, cfg: EvalConfig) -> tuple[dict, list[str]]:
    """domain_ppl and domain_accuracy (of any object with EvalSets' domain fields), with the greedy answers."""
    answers = predictor.generate(
        sets.domain_prompts,
        cfg.max_new_tokens,
        cfg.generate_batch_size,
        f"{label(predictor)}: domain questions",
    )
    references = [reference(row) for row in sets.domain_rows]
    metrics = {
        "domain_ppl": perplexity(
            predictor, sets.domain_encoded, cfg.batch_size, f"{label(predictor)}: domain perplexity"
        ),
        "domain_accuracy": sum(map(exact_match, answers, references)) / len(references),
    }
    return metrics, answers


def scores_by_domain(predictor: Predictor, sets: dict[str, Any], cfg: EvalConfig) -> dict[str, dict]:
    """domain_ppl and domain_accuracy on each domain's test set."""
    return {domain: domain_scores(predictor, s, cfg)[0] for domain, s in sets.items()}


def general_perplexity(predictor: Predictor, sets: EvalSets, cfg: EvalConfig) -> float:
    return perplexity(
        predictor, sets.general_chunks, cfg.batch_size, f"{label(predictor)}: general perplexity"
    )


def domain_and_general(predictor: Predictor, sets: EvalSets, cfg: EvalConfig) -> tuple[dict, list[str]]:
    """domain_ppl, domain_accuracy and general_ppl, with the greedy domain answers."""
    metrics, answers = domain_scores(predictor, sets, cfg)
    metrics["general_ppl"] = general_perplexity(predictor, sets, cfg)
    return metrics, answers


def general_scores(
    predictor: Predictor, sets: EvalSets, cfg: EvalConfig, topics: TopicSpace | None = None
) -> dict[str, Any]:
    """What a model kept of general ability: general_ppl and every registered benchmark whose set the run
    prepared (with a few probe answers where the probes ran)."""
    result: dict[str, Any] = {"general_ppl": general_perplexity(predictor, sets, cfg)}
    context = EvalContext(topics)
    for name, benchmark in BENCHMARKS.items():
        prepared = sets.benchmarks.get(name)
        if prepared is not None:
            result.update(benchmark.score(predictor, prepared, cfg, context))
    return result


def evaluate_model(predictor: Predictor, sets: EvalSets, cfg: EvalConfig, topics: TopicSpace) -> dict:
    """All metrics of one model on the shared sets, with a few sample answers for the report."""
    start = time.perf_counter()
    with peak_rss() as memory:
        result, answers = domain_scores(predictor, sets, cfg)
        result.update(general_scores(predictor, sets, cfg, topics))
    result["samples"] = {
        "domain": [
            {"prompt": prompt_text(r), "reference": reference(r), "answer": a}
            for r, a in zip(sets.domain_rows[:3], answers)
        ],
        "probes": result.pop("probe_samples", []),
    }
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    result["peak_rss_bytes"] = memory["peak"]
    return result
