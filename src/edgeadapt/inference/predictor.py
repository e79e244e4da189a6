"""One way to run any model: a predictor with log-likelihood and greedy generation, like
lm-evaluation-harness's `LM` interface. Every evaluation, edge check, export and device path asks a
predictor, so a tuned, routed or generated model is evaluated exactly as the base model is.

- `loglikelihood(rows, batch_size)`: per encoded row (input_ids, labels with -100 on unscored tokens), the
  summed negative log-likelihood of its labelled tokens and their count;
- `generate(prompts, max_new_tokens, batch_size)`: greedy answers to token-id prompts.

`ModelPredictor` runs one plain model (the base, or a tuned model with its update merged, as a device runs
it); `open_model` builds one from a checkpoint folder and, optionally, a saved update.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from edgeadapt import models, updates
from edgeadapt.inference.generation import greedy
from edgeadapt.inference.perplexity import perplexity_of, row_nll


class Predictor(Protocol):
    name: str
    """What is asked (base, a variant, routed), for progress lines."""
    tokenizer: Any
    model: nn.Module
    """The module that holds the weights (for memory figures); a routed predictor's holds every adapter."""

    def loglikelihood(
        self, rows: list[dict[str, list[int]]], batch_size: int, desc: str = "perplexity"
    ) -> list[tuple[float, int]]: ...

    def generate(
        self, prompts: list[list[int]], max_new_tokens: int, batch_size: int, desc: str = "generating"
    ) -> list[str]: ...


def answering(model: nn.Module, bf16: bool):
    """The context a model answers in: its matrix products in bf16 (autocast on its device; the weights stay
    as they are) when `bf16`, else no context at all, so that a caller's own autocast still holds (an
    autocast with enabled=False would switch it off)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)


class ModelPredictor:
    """A plain transformers model (base, or tuned and merged). `bf16`: it answers under bf16 autocast."""

    def __init__(self, model: nn.Module, tokenizer, name: str = "model", bf16: bool = False):
        self.model, self.tokenizer, self.name, self.bf16 = model.eval(), tokenizer, name, bf16

    def loglikelihood(self, rows, batch_size, desc="perplexity"):
        with answering(self.model, self.bf16):
            return row_nll(self.model, self.tokenizer, rows, batch_size, desc)

    def generate(self, prompts, max_new_tokens, batch_size, desc="generating"):
        with answering(self.model, self.bf16):
            return greedy(self.model, self.tokenizer, prompts, max_new_tokens, batch_size, desc)


def perplexity(predictor: Predictor, rows: list[dict[str, list[int]]], batch_size: int, desc="perplexity"):
    """Token-weighted perplexity of `rows` under the predictor."""
    return perplexity_of(predictor.loglikelihood(rows, batch_size, desc))


def open_model(
    model_path: Path,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
    method: str | None = None,
    update_dir: Path | None = None,
    merge: bool = True,
    tokenizer=None,
    name: str | None = None,
) -> ModelPredictor:
    """The base model at `model_path`, with the saved update of `method` applied (merged unless asked)."""
    model, loaded_tokenizer = models.load(Path(model_path), dtype, device)
    if method is not None:
        model = updates.apply_update(model, method, Path(update_dir), merge=merge)
    return ModelPredictor(model, tokenizer or loaded_tokenizer, name or method or "base")
