"""MMLU scored the way lm-evaluation-harness scores it: for each question, the log-likelihood of each answer
(" A", " B", " C", " D" after "Answer:") given the prompt, through the predictor; the answer with the highest
is the model's; `acc` is the share right. The context and the continuation are tokenized together and split
where the context ends (the harness's `_encode_pair`). Beside the accuracy: the chance level (25%) and a 95%
Wilson interval, since a few hundred questions near chance say little.
"""

from __future__ import annotations

import math
from typing import Any

from edgeadapt.data.format import IGNORE_INDEX
from edgeadapt.data.mmlu import LETTERS, context
from edgeadapt.inference.predictor import Predictor

CHANCE = 0.25


def encode_pair(tokenizer, prompt: str, continuation: str) -> dict[str, list[int]]:
    whole = tokenizer(prompt + continuation, add_special_tokens=False)["input_ids"]
    head = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return {"input_ids": whole, "labels": [IGNORE_INDEX] * head + whole[head:]}


def wilson(correct: int, n: int, z: float = 1.96) -> list[float]:
    """The 95% Wilson score interval of a proportion."""
    if n == 0:
        return [0.0, 1.0]
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


def predictions(predictor: Predictor, questions: list[dict], shots: int, batch_size: int) -> list[str]:
    """The letter each question's highest log-likelihood answer has."""
    rows = [
        encode_pair(predictor.tokenizer, context(q, q["shots"][:shots]), f" {letter}")
        for q in questions
        for letter in LETTERS
    ]
    scores = predictor.loglikelihood(rows, batch_size, f"MMLU {shots}-shot")
    chosen = []
    for index in range(len(questions)):
        nll = [scores[index * 4 + k][0] for k in range(4)]
        chosen.append(LETTERS[min(range(4), key=nll.__getitem__)])
    return chosen


def mmlu_scores(
    predictor: Predictor, questions: list[dict], shots: list[int], batch_size: int, excluded: list[str]
) -> dict[str, Any]:
    """acc with its interval per number of shots, the chance level, and which subjects were left out."""
    out: dict[str, Any] = {"chance": CHANCE, "n": len(questions), "excluded_subjects": excluded, "shots": {}}
    for k in shots:
        chosen = predictions(predictor, questions, k, batch_size)
        right = sum(c == q["correct_answer"] for c, q in zip(chosen, questions))
        out["shots"][str(k)] = {
            "acc": right / len(questions),
            "ci95": wilson(right, len(questions)),
            "correct": right,
        }
    return out
