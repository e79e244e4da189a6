"""Packages for a llama.cpp device (`package export ... --runtime llamacpp`): the same signed container, with
GGUF files in place of PyTorch ones, and the manifest naming its runtime and GGUF (`runtime: llamacpp`,
`gguf: {kind, type}`), hashed like any file.

- A LoRA-family update (lora, hlora, pissa saved as plain LoRA, a generated LoRA-Gen adapter) becomes
  `update/adapter.gguf`, a GGUF LoRA (f16) llama.cpp applies to the base GGUF the device holds.
- SFT, and an adapter a GGUF LoRA cannot hold (DoRA's magnitudes), become `update/model.gguf`: the merged
  model, at `--gguf-type` (f16 or q8_0).
- A method llama.cpp cannot run (adaptq's and qlora's bitsandbytes 4-bit layers) is refused, saying why.
- An adapter library: every expert as `library/experts/NAME/adapter.gguf`, library.json saying so, and
  its router's files as they are (a llama.cpp device computes the router's query from its base GGUF).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from edgeadapt.core.errors import UserError
from edgeadapt.deploy import build

RUNTIME = "llamacpp"
ADAPTER_TYPE = "f16"
"""What a package's GGUF LoRA is written as, whatever `--gguf-type` the model takes (see gguf.LORA_DTYPES)."""


def gguf_fields(kind: str, gguf_type: str) -> dict[str, Any]:
    return {"runtime": RUNTIME, "gguf": {"kind": kind, "type": gguf_type}}


def method_kind(method, variant: str) -> str:
    """'adapter' (a GGUF LoRA) or 'model' (the merged model) for a method; a refusal when llama.cpp cannot run it."""
    capabilities = method.capabilities
    if capabilities.gguf:
        raise UserError(
            f"{variant}: a llama.cpp device cannot run it: {capabilities.gguf} "
            "(for a transformers device: --runtime transformers)"
        )
    return "adapter" if capabilities.lora_family and not capabilities.gguf_lora else "model"


def run_sources(
    run, variant: str, tmp: Path, gguf_type: str
) -> tuple[list[tuple[str, Path]], dict[str, Any]]:
    """A run's variant as the GGUF file a llama.cpp device receives, and the manifest fields saying so."""
    from edgeadapt.deploy.gguf import source_pre_tokenizer, write, write_lora

    kind = method_kind(run.method(variant), variant)
    name = f"{run.cfg.model.name} + {variant}"
    if kind == "adapter":
        tuned = run.open(variant, torch.float32, merge=False).model
        path = write_lora(tuned, tmp / "adapter.gguf", name, ADAPTER_TYPE)
        return [("update/adapter.gguf", path)], gguf_fields("adapter", ADAPTER_TYPE)
    model = run.open(variant, torch.float32).model
    path = write(
        model, run.tokenizer, tmp / "model.gguf", gguf_type, name, source_pre_tokenizer(run.cfg.model.name)
    )
    return [("update/model.gguf", path)], gguf_fields("model", gguf_type)


def adapter_folder_sources(folder: Path, method_name: str, base_dir: Path, tmp: Path) -> tuple[list, dict]:
    """A standalone LoRA folder (`loragen make`) as a GGUF LoRA."""
    from edgeadapt import models, updates
    from edgeadapt.deploy.gguf import write_lora

    method = updates.get(method_name)
    if method_kind(method, method_name) != "adapter":
        raise UserError(f"{folder}: not an adapter a GGUF LoRA can hold")
    base, _ = models.load(base_dir, torch.float32, torch.device("cpu"))
    path = write_lora(method.load_tuned(base, folder), tmp / "adapter.gguf", f"{folder.name}", ADAPTER_TYPE)
    return [("update/adapter.gguf", path)], gguf_fields("adapter", ADAPTER_TYPE)


def library_sources(library, tmp: Path, names: list[str] | None = None) -> list[tuple[str, Path]]:
    """Every expert of a library as a GGUF LoRA, a library.json that says so, and the router's files; with
    `names`, those experts' GGUF LoRAs alone (an expert package: the device's library.json and router take
    them in)."""
    from edgeadapt import models
    from edgeadapt.deploy.gguf import write_lora
    from edgeadapt.updates.library import GGUF_FILES, LIBRARY_FILE

    base_dir = models.resolve(library.base_name)
    library.check_base(base_dir)
    sources = []
    for name in names or library.experts:
        base, _ = models.load(base_dir, torch.float32, torch.device("cpu"))
        tuned = library.load(base, [name])
        out = tmp / "experts" / name / "adapter.gguf"
        write_lora(tuned, out, f"{library.base_name} + expert {name}", ADAPTER_TYPE)
        sources.append((f"library/experts/{name}/adapter.gguf", out))
    if names:
        return sources
    spec = json.loads((library.folder / LIBRARY_FILE).read_text())
    spec["expert_files"] = list(GGUF_FILES)
    (tmp / LIBRARY_FILE).write_text(json.dumps(spec, indent=1))
    head = [(f"library/{LIBRARY_FILE}", tmp / LIBRARY_FILE)]
    head += [(f"library/{f}", library.folder / f) for f in library.router]
    return head + sources


def build_package(sources, out: Path, fields: dict, sign_key: Path | None, compress: bool) -> dict[str, Any]:
    """GGUF files travel as they are (their own types), so the package dtype is fp32."""
    return build.build_members(sources, Path(out), fields, "fp32", sign_key, compress)


def with_tmp(make):
    """Run `make(tmp)` in a temporary folder removed afterwards (the GGUF files are written there first)."""
    folder = Path(tempfile.mkdtemp(prefix="edgeadapt-gguf-pkg-"))
    try:
        return make(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
