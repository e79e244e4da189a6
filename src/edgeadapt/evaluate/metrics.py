"""Pure metric functions, kept free of models so tests can check them by hand."""

from __future__ import annotations

import math
import re
import unicodedata


def normalize(text: str) -> str:
    """First line, lower case, punctuation dropped, whitespace collapsed: the form exact match compares."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    first = unicodedata.normalize("NFKC", first).lower()
    first = re.sub(r"[^\w\s]", " ", first)
    return " ".join(first.split())


def exact_match(answer: str, reference: str) -> bool:
    return normalize(answer) == normalize(reference) and bool(normalize(reference))


def perplexity_from_nll(nll_sum: float, tokens: int) -> float:
    return math.exp(nll_sum / tokens)


def degradation_pct(tuned: float, base: float) -> float:
    """(tuned - base) / base x 100: positive when the tuned model's perplexity is worse."""
    return (tuned - base) / base * 100.0


def retention(tuned_rate: float, base_rate: float) -> float | None:
    """Tuned on-topic rate over the base model's; None when the base model is never on topic."""
    return tuned_rate / base_rate if base_rate > 0 else None
