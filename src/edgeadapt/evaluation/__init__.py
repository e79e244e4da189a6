"""Evaluation: the suite every model is scored by, the metric and benchmark registries, and the benchmarks
(one module each under `benchmarks/`, imported here so that each registers itself)."""

from edgeadapt.evaluation import benchmarks  # noqa: F401  (registers the built-in benchmarks and metrics)
