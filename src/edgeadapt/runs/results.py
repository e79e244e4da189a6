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
from edgeadapt.core.files import write_json_atomic

RESULTS = "results.json"
EVAL_CACHE = "eval_metrics.json"  # a model's metrics beside its update (see studies.evaluate)
OUTPUTS = (RESULTS, "report.md", "report.html")


def results_path(run_dir: Path) -> Path:
    return Path(run_dir) / RESULTS


def read_results(run_dir: Path) -> dict[str, Any]:
    """A finished run's results; a clear error when the run has none yet."""
    path = results_path(run_dir)
    if not path.is_file():
        raise UserError(f"{path} not found: run `edgeadapt compare CONFIG` first.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{path}: not readable JSON ({exc}); rerun `edgeadapt eval CONFIG` to rewrite it."
        ) from None


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    """results.json via a temporary file and a rename."""
    write_json_atomic(results_path(run_dir), results)


def add_section(run_dir: Path, results: dict[str, Any], key: str, section: Any) -> dict[str, Any]:
    """Add (or replace) one section of a finished run's results and rewrite results.json."""
    results[key] = section
    write_results(run_dir, results)
    return results


def invalidate(run_dir: Path) -> None:
    """Work that changes the run's updates starts: earlier results no longer describe them."""
    for name in OUTPUTS:
        (Path(run_dir) / name).unlink(missing_ok=True)


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
