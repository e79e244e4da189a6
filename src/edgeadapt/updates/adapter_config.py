"""What a received adapter_config.json may say: an allow-list of every option PEFT writes, each with the
values a plain LoRA (or DoRA) adapter on our base may hold. The device loads an adapter with PEFT, and PEFT
acts on its config: `layer_replication` adds decoder layers, `modules_to_save` replaces whole modules,
`trainable_token_indices` edits embeddings, a regex in `target_modules` reaches any module. Such options
change the model beyond the adapter's ΔW, so anything but their neutral value is refused, and an option
this list does not know is refused too (a newer PEFT that writes a new one fails the device tests first).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def _none(value: Any) -> bool:
    return value is None


def _none_or_false(value: Any) -> bool:
    return value is None or value is False


def _empty(value: Any) -> bool:
    return value in (None, {}, [], False)


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) < 512)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _module_names(value: Any) -> bool:
    """A list of plain module names (a string is a regex PEFT would match against every module)."""
    return (
        isinstance(value, list)
        and 0 < len(value) <= 64
        and all(isinstance(v, str) and v.isidentifier() for v in value)
    )


def _layer_numbers(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, int) and v >= 0 for v in value))


def _patterns(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= 64
        and all(isinstance(k, str) and len(k) < 128 and _number(v) for k, v in value.items())
    )


OPTIONS: dict[str, Callable[[Any], bool]] = {
    # what the adapter is
    "peft_type": lambda v: v == "LORA",
    "task_type": lambda v: v in ("CAUSAL_LM", None),
    "r": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536,
    "lora_alpha": _number,
    "rank_pattern": _patterns,
    "alpha_pattern": _patterns,
    "use_rslora": _bool,
    "use_dora": _bool,
    "target_modules": _module_names,
    "layers_to_transform": _layer_numbers,
    "layers_pattern": lambda v: v is None or (isinstance(v, str) and v.isidentifier()),
    "init_lora_weights": lambda v: isinstance(v, bool) or v in ("gaussian", "pissa", "olora"),
    "lora_dropout": lambda v: _number(v) and 0 <= v < 1,
    "inference_mode": _bool,
    # informational only: PEFT does not load anything from them when the device hands it its own base
    "base_model_name_or_path": _text,
    "revision": _text,
    "peft_version": _text,
    "megatron_core": _text,
    "auto_mapping": _none,
    "qalora_group_size": lambda v: v is None or isinstance(v, int),
    # options that would change the model beyond a LoRA: only their neutral value
    "bias": lambda v: v == "none",
    "fan_in_fan_out": lambda v: v is False,
    "lora_bias": lambda v: v is False,
    "use_qalora": _none_or_false,
    "use_bdlora": _none_or_false,
    "ensure_weight_tying": _none_or_false,
    "layer_replication": _empty,
    "modules_to_save": _empty,
    "trainable_token_indices": _empty,
    "target_parameters": _empty,
    "exclude_modules": _empty,
    "loftq_config": _empty,
    "megatron_config": _none,
    "alora_invocation_tokens": _none,
    "arrow_config": _none,
    "corda_config": _none,
    "eva_config": _none,
    "kasa_config": _none,
    "lora_ga_config": _none,
    "monteclora_config": _none,
    "velora_config": _none,
}


def config_problems(config: dict[str, Any], dora: bool) -> list[str]:
    """Every option of `config` is on the allow-list with an allowed value; `use_dora` as the method says."""
    problems = []
    for key, value in config.items():
        allowed = OPTIONS.get(key)
        if allowed is None:
            problems.append(f"adapter_config.json: option '{key[:60]}' is not one this version knows")
        elif not allowed(value):
            problems.append(f"adapter_config.json: {key} = {str(value)[:60]} is not allowed on a device")
    if config.get("use_dora", False) != dora:
        problems.append(f"adapter_config.json: use_dora must be {dora} for this method")
    return problems
