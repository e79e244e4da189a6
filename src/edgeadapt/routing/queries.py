"""The router's query: the base model's own hidden states of a prompt at one layer, mean-pooled over the
prompt's tokens. Only the layers up to that one run (the forward stops there), always on the base weights
(those layers' adapters off), so routing costs a fraction of one prefill; layer 0 is the token embeddings
(no transformer layer runs at all).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from edgeadapt.models.structure import decoder_layers


class _Reached(Exception):
    """Raised by the hook once the query layer has run: nothing after it is needed."""

    def __init__(self, hidden: torch.Tensor):
        self.hidden = hidden


def base_weights(model: nn.Module):
    """The base model's path: a PEFT model's adapters switched off, a plain model as it is."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


@contextlib.contextmanager
def base_layers(model: nn.Module, count: int):
    """The first `count` decoder layers on their base weights: only their adapter layers are switched off
    (PEFT's `enable_adapters` per layer; switching every adapter layer of the model costs more than the query
    itself). Each layer's state and its parameters' requires_grad are restored on exit."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = decoder_layers(model)[:count]
    tuned = [m for layer in layers for m in layer.modules() if isinstance(m, BaseTunerLayer)]
    saved = [(m, m.disable_adapters, [(p, p.requires_grad) for p in m.parameters()]) for m in tuned]
    for module in tuned:
        module.enable_adapters(False)
    try:
        yield model
    finally:
        for module, disabled, grads in saved:
            module.enable_adapters(not disabled)
            for parameter, flag in grads:  # enabling marks the active adapters trainable: undo that
                parameter.requires_grad_(flag)


@torch.no_grad()
def hidden_at(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int
) -> torch.Tensor:
    """Hidden states after decoder layer `layer` (1-based; 0: the token embeddings), stopping the forward there."""
    layers = decoder_layers(model)
    if not 0 <= layer <= len(layers):
        raise ValueError(f"router.layer must be in 0..{len(layers)}, got {layer}")
    if layer == 0:
        return model.get_input_embeddings()(input_ids)

    def stop(module, args, output):
        raise _Reached(output[0] if isinstance(output, tuple) else output)

    handle = layers[layer - 1].register_forward_hook(stop)
    try:
        with base_layers(model, layer):
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _Reached as reached:
        return reached.hidden
    finally:
        handle.remove()
    raise RuntimeError("the query layer never ran")


@torch.no_grad()
def prompt_queries(
    model: nn.Module, tokenizer, prompts: list[list[int]], layer: int, batch_size: int = 32
) -> torch.Tensor:
    """(prompts, hidden) float32: each prompt's mean hidden state at `layer` over its tokens."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer.pad(
            [{"input_ids": p} for p in prompts[start : start + batch_size]],
            padding_side="right",
            return_tensors="pt",
        )
        mask = batch["attention_mask"].to(device)
        hidden = hidden_at(model, batch["input_ids"].to(device), mask, layer).float()
        weights = mask.unsqueeze(-1).float()
        out.append(((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.hidden_size)
