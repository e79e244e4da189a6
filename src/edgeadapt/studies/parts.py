"""A long study in parts: each finished part is kept in the run (`RUN/PARTS/NAME.json`, with the config it
was measured under), so a killed study resumed with `--resume` loses at most the part it was in."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from edgeadapt.core.config import RunConfig, to_dict
from edgeadapt.core.files import file_name, write_json_atomic


def part(
    cfg: RunConfig,
    folder: str,
    name: str,
    compute: Callable[[], Any],
    resume: bool,
    log: Callable[[str], None],
) -> tuple[Any, float]:
    """(result, seconds) of one part of the study: measured now, or with `resume` read back from what an
    earlier invocation under the same config finished (a kill loses at most the part in progress)."""
    path = cfg.run_dir() / folder / f"{file_name(name)}.json"
    settings = comparable(cfg)
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config") == settings:
            log(f"{name}: measured earlier ({saved['seconds']:.0f} s), reusing {path}")
            return saved["result"], saved["seconds"]
        log(f"{name}: {path} was measured under another config; measuring again")
    start = time.perf_counter()
    result = compute()
    seconds = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"config": settings, "seconds": seconds, "result": result})
    return result, seconds


def comparable(cfg: RunConfig) -> dict:
    """The config as JSON reads it back, less where the run lives (a moved run folder is still the run)."""
    data = json.loads(json.dumps(to_dict(cfg)))
    return {k: v for k, v in data.items() if k not in ("name", "out_dir")}
