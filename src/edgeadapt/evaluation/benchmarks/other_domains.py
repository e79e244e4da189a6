"""Out-of-domain accuracy: every model asked the test questions of `eval.other_domains` (other packs or
folders), as it is asked its own domain's."""

from __future__ import annotations

import copy
from typing import Any

from edgeadapt.evaluation.registry import Metric, register_benchmark


def prepare(data, tokenizer, cfg) -> dict[str, Any] | None:
    if not cfg.eval.other_domains:
        return None
    from edgeadapt.data.run_data import RunData
    from edgeadapt.evaluation.sets import domain_sets
    from edgeadapt.evaluation.suite import EvalSets

    sets = {}
    for domain in cfg.eval.other_domains:
        other = copy.deepcopy(cfg)
        other.data.domain = domain
        other_data = RunData(other)
        sets[other_data.domain_name] = EvalSets(
            **domain_sets(other_data.test, tokenizer, other.data.max_length)
        )
    return sets


def score(predictor, sets: dict[str, Any], cfg, context) -> dict[str, Any]:
    from edgeadapt.evaluation.suite import scores_by_domain

    scores = scores_by_domain(predictor, sets, cfg)
    mean = sum(s["domain_accuracy"] for s in scores.values()) / len(scores)
    return {"other_domains": scores, "out_of_domain_accuracy": mean}


OTHER_DOMAINS = register_benchmark(
    name="other_domains",
    description="domain accuracy on the test sets of eval.other_domains",
    metrics=(
        Metric(
            "out_of_domain_accuracy",
            "out-of-domain acc",
            "{:.1%}",
            None,
            "skill",
            "mean domain_accuracy over the test sets of eval.other_domains",
            order=30,
        ),
    ),
    prepare=prepare,
    score=score,
    extra_keys=("other_domains",),
)
