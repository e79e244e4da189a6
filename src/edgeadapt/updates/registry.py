"""The method registry: each method module registers itself once, with everything the rest of edgeadapt
needs to know about it (as PEFT's `register_peft_method` does). Nothing else keeps a table of methods.

A method provides plain functions:

- `prepare(model, cfg, calibration) -> model`: make exactly the method's parameters trainable (wrap for
  adapters); `calibration` holds encoded domain training rows for methods that look at the data first;
- `save_update(model, out_dir) -> list[Path]`: write what a device must receive (safetensors);
- `load_tuned(base_model, update_dir) -> model`: the tuned model from the base and the saved update; it is
  registered under a loader name (`peft`, `transformers`, `adaptq`) that package manifests record and that
  the device uses;
- `merge(model) -> model`: a plain transformers model with the update folded in;
- `scaled(tuned, base, s)`: a context manager giving the model moved a share s of the way from base to
  tuned (adapter scaling, or weight interpolation for SFT), restored on exit;
- optionally `check(cfg, where) -> problems`, `describe(tuned) -> dict` (method-specific results) and
  `deploy_variants` (other ways to run the update, whose cost the evaluation can measure);
- `check_files(update_dir, base_tensors) -> problems`: what a device checks before it loads a received update:
  every file and tensor is one the method writes, each tensor's dtype and shape fits the base it applies to
  (`base_tensors`: name -> (dtype, shape) of the base checkpoint), and every value is finite.

and declares its `Capabilities`. A config's `methods:` maps a variant name to options; the variant runs the
method of the same name, or the one its `method` key names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeadapt.core.config import from_dict
from edgeadapt.core.errors import UserError, unknown

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn


@dataclass(frozen=True)
class Capabilities:
    """What a method's update is and what a device needs for it."""

    lora_family: bool
    """The update is a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors): it loads in
    `PeftModel`, its ΔW is scaling·B·A, it can be one adapter of a library among others on one base."""
    mergeable: bool
    """Folding the update into the base leaves a plain transformers model that runs at the base's cost."""
    gguf: str | None
    """None when the merged model can be written as GGUF for llama.cpp; otherwise the reason it cannot."""
    device_holds: str
    """What a device keeps in memory to run the tuned model."""
    gguf_lora: str | None = None
    """For a LoRA-family update: None when llama.cpp can apply it as a GGUF LoRA on the base it holds;
    otherwise why not (a llama.cpp device then receives the merged model)."""


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    Config: type
    prepare: Callable[..., nn.Module]
    save_update: Callable[[nn.Module, Path], list[Path]]
    loader: str
    load_tuned: Callable[[nn.Module, Path], nn.Module]
    merge: Callable[[nn.Module], nn.Module]
    scaled: Callable[..., Any]
    capabilities: Capabilities
    check_files: Callable[[Path, dict[str, tuple[str, list[int]]]], list[str]]
    check: Callable[[Any, str], list[str]] | None = None
    describe: Callable[[nn.Module], dict[str, Any]] | None = None
    deploy_variants: dict[str, Callable[[nn.Module], nn.Module]] = field(default_factory=dict)
    """Other ways a device could run the update (name -> the deployed model made into that), whose cost
    `eval.deploy_variants` measures beside the deployed model (qlora merged into its 4-bit base; an
    adapter merged and then quantized: the ADAPT-Q paper's quantization-order ablation)."""


METHODS: dict[str, Method] = {}
LOADERS: dict[str, Callable[[nn.Module, Path], nn.Module]] = {}
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def register(**fields: Any) -> Method:
    """Add a method (the fields of `Method`); called once at the bottom of each method's module."""
    method = Method(**fields)
    if method.name in METHODS:
        raise ValueError(f"method '{method.name}' is registered twice")
    known = LOADERS.get(method.loader)
    if known is not None and known is not method.load_tuned:
        raise ValueError(f"loader '{method.loader}' is already registered with another load function")
    METHODS[method.name] = method
    LOADERS[method.loader] = method.load_tuned
    return method


def get(name: str) -> Method:
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]


def loader(name: str) -> Callable[[nn.Module, Path], nn.Module]:
    """The load function a package's manifest names (`loader`), as the device uses it."""
    if name not in LOADERS:
        raise unknown("update loader", name, LOADERS)
    return LOADERS[name]


def apply_update(base: nn.Module, method: str, update_dir: Path, merge: bool = True) -> nn.Module:
    """The base model with a saved update applied: merged (as a device runs it) or kept apart (adapters stay
    separate layers, so they can be scaled or analysed)."""
    spec = get(method)
    tuned = spec.load_tuned(base, Path(update_dir))
    return spec.merge(tuned) if merge else tuned


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
        check = METHODS[name].check
        problems += check(cfg, f"methods.{variant}") if check and not problems else []
        parsed[variant] = cfg
    if problems:
        raise UserError("; ".join(problems))
    return parsed
