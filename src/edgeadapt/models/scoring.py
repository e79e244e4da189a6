"""Next-token cross-entropy at the scored positions only: one function for the training loss and for
perplexity, so both read the same numbers.

The LM head of a small model is a large share of its compute (576 x 49152 on SmolLM2-135M, about a fifth
of the forward pass), and an SFT row scores only its response. Models that accept `logits_to_keep` as a 2-D
boolean mask (`edgeadapt.data.collate.labelled_positions`) return logits flattened to (scored tokens,
vocab), in row-major order.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from edgeadapt.data.format import IGNORE_INDEX


def accepts_logits_to_keep(model: nn.Module) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of every scored token, from logits at the labelled positions only
    (flattened in row-major order, as `logits_to_keep=labelled_positions(labels)` gives)."""
    targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX].to(logits.device)
    return nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets, reduction="none"
    )


def labelled_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy and the number of scored tokens (see `token_nll`)."""
    losses = token_nll(logits, labels)
    return losses.sum(), losses.numel()


def labelled_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """The Trainer's loss from logits at the labelled positions: the same value as the model's own loss, a
    sum over scored tokens divided by `num_items_in_batch` (the Trainer's count over the accumulated
    batches), or a mean."""
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    loss, count = labelled_nll(logits, labels)
    return loss / (num_items_in_batch if num_items_in_batch is not None else count)
