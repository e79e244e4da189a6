"""Fact recall: short general-knowledge questions with known answers (`data.facts`: the project's 50, or a
user's JSONL); the share whose greedy answer contains the reference as whole words."""

from __future__ import annotations

from typing import Any

from edgeadapt.evaluation.metrics import contains_answer
from edgeadapt.evaluation.registry import Metric, register_benchmark


def prepare(data, tokenizer, cfg) -> dict[str, list] | None:
    from edgeadapt.evaluation.sets import user_prompt

    if not data.facts:
        return None
    return {
        "prompts": [user_prompt(tokenizer, r["prompt"]) for r in data.facts],
        "answers": [r["response"] for r in data.facts],
    }


def score(predictor, facts: dict[str, list], cfg, context) -> dict[str, Any]:
    name = getattr(predictor, "name", "model")
    said = predictor.generate(
        facts["prompts"], cfg.fact_new_tokens, cfg.generate_batch_size, f"eval {name}: facts"
    )
    return {"fact_recall": sum(map(contains_answer, said, facts["answers"])) / len(said)}


FACT_RECALL = register_benchmark(
    name="facts",
    description="short general-knowledge questions; the reference must appear in the greedy answer",
    metrics=(
        Metric(
            "fact_recall",
            "fact recall",
            "{:.1%}",
            True,
            "forgetting",
            "share of fact questions whose greedy answer contains the reference as whole words",
            order=60,
        ),
    ),
    prepare=prepare,
    score=score,
)
