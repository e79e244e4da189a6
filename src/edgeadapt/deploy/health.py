"""What a device checks of an extracted update before it may become active, the way Android A/B marks a
slot good only after it boots:

1. every file and tensor, by the method the manifest names (`check_files` of its registration): the
   tensors this update applies to, with the base's shapes, floating and finite; sane adapter configs;
2. a library: expert names and router consistent with library.json, bound to this device's base;
3. the update loaded the way the device will run it, compared with the base model: finite logits, its
   perplexity on a fixed general text within the bound the signed manifest states (`health.max_ppl_ratio`
   times the base's), and answers to fixed prompts that are not degenerate (one character or token over and
   over) where the base's are not; for a library every expert, and the router's parameters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from edgeadapt import models, updates
from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.health_rules import (
    HEALTH_PROMPTS,
    HEALTH_TEXT,
    HEALTH_TOKENS,
    degenerate,
    health_ids,
    max_ppl_ratio,
)
from edgeadapt.inference.predictor import ModelPredictor


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
    problems = library_problems(folder, base_dir)
    for expert in sorted((folder / "experts").iterdir()) if (folder / "experts").is_dir() else []:
        problems += [f"expert {expert.name}: {p}" for p in method.check_files(expert, base)]
    return problems or ([] if (folder / "experts").is_dir() else ["a library package holds experts/"])


def library_problems(folder: Path, base_dir: Path, base_print: str | None = None) -> list[str]:
    """library.json readable, bound to this base (its folder, or the fingerprint a device recorded), its
    experts exactly the folders and the router's."""
    from edgeadapt.core.errors import UserError
    from edgeadapt.routing import load_router
    from edgeadapt.updates.library import Library

    try:
        library = Library.read(folder)
        library.check_base(base_dir, base_print)
        router = load_router(folder)
    except UserError as exc:
        return [str(exc)]
    folders = sorted(p.name for p in (folder / "experts").iterdir()) if (folder / "experts").is_dir() else []
    if sorted(library.experts) != folders:
        return [f"library.json names experts {sorted(library.experts)}, the package holds {folders}"]
    if router.experts != list(library.experts):
        return [f"the router routes to {router.experts}, the library holds {list(library.experts)}"]
    return [f"the router: {p}" for p in router.problems()]


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
        reference = baseline(ModelPredictor(base, tokenizer))
        predictor = predictor_for(manifest, folder, base, tokenizer)
        health_check(predictor, reference, max_ppl_ratio(manifest))
    except PackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a hostile or broken update makes the loader do
        raise PackageError(
            f"refused before activation: the update does not load ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def answers(predictor) -> list[str]:
    prompts = [health_ids(predictor.tokenizer, p) for p in HEALTH_PROMPTS]
    return predictor.generate(prompts, HEALTH_TOKENS, len(prompts), "health check")


def text_perplexity(predictor) -> float:
    ids = predictor.tokenizer(HEALTH_TEXT, add_special_tokens=False)["input_ids"]
    nll, count = predictor.loglikelihood([{"input_ids": ids, "labels": ids}], 1, "health check")[0]
    return math.exp(nll / count) if count and math.isfinite(nll) else math.inf


def baseline(predictor) -> dict[str, Any]:
    """The base model's figures the update is compared with."""
    said = answers(predictor)
    return {"ppl": text_perplexity(predictor), "answers": said, "degenerate": any(map(degenerate, said))}


@torch.no_grad()
def health_check(predictor, reference: dict[str, Any], ratio: float) -> None:
    """The update against the base: finite logits (every expert of a library), perplexity on the fixed text
    within `ratio` x the base's, and no degenerate answer where the base gives none (a random test model's
    answers may be degenerate themselves: then the update cannot be blamed for its own)."""
    if hasattr(predictor, "router"):  # a library: each expert on its own, then the routed answer
        from edgeadapt.routing.predictor import experts_active
        from edgeadapt.routing.router import Route

        ids = torch.tensor([health_ids(predictor.tokenizer)])
        for name in predictor.router.experts:
            with experts_active(predictor.model, Route((name,), (1.0,))) as model:
                finite_logits(model(input_ids=ids).logits, f"expert {name}")
    ppl = text_perplexity(predictor)
    if not math.isfinite(ppl):
        raise PackageError("refused before activation: the model's log-likelihood is not finite")
    if ppl > ratio * reference["ppl"]:
        raise PackageError(
            f"refused before activation: perplexity {ppl:.1f} on the health text is over {ratio:g}x the base "
            f"model's ({reference['ppl']:.1f}), the bound the package states"
        )
    said = answers(predictor)
    if not reference["degenerate"] and any(map(degenerate, said)):
        bad = next(a for a in said if degenerate(a))
        raise PackageError(
            f"refused before activation: a degenerate answer to a health prompt ({bad[:40]!r})"
        )


def finite_logits(logits: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(logits).all()):
        raise PackageError(f"refused before activation: {what} gives non-finite logits")
