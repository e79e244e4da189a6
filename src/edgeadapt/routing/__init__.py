"""Routing: per request, which experts of an adapter library to apply, or none (the base model). The router
registry and its kinds (SCAR, a text classifier; each module registers itself), the oracle, the routed
predictor, and the single-model baselines made from a library (merged adapters, PEFT's Arrow).

Every module in this folder is imported here, so a new router kind is one new module that calls
`register_router`."""

import importlib
import pkgutil

from edgeadapt.routing.registry import (
    ROUTERS,
    RouterCapabilities,
    RouterKind,
    RouterTraining,
    get_router,
    load_router,
    register_router,
    router_key,
    router_kind_of,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ROUTERS",
    "RouterCapabilities",
    "RouterKind",
    "RouterTraining",
    "get_router",
    "load_router",
    "register_router",
    "router_key",
    "router_kind_of",
]
