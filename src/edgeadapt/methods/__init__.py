"""The method registry. A method is a module with a `Config` dataclass and plain functions:

- `prepare(model, cfg) -> model`: make exactly the method's parameters trainable (wrap for adapters);
- `save_update(model, out_dir) -> list[Path]`: write what a device must receive (safetensors);
- `load_tuned(base_model, update_dir) -> model`: the tuned model from the base and the saved update;
- `merge(model) -> model`: a plain transformers model with the update folded in;
- `scaled(tuned, base, s)`: a context manager giving the model moved a share s of the way from base to
  tuned (adapter scaling, or weight interpolation for SFT), restored on exit.

Every method trains in the same loop (`edgeadapt.train`); they differ only in what trains and what is saved.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from torch import nn

from edgeadapt.config import from_dict
from edgeadapt.errors import UserError, unknown
from edgeadapt.methods import hlora, lora, sft


class Method(Protocol):
    NAME: str
    DESCRIPTION: str
    Config: type

    def prepare(self, model: nn.Module, cfg: Any) -> nn.Module: ...
    def save_update(self, model: nn.Module, out_dir: Path) -> list[Path]: ...
    def load_tuned(self, base: nn.Module, update_dir: Path) -> nn.Module: ...
    def merge(self, model: nn.Module) -> nn.Module: ...
    def scaled(self, tuned: nn.Module, base: nn.Module, s: float) -> AbstractContextManager[nn.Module]: ...


METHODS: dict[str, ModuleType] = {m.NAME: m for m in (sft, lora, hlora)}


def get(name: str) -> Method:
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]


def parse_configs(raw: dict[str, dict | None]) -> dict[str, Any]:
    """Validate every method's options at once: unknown methods and keys, with did-you-mean."""
    problems, parsed = [], {}
    for name, options in raw.items():
        if name not in METHODS:
            problems.append(unknown("method", name, METHODS).args[0])
            continue
        cfg = from_dict(METHODS[name].Config, options or {}, f"methods.{name}", problems)
        check = getattr(METHODS[name], "check", None)
        problems += check(cfg, f"methods.{name}") if check and not problems else []
        parsed[name] = cfg
    if problems:
        raise UserError("; ".join(problems))
    return parsed
