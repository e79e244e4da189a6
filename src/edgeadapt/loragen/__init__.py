"""LoRA-Gen: a generator trained over many tasks that turns a task's description into LoRA weights in one
forward pass; its output is an ordinary PEFT adapter. The generator registry and its designs (the
hypernetwork, the pool of LoRA experts; each module registers itself), the description readers, the model
a generator trains through, and in-place merging for the evaluation.

Every module in this folder is imported here, so a new generator design is one new module that calls
`register_generator`."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
