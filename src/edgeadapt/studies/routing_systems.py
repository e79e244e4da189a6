"""The systems `route eval` compares the routed library with (`router.baselines`): other router kinds, each
trained per seed like the library's own (any registered kind), and single models made from the same data.

`SINGLE_MODELS` maps a baseline name to what builds its predictor; nothing else names them. `check` refuses
an unknown name with a did-you-mean before the study starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeadapt.core.config import RunConfig
from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.inference.predictor import ModelPredictor, Predictor
from edgeadapt.routing import ROUTERS, baselines
from edgeadapt.studies.library import GENERAL, MULTITASK, extra_run
from edgeadapt.updates.library import Library

ALWAYS = ("base", "oracle")  # evaluated in every study; naming them in router.baselines changes nothing


def _merged(combination: str) -> Callable[..., Predictor]:
    def build(cfg: RunConfig, library: Library, first, runs) -> Predictor:
        model = baselines.merged_model(library, first.load_model(first.dtype), combination)
        return ModelPredictor(model, first.tokenizer)

    return build


def _arrow(general_knowledge: bool) -> Callable[..., Predictor]:
    def build(cfg: RunConfig, library: Library, first, runs) -> Predictor:
        general = [extra_run(cfg, GENERAL, first).update_dir(GENERAL)] if general_knowledge else None
        model = baselines.arrow_model(
            library,
            first.load_model(first.dtype),
            cfg.router.arrow_top_k,
            cfg.router.arrow_temperature,
            general,
        )
        return ModelPredictor(model, first.tokenizer)

    return build


def _multitask(cfg: RunConfig, library: Library, first, runs) -> Predictor:
    return extra_run(cfg, MULTITASK, first).open(MULTITASK)


SINGLE_MODELS: dict[str, Callable[..., Predictor]] = {
    "merged_mean": _merged("cat"),
    "merged_svd": _merged("svd"),
    "merged_linear": _merged("linear"),
    "multitask": _multitask,
    "arrow": _arrow(False),
    "arrow_gks": _arrow(True),
}
"""Each builds its model from a fresh copy of the base (a baseline modifies its own copy)."""
PER_TOKEN_ROUTING = ("arrow", "arrow_gks")  # Arrow has its own (per-token) choice of expert to report


def check(cfg: RunConfig) -> None:
    """Every router.baselines entry is a router kind, a single model, base or oracle."""
    known = [*ALWAYS, *ROUTERS, *SINGLE_MODELS]
    for name in cfg.router.baselines:
        if name not in known:
            raise UserError(
                f"router.baselines: unknown '{name}'.{did_you_mean(name, known)} Choose from {', '.join(sorted(known))}."
            )


def compared_kinds(cfg: RunConfig) -> list[str]:
    """Router kinds trained beside the library's own kind, as baselines."""
    return [name for name in cfg.router.baselines if name in ROUTERS and name != cfg.router.kind]


def single_model(name: str, cfg: RunConfig, library: Library, first, runs) -> Predictor | None:
    build = SINGLE_MODELS.get(name)
    return build(cfg, library, first, runs) if build else None


def summary_kinds(cfg_or_results: Any) -> list[str]:
    """The router kinds a study's summary covers, from a config or a routing.json's config."""
    router = (
        cfg_or_results["config"]["router"]
        if isinstance(cfg_or_results, dict)
        else vars(cfg_or_results.router)
    )
    kind = router.get("kind", "scar")
    return [kind] + [b for b in router.get("baselines", []) if b in ROUTERS and b != kind]
