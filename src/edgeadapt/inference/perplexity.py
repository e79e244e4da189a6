"""Log-likelihood of encoded rows (label -100 is not scored), per row, batched; and perplexity from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from edgeadapt.core.errors import UserError
from edgeadapt.data.collate import collator, labelled_positions
from edgeadapt.models.scoring import accepts_logits_to_keep, token_nll

Extra = Callable[[list[int]], dict[str, Any]]  # row indices of a batch -> extra forward arguments


@torch.no_grad()
def row_nll(
    model: nn.Module,
    tokenizer,
    rows: list[dict[str, list[int]]],
    batch_size: int,
    desc: str = "perplexity",
    extra: Extra | None = None,
) -> list[tuple[float, int]]:
    """Per row: the summed negative log-likelihood of its labelled tokens, and how many there were.

    Rows are batched by length (less padding), right-padded by the training collator. `extra` gives more
    forward arguments for a batch from its row indices (a routed model's `adapter_names`).
    """
    device = next(model.parameters()).device
    sparse = accepts_logits_to_keep(model)
    collate = collator(tokenizer, sparse_logits=False)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=None):
        index = order[start : start + batch_size]
        batch = collate([{"input_ids": rows[i]["input_ids"], "labels": rows[i]["labels"]} for i in index])
        keep = labelled_positions(batch["labels"])
        kwargs = {
            "input_ids": batch["input_ids"].to(device),
            "attention_mask": batch["attention_mask"].to(device),
        }
        kwargs.update(extra(index) if extra else {})
        if sparse:  # the LM head only where a token is scored: a domain row scores its response only
            logits = model(**kwargs, logits_to_keep=keep.to(device)).logits
        else:
            logits = model(**kwargs).logits[keep.to(device)]
        losses = token_nll(logits, batch["labels"]).cpu()
        owner = keep.nonzero()[:, 0]  # the row (within the batch) each scored token belongs to
        sums = torch.zeros(len(index), dtype=torch.float64).index_add_(0, owner, losses.double())
        counts = keep.sum(1)
        for j, i in enumerate(index):
            out[i] = (float(sums[j]), int(counts[j]))
    return out


def perplexity_of(scores: list[tuple[float, int]]) -> float:
    """exp(total NLL / scored tokens) over rows' (nll, tokens)."""
    import math

    total, count = sum(s for s, _ in scores), sum(n for _, n in scores)
    if count == 0:
        raise UserError("No scored tokens in an evaluation set: every response was empty or cut off.")
    return math.exp(total / count)
