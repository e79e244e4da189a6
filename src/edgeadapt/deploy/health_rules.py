"""The fixed inputs of a device's health check and the rules its answers are judged by, without torch:
both runtimes share them, and a llama.cpp device judges its child process's report with nothing else."""

from __future__ import annotations

from typing import Any

from edgeadapt.data.format import prompt_ids

HEALTH_PROMPTS = (
    "Say hello in one short sentence.",
    "What is the capital of France?",
    "Name three colours.",
)
HEALTH_TOKENS = 8
HEALTH_TEXT = (
    "The town library opens at nine in the morning and closes at six in the evening. On weekends it keeps "
    "shorter hours, and in the summer it runs a reading club for children. Most people come to borrow novels, "
    "read the newspapers or use the computers, and the staff are glad to help anyone find what they need."
)
DEFAULT_MAX_PPL_RATIO = 2.0
"""The bound a package without `health.max_ppl_ratio` is held to: its perplexity on HEALTH_TEXT at most
twice the base model's."""


def max_ppl_ratio(manifest: dict[str, Any]) -> float:
    return float((manifest.get("health") or {}).get("max_ppl_ratio", DEFAULT_MAX_PPL_RATIO))


def health_ids(tokenizer, prompt: str = HEALTH_PROMPTS[0]) -> list[int]:
    return prompt_ids(tokenizer, [{"role": "user", "content": prompt}])


def degenerate(answer: str) -> bool:
    """Empty, or one character or one word over and over ("XXXXXXXX", "the the the the")."""
    text = answer.strip()
    if not text:
        return True
    chars, words = set(text.replace(" ", "")), text.split()
    return (len(chars) == 1 and len(text) >= 4) or (len(words) >= 4 and len(set(words)) == 1)
