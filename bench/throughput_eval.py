"""Evaluation speed for bench/throughput.py: perplexity tokens/s on sets shaped like the demo's (edgeadapt's
batched `perplexity` against a naive loop; the two must agree) and generation tokens/s (`greedy`, batched with a
KV cache, against one prompt at a time)."""

from __future__ import annotations

import math
import time

import torch

from edgeadapt import models
from edgeadapt.inference.generation import greedy
from edgeadapt.inference.predictor import ModelPredictor, perplexity
from synthetic import build, rows


def seconds(fn, *args):
    """fn(*args) and the seconds it took."""
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start


def naive_perplexity(model, chunks: list[dict[str, list[int]]]) -> float:
    """Perplexity the way a user writes it: one sequence at a time through the model's own loss."""
    device, total, count = next(model.parameters()).device, 0.0, 0
    with torch.no_grad():
        for row in chunks:
            labels = torch.tensor([row["labels"]], device=device)
            loss = model(input_ids=torch.tensor([row["input_ids"]], device=device), labels=labels).loss
            scored = int((labels[:, 1:] != -100).sum())
            total, count = total + loss.item() * scored, count + scored
    return math.exp(total / count)


# The demo's evaluation sets in shape: general prose (32 chunks of 128 tokens, every token scored) and domain
# questions (64 rows of ~72 tokens, the response scored: about 15%).
EVAL_SETS = {"general": (128, 32, 1.0), "domain": (72, 64, 0.15)}


def eval_speed(arch, device, tokenizer, prompts: int = 16, new_tokens: int = 16) -> dict:
    model = build(arch, device).eval()
    # The tokenizer only pads here (the rows are random ids); the tiny one does when the real one is absent.
    predictor = ModelPredictor(model, tokenizer or models.tiny_tokenizer())
    out = {}
    for set_name, (seq, count, share) in EVAL_SETS.items():
        chunks = rows(model.config.vocab_size, seq, count, share)
        perplexity(predictor, chunks[:16], 16)  # warm-up: the first calls are slow
        naive_perplexity(model, chunks[:4])
        timed = {
            "batched": seconds(perplexity, predictor, chunks, 16),
            "naive": seconds(naive_perplexity, model, chunks),
        }
        for side, (_, spent) in timed.items():
            out[f"perplexity_{set_name}_{side}_tokens_per_s"] = seq * count / spent
        (batched, _), (naive, _) = timed["batched"], timed["naive"]
        if not math.isclose(batched, naive, rel_tol=1e-3):  # the same figure, or the comparison means nothing
            raise SystemExit(f"{set_name}: perplexity {batched} batched vs {naive} naive")
    if tokenizer is not None and len(tokenizer) >= model.config.vocab_size // 2:
        ids = [
            tokenizer(f"Question {i}: what is the capital of a country?")["input_ids"] for i in range(prompts)
        ]
        for name, batch in (("generation_batched", prompts), ("generation_one_by_one", 1)):
            start = time.perf_counter()
            greedy(model, tokenizer, ids, new_tokens, batch, desc=name)
            out[name + "_tokens_per_s"] = prompts * new_tokens / (time.perf_counter() - start)
    return out
