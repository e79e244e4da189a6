"""Log-likelihood of encoded rows (label -100 is not scored), per row, batched; and perplexity from it."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from edgeadapt.core.errors import UserError
from edgeadapt.data.collate import collator, labelled_positions
from edgeadapt.data.format import IGNORE_INDEX
from edgeadapt.models.scoring import accepts_logits_to_keep, token_nll


@torch.no_grad()
def row_nll(
    model: nn.Module,
    tokenizer,
    rows: list[dict[str, list[int]]],
    batch_size: int,
    desc: str = "perplexity",
) -> list[tuple[float, int]]:
    """Per row: the summed negative log-likelihood of its labelled tokens, and how many there were.

    Rows are batched by length (less padding), right-padded by the training collator. Rows that score
    one last token after the same context (MMLU's " A".." D") share one forward pass, as in
    lm-evaluation-harness, so a four-choice question costs one pass, not four.
    """
    device = next(model.parameters()).device
    sparse = accepts_logits_to_keep(model)
    collate = collator(tokenizer, sparse_logits=False)
    sharing = one_token_groups(rows)  # first row of a group -> the others scored from its logits
    shared = {i for others in sharing.values() for i in others}
    order = sorted((i for i in range(len(rows)) if i not in shared), key=lambda i: len(rows[i]["input_ids"]))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=None):
        index = order[start : start + batch_size]
        batch = collate([{"input_ids": rows[i]["input_ids"], "labels": rows[i]["labels"]} for i in index])
        keep = labelled_positions(batch["labels"])
        kwargs = {
            "input_ids": batch["input_ids"].to(device),
            "attention_mask": batch["attention_mask"].to(device),
        }
        if sparse:  # the LM head only where a token is scored: a domain row scores its response only
            logits = model(**kwargs, logits_to_keep=keep.to(device)).logits
        else:
            logits = model(**kwargs).logits[keep.to(device)]
        losses = token_nll(logits, batch["labels"]).cpu()
        owner = keep.nonzero()[:, 0]  # the row (within the batch) each scored token belongs to
        sums = torch.zeros(len(index), dtype=torch.float64).index_add_(0, owner, losses.double())
        counts = keep.sum(1)
        first = torch.cumsum(counts, 0) - counts  # each row's first scored position in `logits`
        for j, i in enumerate(index):
            out[i] = (float(sums[j]), int(counts[j]))
            if i in sharing:
                logprobs = torch.log_softmax(logits.reshape(-1, logits.shape[-1])[first[j]].float(), -1).cpu()
                for other in sharing[i]:
                    out[other] = (float(-logprobs[rows[other]["input_ids"][-1]]), 1)
    return out


def one_token_groups(rows: list[dict[str, list[int]]]) -> dict[int, list[int]]:
    """Rows whose only scored token is their last, grouped by the context before it: the first row of each
    group of two or more -> the other rows."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(rows):
        labels = row["labels"]
        if labels and labels[-1] != IGNORE_INDEX and all(label == IGNORE_INDEX for label in labels[:-1]):
            groups.setdefault(tuple(row["input_ids"][:-1]), []).append(i)
    return {members[0]: members[1:] for members in groups.values() if len(members) > 1}


def perplexity_of(scores: list[tuple[float, int]]) -> float:
    """exp(total NLL / scored tokens) over rows' (nll, tokens)."""
    import math

    total, count = sum(s for s, _ in scores), sum(n for _, n in scores)
    if count == 0:
        raise UserError("No scored tokens in an evaluation set: every response was empty or cut off.")
    return math.exp(total / count)
