"""General perplexity: held-out general prose in fixed chunks (every model's first forgetting signal; the
chunks are the suite's own set, `EvalSets.general_chunks`, since training curves and recovery read them too)."""

from edgeadapt.evaluation.metrics import degradation_pct
from edgeadapt.evaluation.registry import Metric, register_metric

GENERAL_PPL = register_metric(
    Metric(
        "general_ppl",
        "general PPL",
        "{:.2f}",
        False,
        "forgetting",
        "perplexity of held-out general prose, in fixed chunks of eval.chunk_tokens tokens",
        order=10,
    )
)
GENERAL_DEGRADATION = register_metric(
    Metric(
        "general_degradation_pct",
        "general degr.",
        "{:+.1f}%",
        False,
        "forgetting",
        "(tuned - base) / base x 100 of general_ppl: positive means worse at general text",
        order=20,
        versus_base=("general_ppl", degradation_pct),
    )
)
