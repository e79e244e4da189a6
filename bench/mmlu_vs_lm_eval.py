"""Do edgeadapt's MMLU scores match lm-evaluation-harness's? Both score the same questions, with the same
prompts, on the same model, and the per-question answers, log-likelihoods and accuracies are compared.

lm-eval runs in its own environment (it pins packages edgeadapt does not need), from a local task YAML over a
JSONL file of the sampled questions whose `context` field is the whole prompt edgeadapt builds (subject
description, the shots from the same subject, the question, "Answer:"), so both read identical text:

    python -m venv /tmp/lmeval && /tmp/lmeval/bin/pip install torch==2.13.0 lm-eval
    python bench/mmlu_vs_lm_eval.py --lm-eval-python /tmp/lmeval/bin/python [--questions 114] [--shots 0 5]

Writes docs/results/mmlu-vs-lm-eval.json. The model is edgeadapt's converted checkpoint (a plain
transformers folder, `edgeadapt models fetch` makes it), loaded by lm-eval's own `hf` model class.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TASK_YAML = """task: edgeadapt_mmlu_{shots}shot
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def edgeadapt_scores(
    model_path: Path, questions: list[dict], shots: int
) -> tuple[list[str], list[list[float]]]:
    """edgeadapt's chosen letters and the log-likelihood of each letter, through its predictor."""
    import torch

    from edgeadapt import models
    from edgeadapt.data.mmlu import LETTERS, context
    from edgeadapt.evaluation.mmlu import encode_pair
    from edgeadapt.inference.predictor import ModelPredictor

    model, tokenizer = models.load(model_path, torch.float32, torch.device("cpu"))
    predictor = ModelPredictor(model, tokenizer)
    rows = [
        encode_pair(tokenizer, context(q, q["shots"][:shots]), f" {letter}")
        for q in questions
        for letter in LETTERS
    ]
    nll = predictor.loglikelihood(rows, 8)
    logliks = [[-nll[i * 4 + k][0] for k in range(4)] for i in range(len(questions))]
    return [LETTERS[max(range(4), key=ll.__getitem__)] for ll in logliks], logliks


def lm_eval_scores(
    python: str, model_path: Path, questions: list[dict], shots: int, tmp: Path
) -> list[list[float]]:
    """lm-eval's log-likelihood of each letter per question, from its logged samples."""
    from edgeadapt.data.mmlu import LETTERS, context

    data = tmp / f"mmlu-{shots}.jsonl"
    with data.open("w") as fh:
        for q in questions:
            fh.write(
                json.dumps(
                    {"context": context(q, q["shots"][:shots]), "answer": LETTERS.index(q["correct_answer"])}
                )
                + "\n"
            )
    tasks = tmp / f"tasks{shots}"
    tasks.mkdir()
    (tasks / "task.yaml").write_text(TASK_YAML.format(shots=shots, data=data))
    out = tmp / f"out{shots}"
    subprocess.run(
        [
            python,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model_path},dtype=float32",
            "--device",
            "cpu",
            "--batch_size",
            "8",
            "--num_fewshot",
            "0",
            "--include_path",
            str(tasks),
            "--tasks",
            f"edgeadapt_mmlu_{shots}shot",
            "--log_samples",
            "--output_path",
            str(out),
        ],
        check=True,
        env={
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
            "TOKENIZERS_PARALLELISM": "false",
        },
    )
    samples = next(out.rglob(f"samples_edgeadapt_mmlu_{shots}shot_*.jsonl"))
    by_doc = {}
    for line in samples.read_text().splitlines():
        sample = json.loads(line)
        by_doc[sample["doc_id"]] = [float(r[0]) for r in sample["filtered_resps"]]
    return [by_doc[i] for i in range(len(questions))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm-eval-python", required=True, help="the python of an environment with lm-eval")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--questions", type=int, default=114)
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "mmlu-vs-lm-eval.json"))
    args = parser.parse_args()

    from edgeadapt import models
    from edgeadapt.data.mmlu import LETTERS, sample

    model_path = models.resolve(args.model)
    questions = sample(args.questions, [], seed=0)
    results = {"model": args.model, "questions": len(questions), "shots": {}}
    with tempfile.TemporaryDirectory(prefix="edgeadapt-lmeval-") as tmp:
        for shots in args.shots:
            ours, our_ll = edgeadapt_scores(model_path, questions, shots)
            theirs_ll = lm_eval_scores(args.lm_eval_python, model_path, questions, shots, Path(tmp))
            theirs = [LETTERS[max(range(4), key=ll.__getitem__)] for ll in theirs_ll]
            gold = [q["correct_answer"] for q in questions]
            diff = max(abs(a - b) for x, y in zip(our_ll, theirs_ll) for a, b in zip(x, y))
            results["shots"][str(shots)] = {
                "edgeadapt_acc": sum(a == g for a, g in zip(ours, gold)) / len(gold),
                "lm_eval_acc": sum(a == g for a, g in zip(theirs, gold)) / len(gold),
                "same_answer": sum(a == b for a, b in zip(ours, theirs)) / len(gold),
                "max_loglik_difference": diff,
                "first_question_logliks": {"edgeadapt": our_ll[0], "lm_eval": theirs_ll[0]},
            }
            print(f"{shots}-shot: " + ", ".join(f"{k} {v}" for k, v in results["shots"][str(shots)].items()))
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
