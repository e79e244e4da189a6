"""The metric and benchmark registries (after lm-evaluation-harness's `@register_metric` with
`higher_is_better`): every number a model's results hold is a registered `Metric` (its name in results.json,
its column label, format, direction and group), and every general benchmark the evaluation suite runs is a
registered `Benchmark` (how it prepares its set from a run's data and how it scores a predictor on it).

Nothing else keeps a list of metrics: reports take their columns from here (shown when measured, grouped as
skill, forgetting and cost), the suite runs every registered benchmark, and the comparison with the base
model derives each metric that declares `versus_base`. A new benchmark is one module in
`evaluation/benchmarks/` that calls `register_benchmark` (and its data file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GROUPS = ("skill", "forgetting", "cost")


@dataclass(frozen=True)
class Metric:
    name: str
    """Its key in a model's results (results.json `base` / `methods.NAME`)."""
    label: str
    """The report's column header."""
    fmt: str = "{:.3f}"
    """How a value prints (a `str.format` pattern), unless `render` says otherwise."""
    higher_is_better: bool | None = True
    """None: neither (a learning rate, a count)."""
    group: str = "skill"
    """skill (the domain), forgetting (general ability kept), or cost (what the update costs)."""
    description: str = ""
    order: int = 100
    """Column order within the group (lower first)."""
    render: Callable[[Any], str | None] | None = None
    """For a structured value: the cell's text, or None when this model has none."""
    versus_base: tuple[str, Callable[[float, float], float | None]] | None = None
    """(metric, f): this metric is f(model's value, base's value) of another metric (a change, a ratio)."""

    def cell(self, row: dict[str, Any]) -> str | None:
        """The text of this metric for one model's results, or None when it was not measured."""
        value = row.get(self.name)
        if self.render is not None:
            return self.render(value) if value is not None else None
        return None if value is None else self.fmt.format(value)


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    metrics: tuple[Metric, ...]
    prepare: Callable[[Any, Any, Any], Any]
    """(RunData, tokenizer, RunConfig) -> its set, tokenized once per run; None when the config turns it off."""
    score: Callable[[Any, Any, Any, Any], dict[str, Any]]
    """(predictor, its set, EvalConfig, EvalContext) -> metric name -> value."""
    extra_keys: tuple[str, ...] = field(default=())
    """Other keys `score` returns that are not metrics (per-domain details, samples)."""


METRICS: dict[str, Metric] = {}
BENCHMARKS: dict[str, Benchmark] = {}


def register_metric(metric: Metric) -> Metric:
    if metric.name in METRICS:
        raise ValueError(f"metric '{metric.name}' is registered twice")
    if metric.group not in GROUPS:
        raise ValueError(f"metric '{metric.name}': group must be one of {', '.join(GROUPS)}")
    METRICS[metric.name] = metric
    return metric


def register_benchmark(**fields: Any) -> Benchmark:
    """Add a benchmark and its metrics; called once at the bottom of its module."""
    benchmark = Benchmark(**fields)
    if benchmark.name in BENCHMARKS:
        raise ValueError(f"benchmark '{benchmark.name}' is registered twice")
    for metric in benchmark.metrics:
        register_metric(metric)
    BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def unregister_benchmark(name: str) -> None:
    """Remove a benchmark and its metrics (tests register throwaway ones)."""
    benchmark = BENCHMARKS.pop(name, None)
    for metric in benchmark.metrics if benchmark else ():
        METRICS.pop(metric.name, None)


def metric(name: str) -> Metric:
    return METRICS[name]


def columns(rows: list[dict[str, Any]], group: str | None = None) -> list[Metric]:
    """The registered metrics (of `group`, or every group in order) that at least one row measured."""
    groups = [group] if group else list(GROUPS)
    chosen = [
        m
        for g in groups
        for m in sorted((m for m in METRICS.values() if m.group == g), key=lambda m: m.order)
    ]
    return [m for m in chosen if any(m.cell(row) is not None for row in rows)]


def versus_base(metrics: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Every metric derived from the comparison with the base model (forgetting as a change, retention as a
    ratio), for the metrics both have."""
    out = {}
    for m in METRICS.values():
        if m.versus_base is None:
            continue
        source, derive = m.versus_base
        if metrics.get(source) is not None and base.get(source) is not None:
            out[m.name] = derive(metrics[source], base[source])
    return out
