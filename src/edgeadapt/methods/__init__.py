"""The method registry. A method is a module with a `Config` dataclass and plain functions:

- `prepare(model, cfg, calibration) -> model`: make exactly the method's parameters trainable (wrap for
  adapters); `calibration` holds encoded domain training rows for methods that look at the data first;
- `save_update(model, out_dir) -> list[Path]`: write what a device must receive (safetensors);
- `load_tuned(base_model, update_dir) -> model`: the tuned model from the base and the saved update;
- `merge(model) -> model`: a plain transformers model with the update folded in;
- `scaled(tuned, base, s)`: a context manager giving the model moved a share s of the way from base to
  tuned (adapter scaling, or weight interpolation for SFT), restored on exit;
- optionally `describe(tuned) -> dict`: method-specific facts for results.json (adaptq's chosen blocks).

A config's `methods:` maps a variant name to options; the variant runs the method of the same name, or the
one its `method` key names, so one run can hold several variants of a method (`adaptq_first: {method:
adaptq, selection: first}`).

Every method trains in the same loop (`edgeadapt.train`); they differ only in what trains and what is saved.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from torch import nn

from edgeadapt.config import from_dict
from edgeadapt.errors import UserError, unknown
from edgeadapt.methods import adaptq, hlora, lora, sft


class Method(Protocol):
    NAME: str
    DESCRIPTION: str
    Config: type

    def prepare(self, model: nn.Module, cfg: Any, calibration: list[dict] | None = None) -> nn.Module: ...
    def save_update(self, model: nn.Module, out_dir: Path) -> list[Path]: ...
    def load_tuned(self, base: nn.Module, update_dir: Path) -> nn.Module: ...
    def merge(self, model: nn.Module) -> nn.Module: ...
    def scaled(self, tuned: nn.Module, base: nn.Module, s: float) -> AbstractContextManager[nn.Module]: ...


METHODS: dict[str, ModuleType] = {m.NAME: m for m in (sft, lora, hlora, adaptq)}
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def get(name: str) -> Method:
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]


def method_of(variant: str, options: dict | None) -> str:
    """The method a `methods:` entry runs: the one its `method` key names, else its own name."""
    return (options or {}).get("method", variant)


def parse_configs(raw: dict[str, dict | None]) -> dict[str, Any]:
    """Validate every variant's options at once: names, unknown methods and keys, with did-you-mean."""
    problems, parsed = [], {}
    for variant, options in raw.items():
        options = dict(options or {})
        name = options.pop("method", variant)
        if not VARIANT_NAME.fullmatch(str(variant)):
            problems.append(f"methods.{variant}: a variant name is letters, digits, '_', '.' or '-'")
            continue
        if name not in METHODS:
            message = unknown("method", name, METHODS).args[0]
            if name == variant:
                message += f" For a variant, name its method: `{variant}: {{method: lora, ...}}`."
            problems.append(message)
            continue
        cfg = from_dict(METHODS[name].Config, options, f"methods.{variant}", problems)
        check = getattr(METHODS[name], "check", None)
        problems += check(cfg, f"methods.{variant}") if check and not problems else []
        parsed[variant] = cfg
    if problems:
        raise UserError("; ".join(problems))
    return parsed
