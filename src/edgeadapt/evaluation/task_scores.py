"""Scoring a model on the tasks of a collection, through a predictor, with or without the task's description
in the prompt.

- `exact` tasks: the greedy answer, normalized (`metrics.normalize`), must equal one of the accepted answers;
- `choice` tasks: each option is scored as the answer to the prompt (summed log-likelihood of its tokens, as
  lm-evaluation-harness's `acc`); the most likely option must be the right one. Test rows are balanced
  across options, so chance is 1 / options.

How the task is conveyed (`Prompting`): `title` (a short task name before the input: zero-shot), `description`
(the description, then the input: in-context), `shots` (the description, worked examples, then the input:
few-shot), `none` (the input alone: the generated, multi-task and per-task adapters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeadapt.data.format import encode, prompt_ids
from edgeadapt.evaluation.metrics import exact_match
from edgeadapt.inference.predictor import Predictor

STYLES = ("none", "title", "description", "shots")


@dataclass
class Prompting:
    style: str = "none"
    text: str = ""
    """The title or description shown (styles title, description, shots)."""
    shots: tuple[dict, ...] = ()


def prompt_for(row: dict, how: Prompting) -> str:
    """The user message a model gets for a row."""
    if how.style == "none":
        return row["prompt"]
    if how.style == "title":
        return f"{how.text}: {row['prompt']}"
    parts = [how.text]
    if how.style == "shots":
        parts += [f"Input: {s['prompt']}\nOutput: {s['response']}" for s in how.shots]
        parts.append(f"Input: {row['prompt']}\nOutput:")
    else:
        parts.append(row["prompt"])
    return "\n\n".join(parts)


def user_ids(tokenizer, text: str) -> list[int]:
    return prompt_ids(tokenizer, [{"role": "user", "content": text}])


def correct_exact(answer: str, row: dict) -> bool:
    return any(exact_match(answer, accepted) for accepted in row.get("answers") or [row["response"]])


def score_rows(
    predictor: Predictor,
    kind: str,
    rows: list[dict],
    how: Prompting,
    max_length: int,
    max_new_tokens: int,
    batch_size: int,
    desc: str = "tasks",
) -> dict[str, Any]:
    """The share of rows right, and each row's answer (exact) or chosen option (choice)."""
    tokenizer = predictor.tokenizer
    texts = [prompt_for(r, how) for r in rows]
    if kind == "choice":
        pairs = [
            encode(tokenizer, {"prompt": t, "response": option}, max_length)
            for t, r in zip(texts, rows)
            for option in r["choices"]
        ]
        nll = predictor.loglikelihood(pairs, batch_size, desc)
        answers, start = [], 0
        for r in rows:
            scores = [nll[start + k][0] for k in range(len(r["choices"]))]
            answers.append(r["choices"][min(range(len(scores)), key=scores.__getitem__)])
            start += len(r["choices"])
        right = [a == r["response"] for a, r in zip(answers, rows)]
    else:
        answers = predictor.generate(
            [user_ids(tokenizer, t) for t in texts], max_new_tokens, batch_size, desc
        )
        right = [correct_exact(a, r) for a, r in zip(answers, rows)]
    return {
        "score": sum(right) / len(rows),
        "answers": answers,
        "prompt_tokens": prompt_tokens(tokenizer, texts),
    }


def prompt_tokens(tokenizer, texts: list[str]) -> float:
    """Mean prompt length in tokens (chat template included): what a device prefills per request."""
    return sum(len(user_ids(tokenizer, t)) for t in texts) / len(texts)
