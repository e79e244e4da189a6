"""Token-weighted perplexity over rows of input ids and labels (label -100 is not scored)."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from edgeadapt.data.format import IGNORE_INDEX
from edgeadapt.errors import UserError
from edgeadapt.evaluate.metrics import perplexity_from_nll
from edgeadapt.train import accepts_logits_to_keep, labelled_nll, labelled_positions


@torch.no_grad()
def nll(
    model: nn.Module, rows: list[dict[str, list[int]]], batch_size: int, desc: str = "perplexity"
) -> tuple[float, int]:
    """Summed negative log-likelihood of the labelled tokens, and how many there were."""
    device = next(model.parameters()).device
    sparse = accepts_logits_to_keep(model)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # less padding per batch
    total, count = 0.0, 0
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        batch = [rows[i] for i in order[start : start + batch_size]]
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for j, row in enumerate(batch):  # right padding: positions start at 0 as in training
            n = len(row["input_ids"])
            ids[j, :n] = torch.tensor(row["input_ids"])
            labels[j, :n] = torch.tensor(row["labels"])
            mask[j, :n] = 1
        keep = labelled_positions(labels).to(device)
        if sparse:  # the LM head only where a token is scored: a domain row scores its response only
            logits = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=keep
            ).logits
        else:
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[keep]
        loss, scored = labelled_nll(logits, labels)
        total += loss.item()
        count += scored
    return total, count


def perplexity(model: nn.Module, rows: list[dict[str, list[int]]], batch_size: int) -> float:
    total, count = nll(model, rows, batch_size)
    if count == 0:
        raise UserError("No scored tokens in an evaluation set: every response was empty or cut off.")
    return perplexity_from_nll(total, count)
