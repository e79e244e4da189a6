"""The device runtimes, one module each, each registering itself (`deploy.runtime`): `transformers` and
`llamacpp`. Every module in this folder is imported here."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
