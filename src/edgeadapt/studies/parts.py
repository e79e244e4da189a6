"""A long study in parts: each finished part is kept in the run (`RUN/PARTS/NAME.json`, with the settings it
was measured under), so a killed study resumed with `--resume` loses at most the part it was in.

A part is keyed on the config sections it reads (`reads`), not on the whole config: a change to a setting
no part reads (`edge.prompt`, `router.*`) does not measure a two-hour study again.
"""

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
    reads: tuple[str, ...],
) -> tuple[Any, float]:
    """(result, seconds) of one part of the study: measured now, or with `resume` read back from what an
    earlier invocation measured under the same settings of the sections in `reads`."""
    path = cfg.run_dir() / folder / f"{file_name(name)}.json"
    settings = comparable(cfg, reads)
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config") == settings:
            log(f"{name}: measured earlier ({saved['seconds']:.0f} s), reusing {path}")
            return saved["result"], saved["seconds"]
        changed = sorted(k for k in settings if (saved.get("config") or {}).get(k) != settings[k])
        log(
            f"{name}: {path} was measured under other settings ({', '.join(changed) or 'older format'}); measuring again"
        )
    start = time.perf_counter()
    result = compute()
    seconds = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"config": settings, "seconds": seconds, "result": result})
    return result, seconds


def comparable(cfg: RunConfig, reads: tuple[str, ...]) -> dict:
    """The config sections a part reads, as JSON reads them back."""
    data = json.loads(json.dumps(to_dict(cfg)))
    return {k: data[k] for k in reads}
