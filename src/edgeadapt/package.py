"""Update packages: what a device must receive to move from the base model to a tuned one.

For now this measures update sizes; signed over-the-air packages build on it.
"""

from __future__ import annotations

import math
from pathlib import Path

from safetensors import safe_open


def update_size(files: list[Path]) -> dict[str, int]:
    """Parameters in the update files, their size as fp32 and bf16, and the bytes on disk."""
    params = 0
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                params += math.prod(handle.get_slice(key).get_shape())
    return {
        "params": params,
        "fp32": params * 4,
        "bf16": params * 2,
        "file_bytes": sum(Path(f).stat().st_size for f in files),
    }
