"""Timed generation: seconds of every decoding step, measured on the model itself (never from a formula)."""

from __future__ import annotations

import time

import torch


def decode_times(model, prompt: list[int], new_tokens: int) -> list[float]:
    """Seconds of each greedy decoding step after the prompt's forward pass (the prefill is not a token)."""
    with torch.no_grad():
        out = model(torch.tensor([prompt]), use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(new_tokens):
            start = time.perf_counter()
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - start)
    return times


def answer_seconds(model, prompt: list[int], new_tokens: int) -> dict[str, float]:
    """Wall time of one greedy answer at batch 1: the prompt's forward pass (prefill) and the whole answer."""
    with torch.no_grad():
        start = time.perf_counter()
        out = model(torch.tensor([prompt]), use_cache=True)
        prefill = time.perf_counter() - start
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        for _ in range(new_tokens - 1):
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        total = time.perf_counter() - start
    return {"prefill_s": prefill, "total_s": total}


def timed_answer(model, prompt: list[int], max_new_tokens: int, stop_ids: set[int]) -> dict[str, float]:
    """One request as a device serves it, timed: the prefill, then greedy tokens until an end token or
    `max_new_tokens`. Seconds of the prefill and of the whole answer, and how many tokens it had."""
    with torch.no_grad():
        start = time.perf_counter()
        out = model(torch.tensor([prompt]), use_cache=True)
        prefill = time.perf_counter() - start
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        new = 1
        while new < max_new_tokens and int(token) not in stop_ids:
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            new += 1
        total = time.perf_counter() - start
    return {"prefill_s": prefill, "total_s": total, "new_tokens": new}
