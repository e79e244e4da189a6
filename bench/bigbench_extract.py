"""Writes src/edgeadapt/data/bigbench_tasks.zip: the task.json of every BIG-bench task the project reads,
copied from the bigbench==1.0.0 source archive (`edgeadapt.studies.bigbench_extract`).

    .venv/bin/python bench/bigbench_extract.py

PyPI no longer lists that archive: put bigbench-1.0.0.tar.gz (SHA-256 1bb398a5512c6d79...) in
$EDGEADAPT_HOME/downloads first. The same tasks always give the same bytes, so `git diff` shows a change.
"""

from __future__ import annotations

from edgeadapt.core.errors import UserError
from edgeadapt.data.bigbench import SHIPPED
from edgeadapt.studies.bigbench_extract import extract


def main() -> None:
    try:
        names = extract()
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {SHIPPED} ({len(names)} tasks, {SHIPPED.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
