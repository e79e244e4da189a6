"""How large an update is: parameters in its files, as fp32 and bf16, and the bytes on disk."""

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


def adapter_rank(update_dir: Path) -> int | None:
    """The rank of a saved PEFT adapter (its adapter_config.json), None for other updates."""
    import json

    config = Path(update_dir) / "adapter_config.json"
    return json.loads(config.read_text())["r"] if config.is_file() else None
