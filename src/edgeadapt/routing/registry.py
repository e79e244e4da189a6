"""The router registry: each router kind registers itself once (as a method does in `updates.registry`),
with everything the library, the studies, packages and the device need to know about it. Nothing else keeps
a table of routers or branches on a router's name: a library's `router.json` names its `kind`, and whoever
reads the library dispatches through this registry.

A router kind provides:

- `fit(training, cfg, seed, layer) -> router`: a router trained on `training` (a `RouterTraining`) with the
  `router:` config section, its threshold calibrated on `training.calibration`, bound to the base model when
  it reads one;
- `load(folder) -> router`: the router a library folder holds (its `router.json` and the kind's `files`);
- `files`: the file names the router writes into a library (`router.json` first; each matches
  `ROUTER_FILE`, so a package may carry them);

and declares its `RouterCapabilities`. A router object (see `routing.router.ThresholdRouter`) routes
requests (`route`), gives its probabilities over the experts and the null class, saves itself, says what is
wrong with its own parameters (`problems`, the device's health check), and, when it `joins`, takes a new
expert's key with `add_key`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeadapt.core.errors import UserError, unknown
from edgeadapt.core.paths import ROUTER_FILE

ROUTER_SPEC = "router.json"


@dataclass(frozen=True)
class RouterCapabilities:
    reads_model: bool
    """Its query is the base model's own hidden states (it is bound to the base with `bind`): a layer choice
    (`router.layer`, `router.compare_layers`) means something for it."""
    ships: bool
    """It saves into a library and loads on a device (a baseline that needs a study's data does not)."""
    joins: bool
    """A new expert joins with a key of its own (`add_key`) and no retraining of the others."""


@dataclass
class RouterTraining:
    """What a router trains and calibrates on: requests with labels (an expert's index, `len(experts)` for
    the null class), held-out general requests for the threshold, and the base model."""

    experts: list[str]
    train: list[Any]
    """Requests (`routing.router.Request`: token ids and text)."""
    labels: torch.Tensor
    calibration: list[Any]
    model: Any = None
    tokenizer: Any = None
    features: Callable[[list[Any], int], torch.Tensor] | None = None
    """Cached queries of requests at a layer (the base's mean hidden state); None: computed on the model."""

    def queries(self, requests: list[Any], layer: int) -> torch.Tensor:
        if self.features is not None:
            return self.features(requests, layer)
        from edgeadapt.routing.queries import prompt_queries

        return prompt_queries(self.model, self.tokenizer, [r.ids for r in requests], layer)


@dataclass(frozen=True)
class RouterKind:
    name: str
    description: str
    fit: Callable[..., Any]
    load: Callable[[Path], Any]
    files: tuple[str, ...]
    capabilities: RouterCapabilities


ROUTERS: dict[str, RouterKind] = {}


def register_router(**fields: Any) -> RouterKind:
    """Add a router kind (the fields of `RouterKind`); called once at the bottom of its module."""
    kind = RouterKind(**fields)
    if kind.name in ROUTERS:
        raise ValueError(f"router kind '{kind.name}' is registered twice")
    if (
        not kind.files
        or kind.files[0] != ROUTER_SPEC
        or not all(ROUTER_FILE.fullmatch(f) for f in kind.files)
    ):
        raise ValueError(
            f"router kind '{kind.name}': files start with {ROUTER_SPEC} and match {ROUTER_FILE.pattern}"
        )
    ROUTERS[kind.name] = kind
    return kind


def get_router(name: str, where: str = "") -> RouterKind:
    """The registered kind `name`; an unknown one is an error naming `where` (a config key) if given."""
    if name not in ROUTERS:
        error = unknown("router kind", name, ROUTERS)
        raise UserError(f"{where}: {error}") if where else error
    return ROUTERS[name]


def unregister_router(name: str) -> None:
    """Remove a kind (tests register throwaway kinds)."""
    ROUTERS.pop(name, None)


def router_kind_of(folder: Path) -> RouterKind:
    """The registered kind a library folder's router.json names."""
    path = Path(folder) / ROUTER_SPEC
    try:
        spec = json.loads(path.read_text())
        name = spec["kind"]
        if not isinstance(name, str):
            raise TypeError("kind is not a string")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise UserError(f"{path}: no readable router ({exc})") from None
    kind = get_router(name)
    if not kind.capabilities.ships:
        raise UserError(f"{path}: a '{name}' router is a study baseline and cannot run from a library")
    return kind


def load_router(folder: Path) -> Any:
    """The router a library folder holds, loaded by the kind its router.json names."""
    return router_kind_of(folder).load(Path(folder))


def router_key(kind: str, seed: int) -> str:
    """The name a study gives the router of `kind` trained with `seed` (routing.json's keys)."""
    return f"{kind}-seed{seed}"
