"""The evaluation suite: the same held-out sets for the base model and every tuned, routed or generated one,
always through a predictor (`edgeadapt.inference.predictor`).

- `domain_ppl`: perplexity of the domain test responses (prompt tokens excluded);
- `domain_accuracy`: greedy answers to the domain test questions, normalized exact match with the reference;
- `general_ppl`: perplexity of general held-out prose, in fixed chunks;
- `on_topic_rate`, `domain_leakage`: answers to general probes, embedded and assigned to the nearest topic
  (see `topics`); retention and degradation relative to the base model come from `metrics`;
- `fact_recall`: short general questions with known answers (`data.facts`), the share whose greedy answer
  contains the reference;
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
from edgeadapt.evaluation.metrics import contains_answer, exact_match
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.predictor import Predictor, perplexity


@dataclass
class EvalSets:
    """Everything tokenized once and shared by every model evaluated in a run."""

    domain_rows: list[dict]  # raw test rows (prompt/response or messages)
    domain_encoded: list[dict[str, list[int]]]  # prompt + response with the loss on the response
    domain_prompts: list[list[int]]  # prompt ids for generation
    general_chunks: list[dict[str, list[int]]]
    probe_prompts: list[list[int]]
    probe_topics: list[str]
    fact_prompts: list[list[int]] = field(default_factory=list)
    fact_answers: list[str] = field(default_factory=list)
    mmlu_questions: list[dict] = field(default_factory=list)
    mmlu_excluded: list[str] = field(default_factory=list)


def label(predictor: Predictor) -> str:
    return f"eval {getattr(predictor, 'name', 'model')}"


def domain_scores(predictor: Predictor, sets: EvalSets, cfg: EvalConfig) -> tuple[dict, list[str]]:
    """domain_ppl and domain_accuracy, with the greedy domain answers."""
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


def scores_by_domain(predictor: Predictor, sets: dict[str, EvalSets], cfg: EvalConfig) -> dict[str, dict]:
    """domain_ppl and domain_accuracy on each domain's test set."""
    return {domain: domain_scores(predictor, s, cfg)[0] for domain, s in sets.items()}


def other_domain_scores(predictor: Predictor, others: dict[str, EvalSets], cfg: EvalConfig) -> dict[str, Any]:
    """Domain perplexity and accuracy on every other domain's test set, and their mean accuracy."""
    if not others:
        return {}
    scores = scores_by_domain(predictor, others, cfg)
    mean = sum(s["domain_accuracy"] for s in scores.values()) / len(scores)
    return {"other_domains": scores, "out_of_domain_accuracy": mean}


def domain_and_general(predictor: Predictor, sets: EvalSets, cfg: EvalConfig) -> tuple[dict, list[str]]:
    """domain_ppl, domain_accuracy and general_ppl, with the greedy domain answers."""
    metrics, answers = domain_scores(predictor, sets, cfg)
    metrics["general_ppl"] = perplexity(
        predictor, sets.general_chunks, cfg.batch_size, f"{label(predictor)}: general perplexity"
    )
    return metrics, answers


def general_scores(predictor: Predictor, sets: EvalSets, cfg: EvalConfig, topics: TopicSpace) -> dict:
    """What a model kept of general ability: general_ppl, answers to the probes (on topic, leaked into a
    trained domain) and fact recall, with a few probe answers."""
    result = {
        "general_ppl": perplexity(
            predictor, sets.general_chunks, cfg.batch_size, f"{label(predictor)}: general perplexity"
        )
    }
    probe_answers = predictor.generate(
        sets.probe_prompts, cfg.probe_new_tokens, cfg.generate_batch_size, "probes"
    )
    if sets.fact_prompts:
        facts = predictor.generate(
            sets.fact_prompts, cfg.fact_new_tokens, cfg.generate_batch_size, f"{label(predictor)}: facts"
        )
        result["fact_recall"] = sum(map(contains_answer, facts, sets.fact_answers)) / len(facts)
    if sets.mmlu_questions:
        from edgeadapt.evaluation.mmlu import mmlu_scores

        result["mmlu"] = mmlu_scores(
            predictor, sets.mmlu_questions, cfg.mmlu_shots, cfg.batch_size, sets.mmlu_excluded
        )
    assigned = topics.assign(probe_answers)
    result.update(
        on_topic_rate=sum(map(str.__eq__, assigned, sets.probe_topics)) / len(assigned),
        domain_leakage=sum(a in topics.domains for a in assigned) / len(assigned),
        probe_samples=[
            {"topic": t, "answer": a, "assigned": s}
            for t, a, s in list(zip(sets.probe_topics, probe_answers, assigned))[::13][:5]
        ],
    )
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
        "probes": result.pop("probe_samples"),
    }
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    result["peak_rss_bytes"] = memory["peak"]
    return result
