"""The domain skill every study measures on the domain test set (`evaluation.suite.domain_scores`):
accuracy of greedy answers and perplexity of the reference responses."""

from edgeadapt.evaluation.registry import Metric, register_metric

DOMAIN_ACCURACY = register_metric(
    Metric(
        "domain_accuracy",
        "domain acc",
        "{:.1%}",
        True,
        "skill",
        "share of domain test questions whose greedy answer matches the reference (normalized exact match)",
        order=10,
    )
)
DOMAIN_PPL = register_metric(
    Metric(
        "domain_ppl",
        "domain PPL",
        "{:.2f}",
        False,
        "skill",
        "perplexity of the domain test responses given their prompts",
        order=20,
    )
)
