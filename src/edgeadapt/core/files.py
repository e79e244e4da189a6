"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON via a temporary file and a rename: a reader never sees a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def file_name(text: str) -> str:
    """`text` as a file or folder name: every run of characters outside [A-Za-z0-9_.-] becomes one dash."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
