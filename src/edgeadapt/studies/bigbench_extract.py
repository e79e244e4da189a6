"""Which BIG-bench tasks the project reads, and the shipped zip of them (`data/bigbench.py`) written again
from the source archive: after a catalog or pack starts reading another task, run
`bench/bigbench_extract.py` with bigbench-1.0.0.tar.gz in the downloads folder (PyPI no longer lists it).
tests/test_bigbench.py fails while the zip and this list disagree."""

from __future__ import annotations

from pathlib import Path

from edgeadapt.data import bigbench
from edgeadapt.data.downloads import archive_task_files
from edgeadapt.data.general_prompts import REWRITE_TASKS
from edgeadapt.data.more_packs import COLOR_TASKS, GRAMMAR_TASK, MORPHOLOGY_TASKS
from edgeadapt.data.task_catalog import catalog
from edgeadapt.studies.router_data import BIGBENCH_GENERAL


def project_tasks() -> list[str]:
    """Every BIG-bench task path a catalog, pack or router source reads, sorted."""
    read = {spec.bigbench for spec in catalog(large=True)}
    read |= {*COLOR_TASKS, GRAMMAR_TASK, *MORPHOLOGY_TASKS, *REWRITE_TASKS, *BIGBENCH_GENERAL}
    return sorted(read)


def extract(out: Path | None = None, log=print) -> list[str]:
    """Write the zip of project_tasks() (the shipped one unless `out`), each task.json's bytes as the
    archive has them; returns the task paths."""
    names = project_tasks()
    log(f"reading {len(names)} BIG-bench tasks from the source archive")
    task_files = {name: path.read_bytes() for name, path in archive_task_files(names).items()}
    bigbench.write_shipped(task_files, out or bigbench.SHIPPED)
    return names
