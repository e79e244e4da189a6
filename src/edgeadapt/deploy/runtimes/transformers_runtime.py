"""The `transformers` device runtime: the base checkpoint in PyTorch, an update loaded by the loader its
manifest names (merged where the method merges), a library's experts as PEFT adapters applied per request.
What the device did before llama.cpp, kept beside it: any method runs here (adaptq's 4-bit blocks, qlora)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.runtime import register_runtime


def init_base(base_dir: Path, model_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    from edgeadapt.models.fingerprint import fingerprint

    shutil.copytree(model_dir, base_dir, dirs_exist_ok=True)
    return {"base_fingerprint": fingerprint(base_dir)}


def check(folder: Path, manifest: dict[str, Any], device_dir: Path) -> None:
    from edgeadapt.deploy.health import check_installed

    check_installed(folder, manifest, Path(device_dir) / "base")


class Served:
    """A predictor on the device's base (with the active update), answering one prompt at a time."""

    def __init__(self, predictor):
        self.predictor = predictor

    def generate(self, prompt: str, max_new_tokens: int) -> tuple[str, Any]:
        from edgeadapt.data.format import prompt_ids

        ids = prompt_ids(self.predictor.tokenizer, [{"role": "user", "content": prompt}])
        answer = self.predictor.generate([ids], max_new_tokens, 1, desc="device")[0]
        return answer, self.predictor.log[-1][1] if hasattr(self.predictor, "log") else None


def serve(
    device_dir: Path, folder: Path | None, manifest: dict[str, Any] | None, scale: float = 1.0
) -> Served:
    from edgeadapt import models
    from edgeadapt.deploy.health import predictor_for
    from edgeadapt.inference.predictor import ModelPredictor

    base, tokenizer = models.load(Path(device_dir) / "base", device=models.pick_device())
    if folder is None:
        return Served(ModelPredictor(base, tokenizer))
    if scale != 1.0:
        return Served(scaled_predictor(manifest, folder, base, tokenizer, scale))
    return Served(predictor_for(manifest, folder, base, tokenizer))


def scaled_predictor(manifest: dict[str, Any], folder: Path, base, tokenizer, scale: float):
    """An adapter applied at a share `scale` of its update (PEFT's per-layer set_scale), unmerged."""
    from edgeadapt import updates
    from edgeadapt.inference.predictor import ModelPredictor

    method = updates.get(manifest["method"])
    if manifest.get("kind", "update") != "update" or not method.capabilities.lora_family:
        raise PackageError(
            f"a scale other than 1 applies to a LoRA-family update, not to {manifest['method']}"
        )
    from peft.tuners.lora import LoraLayer

    tuned = method.load_tuned(base, folder)
    for layer in (m for m in tuned.modules() if isinstance(m, LoraLayer)):
        for name in list(layer.scaling):
            layer.set_scale(name, scale)
    return ModelPredictor(tuned, tokenizer)


TRANSFORMERS = register_runtime(
    name="transformers",
    description="the checkpoint in PyTorch (any method, adaptq and qlora included)",
    init_base=init_base,
    check=check,
    serve=serve,
)
