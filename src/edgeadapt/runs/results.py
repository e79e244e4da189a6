"""A run's results file (results.json) and the per-model evaluation cache beside each update.

results.json is written last and atomically, so a failed run never leaves a results file that looks
complete. Reports (report.md, report.html) are rendered from it when asked (`edgeadapt.reports`), never on
every write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError
from edgeadapt.runs import schema
from edgeadapt.runs.schema import RunResults

RESULTS = "results.json"
EVAL_CACHE = "eval_metrics.json"  # a model's metrics beside its update (see studies.evaluate)
OUTPUTS = (RESULTS, "report.md", "report.html")


def results_path(run_dir: Path) -> Path:
    return Path(run_dir) / RESULTS


def read_results(run_dir: Path) -> RunResults:
    """A finished run's results, every field's type checked; a clear error when the run has none yet."""
    path = results_path(run_dir)
    if not path.is_file():
        raise UserError(f"{path} not found: run `edgeadapt compare CONFIG` first.")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(
            f"{path}: not readable JSON ({exc}); rerun `edgeadapt eval CONFIG` to rewrite it."
        ) from None
    return RunResults.from_json(data, str(path))


def write_results(run_dir: Path, results: RunResults | dict[str, Any]) -> RunResults:
    """results.json (checked as it will be read back) via a temporary file and a rename."""
    return schema.write(results_path(run_dir), results, RunResults)


def add_section(run_dir: Path, results: RunResults, key: str, section: Any) -> RunResults:
    """Add (or replace) one section of a finished run's results and rewrite results.json."""
    results[key] = section
    return write_results(run_dir, results)


SECTIONS = ("recovery", "analysis", "packages", "edge")  # what later commands add to a finished run


def forget_method(run_dir: Path, name: str) -> list[str]:
    """A method's update is about to change: its results, and the sections measured on the run's updates,
    no longer describe it and leave results.json (the other methods' results stay); the reports, rendered
    from the old results, go. Returns what was removed."""
    path = results_path(run_dir)
    if not path.is_file():
        return []
    try:
        results = read_results(run_dir)
    except UserError:
        return []  # nothing readable to keep: the next evaluation replaces it
    removed = [f"{name}'s results"] if results.methods.pop(name, None) is not None else []
    for section in SECTIONS:
        if section in results:
            results[section] = None
            removed.append(f"the {section} section")
    if removed:
        write_results(run_dir, results)
        for report in OUTPUTS[1:]:
            (Path(run_dir) / report).unlink(missing_ok=True)
    return removed


def read_cache(folder: Path, key: str) -> dict[str, Any] | None:
    path = Path(folder) / EVAL_CACHE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved["metrics"] if saved.get("key") == key else None


def write_cache(folder: Path, key: str, metrics: dict[str, Any]) -> None:
    (Path(folder) / EVAL_CACHE).write_text(json.dumps({"key": key, "metrics": metrics}))


def versions() -> dict[str, str]:
    import platform
    from importlib.metadata import version

    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "accelerate"):
        found[package] = version(package)
    return found
