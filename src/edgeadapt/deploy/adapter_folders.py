"""A standalone adapter folder (what `edgeadapt loragen make` writes: a PEFT LoRA with `edgeadapt.json` beside
it naming its base model and where it came from) shipped like a trained one:

    edgeadapt package export ADAPTER_DIR --out task.eaupd [--sign KEY]   # the manifest records its description
    edgeadapt export gguf ADAPTER_DIR --out task.gguf [--adapter]
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from edgeadapt import __version__, models, updates
from edgeadapt.core.errors import UserError
from edgeadapt.deploy import build
from edgeadapt.deploy.runtime import DEFAULT_RUNTIME, check_package_dtype, get_runtime
from edgeadapt.models.fingerprint import fingerprint
from edgeadapt.updates.sizes import adapter_rank

INFO = "edgeadapt.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def is_adapter_folder(path: Path) -> bool:
    return all((Path(path) / f).is_file() for f in (*ADAPTER_FILES, INFO))


def read_info(folder: Path) -> dict[str, Any]:
    try:
        info = json.loads((Path(folder) / INFO).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{folder / INFO}: not readable ({str(exc)[:200]}).") from None
    if not isinstance(info, dict):
        info = {}
    method = info.get("method")
    if (
        not isinstance(info.get("base_model"), str)
        or method not in updates.METHODS
        or not updates.get(method).capabilities.lora_family
    ):
        raise UserError(
            f"{folder / INFO}: needs the LoRA-family method that saved the adapter ('method') and the "
            "base_model it was made for."
        )
    return info


@contextmanager
def checked_adapter(folder: Path, info: dict[str, Any], base_dir: Path) -> Iterator[Path]:
    """The folder's adapter files alone (a PEFT folder holds exactly these), in a temporary copy removed
    afterwards, once they were checked against the base model (shapes, rank, finite values) as a device
    would check them."""
    from edgeadapt.updates.files import base_tensors

    with tempfile.TemporaryDirectory(prefix="edgeadapt-adapter-") as tmp:
        for name in ADAPTER_FILES:
            shutil.copyfile(Path(folder) / name, Path(tmp) / name)
        problems = updates.get(info["method"]).check_files(Path(tmp), base_tensors(base_dir))
        if problems:
            raise UserError(f"{folder}: {problems[0]}")
        yield Path(tmp)


def export_package(
    folder: Path,
    out: Path,
    dtype: str,
    sign_key: Path | None,
    compress: bool,
    release: dict[str, Any],
    runtime: str = DEFAULT_RUNTIME,
) -> dict[str, Any]:
    from edgeadapt.deploy.gguf_packages import with_tmp

    info = read_info(folder)
    base_dir = models.resolve(info["base_model"])
    with checked_adapter(folder, info, base_dir):
        pass
    fields = {
        "edgeadapt_version": __version__,
        "method": info["method"],
        "variant": info.get("made_by", "adapter"),
        "loader": updates.get(info["method"]).loader,
        "rank": adapter_rank(folder),
        "base_model": {"name": info["base_model"], "fingerprint": fingerprint(base_dir)},
        "metrics": {},
        **({"description": info["description"]} if info.get("description") else {}),
        **release,
    }
    engine = get_runtime(runtime)
    if engine.adapter_sources is not None:  # the runtime's own file (a GGUF LoRA), made first
        check_package_dtype(dtype, runtime, "adapter")

        def make(tmp: Path) -> dict[str, Any]:
            sources, extra = engine.adapter_sources(Path(folder), info["method"], base_dir, tmp)
            return build.build_members(sources, Path(out), fields | extra, "fp32", sign_key, compress)

        return with_tmp(make)
    sources = [(f"update/{name}", Path(folder) / name) for name in ADAPTER_FILES]
    return build.build_members(sources, Path(out), fields, dtype, sign_key, compress)


def export_gguf(folder: Path, out: Path, dtype: str, adapter: bool) -> dict[str, Any]:
    from edgeadapt.deploy.gguf import check_dtype, source_pre_tokenizer, write, write_lora

    check_dtype(dtype, adapter)
    info = read_info(folder)
    base_dir = models.resolve(info["base_model"])
    with checked_adapter(folder, info, base_dir) as adapter_dir:  # checked before the base model loads
        model, tokenizer = models.load(base_dir, torch.float32, torch.device("cpu"))
        tuned = updates.get(info["method"]).load_tuned(model, adapter_dir)
    name = f"{info['base_model']} + {info.get('made_by', 'adapter')}"
    if adapter:
        write_lora(tuned, out, name, dtype)
    else:
        write(tuned.merge_and_unload(), tokenizer, out, dtype, name, source_pre_tokenizer(info["base_model"]))
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "dtype": dtype,
        "variant": name,
        "kind": "lora adapter" if adapter else "merged model",
    }
