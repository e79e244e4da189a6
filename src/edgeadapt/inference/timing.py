"""Timed generation: seconds of every decoding step, measured on the model itself (never from a formula)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch


def greedy_steps(model, prompt: list[int]) -> Iterator[tuple[float, int]]:
    """Greedy decoding at batch 1 with the KV cache: (seconds, token) of the prompt's forward pass (the
    prefill, whose token is the first answer token), then of every step after it, for as long as asked."""
    token, cache = torch.tensor([prompt]), None
    while True:
        start = time.perf_counter()
        with torch.no_grad():  # per step: the generator may be left open between steps
            out = model(token, cache=cache, use_cache=True)
        cache, token = out.cache, out.logits[:, -1:].argmax(-1)
        yield time.perf_counter() - start, int(token)


def decode_times(model, prompt: list[int], new_tokens: int) -> list[float]:
    """Seconds of each greedy decoding step after the prompt's forward pass (the prefill is not a token)."""
    steps = greedy_steps(model, prompt)
    next(steps)
    return [next(steps)[0] for _ in range(new_tokens)]


def answer_seconds(model, prompt: list[int], new_tokens: int) -> dict[str, float]:
    """Wall time of one greedy answer at batch 1: the prompt's forward pass (prefill) and the whole answer."""
    steps = greedy_steps(model, prompt)
    prefill = next(steps)[0]
    total = prefill + sum(next(steps)[0] for _ in range(new_tokens - 1))
    return {"prefill_s": prefill, "total_s": total}


def timed_answer(model, prompt: list[int], max_new_tokens: int, stop_ids: set[int]) -> dict[str, float]:
    """One request as a device serves it, timed: the prefill, then greedy tokens until an end token or
    `max_new_tokens`. Seconds of the prefill and of the whole answer, and how many tokens it had."""
    steps = greedy_steps(model, prompt)
    prefill, token = next(steps)
    total, new = prefill, 1
    while new < max_new_tokens and token not in stop_ids:
        seconds, token = next(steps)
        total += seconds
        new += 1
    return {"prefill_s": prefill, "total_s": total, "new_tokens": new}
