"""Update packages: what a device must receive to move from the base model to a tuned one.

- `archive`: the container (a canonical tar, optionally zstd-compressed) and its strict reader;
- `manifest`: the manifest schema, the base model's fingerprint, Ed25519 keys and signatures;
- `build`: package an update folder (fp32 | bf16 | int8), verify a package, extract it;
- `device`: a device folder with atomic apply, status, rollback and generation.
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
