"""The BIG-bench task files edgeadapt reads, shipped with it: `bigbench_tasks.zip` beside this module holds
the task.json of every BIG-bench task (Natural Instructions v1 subtasks included) that the project's packs,
task catalogs and router data read, byte for byte as the `bigbench==1.0.0` source archive has them
(280 of its 1,041 tasks; 3.2 MB against 358 MB).

Why shipped: the project first downloaded the archive from PyPI at run time, but PyPI stopped listing
bigbench 1.0.0 on 2026-12-04 (only 0.0.1 remains), so a fresh machine could no longer build the packs or
the LoRA-Gen collection. BIG-bench is Apache-2.0 licensed (https://github.com/google/BIG-bench); the zip is
written by `bench/bigbench_extract.py` from the archive (its SHA-256 pinned in `downloads.PINNED`), so it
can be made again and checked against it. A task the zip lacks is read from that archive
(`downloads.archive_bigbench_tasks`) by the tools that need one (bench/list_function_catalog.py).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from edgeadapt.core.errors import UserError, did_you_mean

SHIPPED = Path(__file__).with_name("bigbench_tasks.zip")
MEMBER = "{}/task.json"


def listed(shipped: zipfile.ZipFile) -> list[str]:
    return [member.removesuffix(MEMBER.format("")) for member in shipped.namelist()]


def shipped_task_names() -> list[str]:
    with zipfile.ZipFile(SHIPPED) as shipped:
        return listed(shipped)


def bigbench_tasks(names: list[str]) -> dict[str, dict]:
    """The task.json of each BIG-bench task path in `names` (e.g. `color/hex`), from the shipped zip."""
    with zipfile.ZipFile(SHIPPED) as shipped:
        tasks = listed(shipped)
        missing = [n for n in names if n not in tasks]
        if missing:
            raise UserError(
                f"No BIG-bench task '{missing[0]}' among the {len(tasks)} edgeadapt ships in {SHIPPED.name}."
                f"{did_you_mean(missing[0], tasks)}"
            )
        return {n: json.loads(shipped.read(MEMBER.format(n))) for n in names}


def write_shipped(task_files: dict[str, bytes], out: Path) -> None:
    """The zip of `task_files` (task path -> its task.json bytes): sorted, LZMA, fixed timestamps, so the
    same tasks always make the same bytes."""
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_LZMA) as shipped:
        for name in sorted(task_files):
            info = zipfile.ZipInfo(MEMBER.format(name), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            shipped.writestr(info, task_files[name])
    partial.replace(out)
