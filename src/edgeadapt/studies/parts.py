"""A long study in parts: each finished part is kept in the run (`RUN/PARTS/NAME.json`, with the settings it
was measured under), so a killed study resumed with `--resume` loses at most the part it was in.

A part is keyed on what it reads, not on the whole config: whole sections (`model`) or single settings
(`loragen.eval_rows`) in `reads`, and an `identity` of the files it measures (a trained generator's or
adapter's digest). A change to a setting no part reads (`edge.prompt`, `router.*`) measures nothing again;
retraining a generator measures its rows again, and only those. A setting added to a section after a part
was measured is the same setting when it holds its default.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeadapt.core.config import RunConfig, to_dict
from edgeadapt.core.files import file_name, sha256_file, write_json_atomic


def part(
    cfg: RunConfig,
    folder: str,
    name: str,
    compute: Callable[[], Any],
    resume: bool,
    log: Callable[[str], None],
    reads: tuple[str, ...],
    identity: dict[str, Any] | None = None,
) -> tuple[Any, float]:
    """(result, seconds) of one part of the study: measured now, or with `resume` read back from what an
    earlier invocation measured under the same `reads` settings and file `identity`."""
    path = cfg.run_dir() / folder / f"{file_name(name)}.json"
    settings = {**comparable(cfg, reads), **(identity or {})}
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        changed = differences(saved.get("config") or {}, settings)
        if not changed:
            log(f"{name}: measured earlier ({saved['seconds']:.0f} s), reusing {path}")
            return saved["result"], saved["seconds"]
        log(f"{name}: {path} was measured under other settings ({', '.join(changed)}); measuring again")
    start = time.perf_counter()
    result = compute()
    seconds = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"config": settings, "seconds": seconds, "result": result})
    return result, seconds


def comparable(cfg: RunConfig, reads: tuple[str, ...]) -> dict:
    """What a part reads, as JSON reads it back: `section` -> the section, `section.key` -> that setting."""
    data = as_data(cfg)
    return {key: lookup(data, key) for key in reads}


def as_data(cfg: RunConfig) -> dict:
    """The config as JSON reads it back."""
    return json.loads(json.dumps(to_dict(cfg)))


def lookup(data: dict, key: str) -> Any:
    """`data[key]`, or for `section.key` the nested setting (parts measured before settings were read one by
    one saved whole sections); KeyError when absent."""
    if key in data:
        return data[key]
    section, _, name = key.partition(".")
    return data[section][name]


def differences(saved: dict, settings: dict) -> list[str]:
    """The settings that differ from those something was measured or trained under (a section: its changed
    keys; a key the saved section lacks counts as its default, and so does a setting recorded before it was
    read). Keys that are not config settings (file digests) compare as they are."""
    defaults = as_data(RunConfig())
    changed = []
    for key, value in settings.items():
        try:
            old = lookup(saved, key)
        except (KeyError, TypeError):
            try:
                old = lookup(defaults, key)
            except (KeyError, TypeError):
                changed.append(key)
                continue
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and isinstance(default, dict):
            changed += [f"{key}.{k}" for k, v in value.items() if old.get(k, default.get(k)) != v]
        elif old != value:
            changed.append(key)
    return changed


def digest(path: Path) -> str | None:
    """A file's identity for `part` (None when it does not exist)."""
    return sha256_file(path) if path.is_file() else None
