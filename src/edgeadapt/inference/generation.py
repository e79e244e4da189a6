"""Batched greedy (or sampled) generation with a KV cache, left-padded, in the original order."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm


@torch.no_grad()
def greedy(
    model: nn.Module,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int,
    desc: str = "generating",
    sample_temperature: float = 0.0,
) -> list[str]:
    """Greedy continuations of token-id prompts, decoded without special tokens; with `sample_temperature`
    > 0, sampled at that temperature instead (from torch's global generator: seed it for repeatable rows)."""
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: dict[int, str] = {}
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, disable=None):
        index = order[start : start + batch_size]
        batch = tokenizer.pad(
            [{"input_ids": prompts[i]} for i in index], padding_side="left", return_tensors="pt"
        )
        width = batch["input_ids"].shape[1]
        out = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=max_new_tokens,
            do_sample=sample_temperature > 0,
            **(
                {"temperature": sample_temperature, "top_p": 1.0, "top_k": 0}
                if sample_temperature > 0
                else {}
            ),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        for j, i in enumerate(index):
            answers[i] = tokenizer.decode(out[j, width:], skip_special_tokens=True).strip()
    return [answers[i] for i in range(len(prompts))]
