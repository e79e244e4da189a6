"""The fingerprint of a base model: what an update, a package or an adapter library is bound to.

It covers the whole model a device runs: every tensor (name, dtype, shape, bytes, in name order, whatever
the split into files) and the files that change how those tensors are used or what text they read and
write (the config, e.g. rope_theta, and the tokenizer's files), byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from edgeadapt.core.errors import UserError

BEHAVIOUR_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
BEHAVIOUR_FOLDERS = ("additional_chat_templates",)  # every file inside: a template changes the prompt's ids


def fingerprint(model_dir: Path) -> str:
    """SHA-256 over the weights of a transformers checkpoint folder: every tensor's name, dtype, shape and
    bytes, in name order, so it does not depend on how the tensors are split across files."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise UserError(f"{model_dir}: no *.safetensors weights to fingerprint")
    entries = []
    for path in files:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            table = json.loads(handle.read(length))
        start = 8 + length
        for name, info in table.items():
            if name != "__metadata__":
                entries.append(
                    (
                        name,
                        info["dtype"],
                        info["shape"],
                        path,
                        start + info["data_offsets"][0],
                        info["data_offsets"][1] - info["data_offsets"][0],
                    )
                )
    digest = hashlib.sha256()
    for name in behaviour_files(Path(model_dir)):
        path = Path(model_dir) / name
        digest.update(json.dumps([name, hashlib.sha256(path.read_bytes()).hexdigest()]).encode())
    for name, dtype, shape, path, offset, size in sorted(entries, key=lambda e: e[0]):
        digest.update(json.dumps([name, dtype, shape]).encode())
        with open(path, "rb") as handle:
            handle.seek(offset)
            left = size
            while left:
                chunk = handle.read(min(left, 1 << 22))
                digest.update(chunk)
                left -= len(chunk)
    return "sha256:" + digest.hexdigest()


def behaviour_files(model_dir: Path) -> list[str]:
    """The config and tokenizer files the fingerprint covers, as paths relative to the model folder."""
    names = [name for name in BEHAVIOUR_FILES if (model_dir / name).is_file()]
    for folder in BEHAVIOUR_FOLDERS:
        names += sorted(str(p.relative_to(model_dir)) for p in (model_dir / folder).rglob("*") if p.is_file())
    return names
