"""Topic retention: answers to everyday general probes, embedded and assigned to the nearest topic (or to a
trained domain: leakage); retention is the tuned model's on-topic rate over the base's."""

from __future__ import annotations

from typing import Any

from edgeadapt.evaluation.metrics import retention
from edgeadapt.evaluation.registry import Metric, register_benchmark

SAMPLES = 5  # probe answers kept for the report


def prepare(data, tokenizer, cfg) -> dict[str, list] | None:
    from edgeadapt.evaluation.sets import user_prompt

    if not data.probes:
        return None
    return {
        "prompts": [user_prompt(tokenizer, r["prompt"]) for r in data.probes],
        "topics": [r["topic"] for r in data.probes],
    }


def score(predictor, probes: dict[str, list], cfg, context) -> dict[str, Any]:
    answers = predictor.generate(probes["prompts"], cfg.probe_new_tokens, cfg.generate_batch_size, "probes")
    assigned = context.topics.assign(answers)
    return {
        "on_topic_rate": sum(map(str.__eq__, assigned, probes["topics"])) / len(assigned),
        "domain_leakage": sum(a in context.topics.domains for a in assigned) / len(assigned),
        "probe_samples": [
            {"topic": t, "answer": a, "assigned": s}
            for t, a, s in list(zip(probes["topics"], answers, assigned))[::13][:SAMPLES]
        ],
    }


PROBES = register_benchmark(
    name="probes",
    description="answers to general probes assigned to the nearest topic (all-MiniLM-L6-v2)",
    metrics=(
        Metric(
            "topic_retention",
            "topic retention",
            "{:.2f}",
            True,
            "forgetting",
            "tuned on_topic_rate / base on_topic_rate",
            order=30,
            versus_base=("on_topic_rate", retention),
        ),
        Metric(
            "on_topic_rate",
            "on-topic",
            "{:.1%}",
            True,
            "forgetting",
            "probe answers on their own topic",
            order=40,
        ),
        Metric(
            "domain_leakage",
            "leakage",
            "{:.1%}",
            False,
            "forgetting",
            "probe answers that land nearest the trained domain",
            order=50,
        ),
    ),
    prepare=prepare,
    score=score,
    extra_keys=("probe_samples",),
)
