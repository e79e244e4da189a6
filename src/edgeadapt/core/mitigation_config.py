"""Config sections for the mitigations of forgetting a single model can use, beside replay and the
forgetting budget: a KL term to the base on general text (`train.kl_to_base`), EWC (`train.ewc`) and general
prompts answered by the base itself mixed into training (`data.self_replay`). Each is off by default."""

from __future__ import annotations

from dataclasses import dataclass

from edgeadapt.core.checks import choice

GENERAL_ROWS = ("text", "prompts")
"""Where the KL term and EWC read general text: `text`, the general pack's prose that no evaluation reads
(the replay half); `prompts`, the project's general requests answered by the base itself (no corpus)."""
ANSWERS = ("greedy", "sampled")


def _number(where: str, value, low: float, high: float | None = None, closed: bool = True) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"{where}: a number, got {value!r}"]
    if value < low or (not closed and value == low) or (high is not None and value >= high):
        bound = f"in [{low}, {high})" if high is not None else f"{'>=' if closed else '>'} {low}"
        return [f"{where}: must be {bound}, got {value}"]
    return []


@dataclass
class KLToBaseConfig:
    weight: float = 0.0
    """If > 0: every step's loss adds weight x T^2 x KL(base || tuned), the next-token distributions of the
    frozen base and the model being trained on a batch of general text (Learning without Forgetting). For an
    adapter the base is the same model with the adapter off (no second copy)."""
    source: str = "text"
    """text (the general pack's prose no evaluation reads) or prompts (general requests answered by the base
    itself: no general corpus at all)."""
    temperature: float = 1.0
    """Softens both distributions (T); the term is scaled by T^2 so its gradient keeps its size."""
    batch_size: int = 4
    """General rows per step for the term."""
    rows: int = 64
    """General rows the term cycles through (chunks of eval.chunk_tokens tokens, or answered requests)."""

    def check(self, where: str = "train.kl_to_base") -> list[str]:
        return (
            _number(f"{where}.weight", self.weight, 0.0)
            + choice(f"{where}.source", self.source, GENERAL_ROWS)
            + _number(f"{where}.temperature", self.temperature, 0.0, closed=False)
            + _number(f"{where}.batch_size", self.batch_size, 1)
            + _number(f"{where}.rows", self.rows, 1)
        )


@dataclass
class EWCConfig:
    weight: float = 0.0
    """If > 0: every step's loss adds weight/2 x sum_i F_i (theta_i - theta0_i)^2 over the trained
    parameters, F the diagonal Fisher of the base on general text scaled to mean 1 (so the weight does not
    depend on the model's size), theta0 the weights training starts from (elastic weight consolidation)."""
    samples: int = 64
    """General rows whose squared gradients estimate the Fisher (one backward pass each, before training)."""
    source: str = "text"
    """text or prompts, as for train.kl_to_base."""

    def check(self, where: str = "train.ewc") -> list[str]:
        return (
            _number(f"{where}.weight", self.weight, 0.0)
            + _number(f"{where}.samples", self.samples, 1)
            + choice(f"{where}.source", self.source, GENERAL_ROWS)
        )


@dataclass
class SelfReplayConfig:
    ratio: float = 0.0
    """Share of the training rows that are general requests answered by the base model itself (written once
    per run into RUN/self_replay.jsonl), so no external general corpus is needed."""
    answers: str = "greedy"
    """greedy (the base's most likely answer) or sampled (temperature 0.7, seeded by data.seed)."""
    max_new_tokens: int = 64
    """Longest answer the base writes."""

    def check(self, where: str = "data.self_replay") -> list[str]:
        return (
            _number(f"{where}.ratio", self.ratio, 0.0, 1.0)
            + choice(f"{where}.answers", self.answers, ANSWERS)
            + _number(f"{where}.max_new_tokens", self.max_new_tokens, 1)
        )
