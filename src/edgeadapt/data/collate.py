"""Batches of encoded rows: one collator for training and for scoring, and the positions that are scored.

Rows are right-padded (positions start at 0 for every row, as in training) with label -100 on padding
(transformers' `DataCollatorForSeq2Seq`). `labelled_positions` marks where the next token is scored: only
there does a model need logits (an SFT row scores its response only).
"""

from __future__ import annotations

import copy

import torch

from edgeadapt.data.format import IGNORE_INDEX


def labelled_positions(labels: torch.Tensor) -> torch.Tensor:
    """(batch, seq) bool: positions whose next token is scored. Only these need logits."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def collator(tokenizer, sparse_logits: bool):
    """Right-padded batches with -100 labels on padding; with `sparse_logits`, the labelled positions too
    (as `logits_to_keep`, which transformers models accept to compute the LM head only there)."""
    from transformers import DataCollatorForSeq2Seq

    right = copy.copy(tokenizer)
    right.padding_side = "right"
    pad = DataCollatorForSeq2Seq(right, padding=True, label_pad_token_id=IGNORE_INDEX)
    if not sparse_logits:
        return pad

    def collate(features):
        batch = pad(features)
        batch["logits_to_keep"] = labelled_positions(batch["labels"])
        return batch

    return collate
