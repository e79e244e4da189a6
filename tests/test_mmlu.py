"""MMLU as lm-evaluation-harness scores it: prompt and answer encoding, the argmax over answers, the
stratified sample and its few-shot examples, the interval, and the automatic exclusion of the subjects a
domain is made from. Synthetic questions stand in for the downloaded test set."""

from __future__ import annotations

import json

import pytest

from edgeadapt.cli import main
from edgeadapt.data import mmlu as data_mmlu
from edgeadapt.evaluation import mmlu
from edgeadapt.models import tiny_tokenizer

SUBJECTS = ["abstract algebra", "anatomy", "high school psychology", "virology"]


def fake_rows(per_subject: int = 12) -> list[dict]:
    rows = []
    for s, subject in enumerate(SUBJECTS):
        for i in range(per_subject):
            rows.append(
                {
                    "question": f"{subject} question {i}?",
                    "answer_a": "one",
                    "answer_b": "two",
                    "answer_c": "three",
                    "answer_d": "four",
                    "correct_answer": "ABCD"[(s + i) % 4],
                    "topic": subject,
                }
            )
    return rows


@pytest.fixture(autouse=True)
def synthetic_mmlu(monkeypatch):
    monkeypatch.setattr(data_mmlu, "mmlu_rows", fake_rows)


def test_the_prompt_is_the_harness_template_and_the_answer_is_split_where_the_prompt_ends():
    row = fake_rows()[0]
    text = data_mmlu.context(row, [])
    assert text == (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "abstract algebra question 0?\nA. one\nB. two\nC. three\nD. four\nAnswer:"
    )
    tokenizer = tiny_tokenizer()
    pair = mmlu.encode_pair(tokenizer, text, " C")
    assert pair["input_ids"] == tokenizer(text + " C", add_special_tokens=False)["input_ids"]
    scored = [t for t, label in zip(pair["input_ids"], pair["labels"]) if label != -100]
    assert tokenizer.decode(scored) == " C"


class Prefers:
    """A predictor whose log-likelihood favours one answer letter: its choice must be that letter."""

    def __init__(self, letter: str):
        self.tokenizer, self.letter = tiny_tokenizer(), letter

    def loglikelihood(self, rows, batch_size, desc=""):
        out = []
        for row in rows:
            answer = self.tokenizer.decode(
                [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
            ).strip()
            out.append((0.5 if answer == self.letter else 2.0, 1))
        return out


def test_the_answer_with_the_highest_likelihood_is_chosen_and_scored():
    questions = data_mmlu.sample(8, [], seed=1)
    scores = mmlu.mmlu_scores(Prefers("C"), questions, [0, 5], 4, [])
    right = sum(q["correct_answer"] == "C" for q in questions)
    assert scores["shots"]["0"]["correct"] == scores["shots"]["5"]["correct"] == right
    assert scores["shots"]["0"]["acc"] == right / 8 and scores["chance"] == 0.25


def test_the_sample_is_stratified_and_its_shots_come_from_the_same_subject_outside_it():
    questions = data_mmlu.sample(7, ["virology"], seed=0)
    subjects = [q["topic"] for q in questions]
    assert "virology" not in subjects and sorted(set(subjects)) == sorted(SUBJECTS[:3])
    assert max(subjects.count(s) for s in set(subjects)) - min(subjects.count(s) for s in set(subjects)) <= 1
    asked = {q["question"] for q in questions}
    for q in questions:
        assert len(q["shots"]) == 5 and all(
            s["topic"] == q["topic"] and s["question"] not in asked for s in q["shots"]
        )
    assert data_mmlu.sample(7, ["virology"], seed=0) == questions  # deterministic for a seed


def test_wilson_interval_by_hand():
    low, high = mmlu.wilson(25, 100)
    assert low == pytest.approx(0.1754, abs=1e-3) and high == pytest.approx(0.3430, abs=1e-3)
    assert mmlu.wilson(0, 0) == [0.0, 1.0]


def test_subjects_a_domain_is_made_from_are_left_out_of_the_general_score(tmp_path):
    """A domain folder whose meta.json names MMLU subjects (as the psychology pack's does): the run's MMLU
    sample leaves them out, and results.json and the report say so."""
    from pathlib import Path

    smoke = Path(__file__).parents[1] / "configs" / "smoke.yaml"
    domain = tmp_path / "psy"
    domain.mkdir()
    for split in ("train", "val", "test"):
        (domain / f"{split}.jsonl").write_text('{"prompt": "q?", "response": "A"}\n' * 4)
    (domain / "meta.json").write_text(json.dumps({"mmlu_subjects": ["high school psychology"]}))
    args = [
        "compare",
        str(smoke),
        f"out_dir={tmp_path}",
        f"data.domain={domain}",
        "methods={lora: {lr: 1.0e-3}}",
    ]
    assert (
        main(args + ["train.steps=2", "eval.mmlu=6", "eval.mmlu_shots=[0]", "eval.mmlu_exclude=[virology]"])
        == 0
    )
    results = json.loads((tmp_path / "smoke" / "results.json").read_text())
    for m in (results["base"], results["methods"]["lora"]):
        assert m["mmlu"]["excluded_subjects"] == ["high school psychology", "virology"]
        assert m["mmlu"]["n"] == 6 and 0 <= m["mmlu"]["shots"]["0"]["acc"] <= 1
    assert (
        "left out, as the domain is made from them: high school psychology, virology"
        in (tmp_path / "smoke" / "report.md").read_text()
    )


def test_choices_after_one_context_share_a_forward_pass_and_score_as_alone(tiny_model, tokenizer):
    from edgeadapt.inference.perplexity import one_token_groups, row_nll

    contexts = [[3, 4, 5, 6], [7, 8, 9], [3, 4, 5, 6, 7, 8, 9, 10]]
    rows = [
        {"input_ids": c + [20 + k], "labels": [-100] * len(c) + [20 + k]} for c in contexts for k in range(4)
    ]
    rows.append({"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]})  # two scored tokens: on its own
    rows.append({"input_ids": [7, 8, 9, 30], "labels": [-100, -100, -100, 30]})  # joins the second group
    groups = one_token_groups(rows)
    assert groups == {0: [1, 2, 3], 4: [5, 6, 7, 13], 8: [9, 10, 11]}
    together = row_nll(tiny_model, tokenizer, rows, 4)
    alone = [row_nll(tiny_model, tokenizer, [row], 1)[0] for row in rows]
    assert [n for _, n in together] == [n for _, n in alone]
    assert [s for s, _ in together] == pytest.approx([s for s, _ in alone], abs=1e-4)
    assert len({s for s, _ in together[:4]}) == 4  # four different answers, four different scores
