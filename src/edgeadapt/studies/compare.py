"""`edgeadapt compare`: train every method, evaluate base and tuned models; analysis and recovery when the
config asks. Returns the results written to OUT_DIR/NAME/results.json (the CLI renders the report)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeadapt.core.config import RunConfig
from edgeadapt.runs.run import Run
from edgeadapt.studies.analysis import add_analysis
from edgeadapt.studies.evaluate import evaluate_run
from edgeadapt.studies.recovery import add_recovery
from edgeadapt.studies.train import train_run
from edgeadapt.training.distributed import is_main_process


def compare(cfg: RunConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole comparison in `cfg`; return the results written to OUT_DIR/NAME/results.json."""
    run = Run(cfg)
    train_run(run, resume, log)
    if not is_main_process():  # a multi-process launch trains on every rank and evaluates on one
        return {}
    results = evaluate_run(run, log)
    if cfg.analysis.enabled:
        results = add_analysis(run, results, log)
    return add_recovery(run, results, log) if cfg.recovery.enabled else results
