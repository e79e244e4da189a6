"""Updates: one module per method, each registering itself (`registry.register`), and what every method
shares (the registry, applying a saved update, its size).

Every module in this folder is imported here, so a new method is one new module that calls `register`.
"""

import importlib
import pkgutil

from edgeadapt.updates.registry import (
    LOADERS,
    METHODS,
    Capabilities,
    Method,
    apply_update,
    get,
    loader,
    method_of,
    parse_configs,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "LOADERS",
    "METHODS",
    "Capabilities",
    "Method",
    "apply_update",
    "get",
    "loader",
    "method_of",
    "parse_configs",
    "register",
]
