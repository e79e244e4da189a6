"""What a device checks of an extracted update before it may become active, the way Android A/B marks a
slot good only after it boots:

1. every file and tensor, by the method the manifest names (`check_files` of its registration): the
   tensors this update applies to, with the base's shapes, floating and finite; sane adapter scalings;
2. the update loaded the way the device will run it, then a short health check: finite logits on a fixed
   prompt and a non-empty greedy answer (for a library: every expert, and the router's threshold).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from edgeadapt import models, updates
from edgeadapt.deploy.archive import PackageError
from edgeadapt.inference.predictor import ModelPredictor

HEALTH_PROMPT = "Say hello in one short sentence."
HEALTH_TOKENS = 8


def predictor_for(manifest: dict[str, Any], folder: Path, base, tokenizer):
    """The model an installed update makes of the base: routed for a library, else the method's loader."""
    if manifest.get("kind", "update") != "update":
        from edgeadapt.routing import load_router
        from edgeadapt.routing.predictor import RoutedPredictor
        from edgeadapt.updates.library import Library

        model = Library.read(folder).load(base)
        return RoutedPredictor(model, tokenizer, load_router(folder).bind(model, tokenizer))
    return ModelPredictor(updates.loader(manifest["loader"])(base, folder), tokenizer)


def file_problems(folder: Path, manifest: dict[str, Any], base_dir: Path) -> list[str]:
    from edgeadapt.updates.files import base_tensors

    method = updates.get(manifest["method"])
    base = base_tensors(base_dir)
    if manifest.get("kind", "update") == "update":
        return method.check_files(folder, base)
    problems = []
    for expert in sorted((folder / "experts").iterdir()) if (folder / "experts").is_dir() else []:
        problems += [f"expert {expert.name}: {p}" for p in method.check_files(expert, base)]
    return problems or ([] if (folder / "experts").is_dir() else ["a library package holds experts/"])


def check_installed(folder: Path, manifest: dict[str, Any], base_dir: Path) -> None:
    """PackageError unless the extracted update passes the file checks and the health check."""
    problems = file_problems(folder, manifest, base_dir)
    if problems:
        raise PackageError(
            f"refused before activation: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    try:
        base, tokenizer = models.load(base_dir, torch.float32, torch.device("cpu"))
        base_answers = bool(answer(ModelPredictor(base, tokenizer)).strip())
        predictor = predictor_for(manifest, folder, base, tokenizer)
        health_check(predictor, base_answers)
    except PackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a hostile or broken update makes the loader do
        raise PackageError(
            f"refused before activation: the update does not load ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def health_ids(tokenizer) -> list[int]:
    from edgeadapt.data.format import prompt_ids

    return prompt_ids(tokenizer, [{"role": "user", "content": HEALTH_PROMPT}])


def answer(predictor) -> str:
    return predictor.generate([health_ids(predictor.tokenizer)], HEALTH_TOKENS, 1, "health check")[0]


@torch.no_grad()
def health_check(predictor, base_answers: bool = True) -> None:
    """Finite logits and log-likelihood on a fixed prompt, and a non-empty greedy answer wherever the base
    model gives one (a random test model may not: then the update cannot be blamed for it)."""
    ids = health_ids(predictor.tokenizer)
    row = {"input_ids": ids, "labels": ids}
    if hasattr(predictor, "router"):  # a library: each expert on its own, then the routed answer
        from edgeadapt.routing.predictor import experts_active
        from edgeadapt.routing.router import Route

        problems = predictor.router.problems()
        if problems:
            raise PackageError(f"refused before activation: the router: {problems[0]}")
        for name in predictor.router.experts:
            with experts_active(predictor.model, Route((name,), (1.0,))) as model:
                finite_logits(model(input_ids=torch.tensor([ids])).logits, f"expert {name}")
    nll, count = predictor.loglikelihood([row], 1, "health check")[0]
    if not math.isfinite(nll) or count == 0:
        raise PackageError("refused before activation: the model's log-likelihood is not finite")
    if base_answers and not answer(predictor).strip():
        raise PackageError("refused before activation: the model's greedy answer to a health prompt is empty")


def finite_logits(logits: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(logits).all()):
        raise PackageError(f"refused before activation: {what} gives non-finite logits")
