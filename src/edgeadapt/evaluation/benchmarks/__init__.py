"""The general benchmarks and metric declarations, one module each, each registering itself
(`evaluation.registry`). Every module in this folder is imported here, so a new benchmark is one new module
(and its data file) that calls `register_benchmark`; the suite runs it and the reports show its columns."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
