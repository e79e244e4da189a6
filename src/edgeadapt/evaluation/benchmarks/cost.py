"""What an update costs (filled in by the run's evaluation, `studies.evaluate`, not by a benchmark): the
columns of the cost group."""

from edgeadapt.evaluation.registry import Metric, register_metric


def megabytes(value) -> str:
    return f"{(value['fp32'] if isinstance(value, dict) else value) / 1e6:.1f} MB"


for metric in (
    Metric(
        "trainable_pct",
        "trainable",
        "{:.2f}%",
        None,
        "cost",
        "share of the base's parameters that trained",
        10,
    ),
    Metric(
        "update_bytes",
        "update (fp32)",
        higher_is_better=False,
        group="cost",
        description="what a device must receive, in fp32",
        order=20,
        render=megabytes,
    ),
    Metric(
        "update_ratio", "update / model", "{:.1%}", False, "cost", "fp32 update bytes / fp32 model bytes", 30
    ),
    Metric(
        "weight_bytes",
        "weights in memory",
        higher_is_better=False,
        group="cost",
        description="bytes the evaluated model's weights occupy in memory, as stored",
        order=40,
        render=megabytes,
    ),
    Metric("lr", "lr", "{:g}", None, "cost", "the learning rate it trained at", 50),
    Metric("train_seconds", "train s", "{:.0f}", False, "cost", "seconds of training", 60),
):
    register_metric(metric)
