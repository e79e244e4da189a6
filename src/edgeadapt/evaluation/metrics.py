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


def contains_answer(answer: str, reference: str) -> bool:
    """fact_recall's test: the normalized reference, or one of its `|`-separated forms ("seven|7"), appears
    as whole words in the normalized answer."""
    said = f" {normalize(answer)} "
    forms = [normalize(form) for form in reference.split("|")]
    return any(form and f" {form} " in said for form in forms)


def degradation_pct(tuned: float, base: float) -> float:
    """(tuned - base) / base x 100: positive when the tuned model's perplexity is worse."""
    return (tuned - base) / base * 100.0


def retention(tuned_rate: float, base_rate: float) -> float | None:
    """Tuned on-topic rate over the base model's; None when the base model is never on topic."""
    return tuned_rate / base_rate if base_rate > 0 else None


# Cross-domain transfer (`edgeadapt transfer`). S is a score where higher is better; for perplexity S = 1/PPL.
# θ0 is the base model, θ_i the model tuned on domain i.


def dsi(s_domain: float, s_domain_base: float, s_general: float, s_general_base: float) -> float:
    """Domain Specialization Index: [S_D(θ)/S_D(θ0)] / [S_G(θ)/S_G(θ0)]; > 1 when the domain gained more."""
    return (s_domain / s_domain_base) / (s_general / s_general_base)


def generalization_gap(s_general: float, s_general_base: float) -> float:
    """GG = (S_G(θ0) − S_G(θ)) / S_G(θ0): the share of general score lost (negative: gained)."""
    return (s_general_base - s_general) / s_general_base


def cdtr(s_j_tuned_i: float, s_j_base: float, s_j_tuned_j: float) -> float | None:
    """CDTR(i→j) = (S_j(θ_i) − S_j(θ0)) / (S_j(θ_j) − S_j(θ0)); None when the specialist did not move."""
    gain = s_j_tuned_j - s_j_base
    return (s_j_tuned_i - s_j_base) / gain if gain != 0 else None


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
