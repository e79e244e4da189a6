"""Is a built-in model above chance on MMLU? Scores it as `eval.mmlu` does (lm-evaluation-harness's prompt and
`acc`: the letter with the highest log-likelihood), with the 95% interval, and counts which letter it picks,
since a model near chance often picks one letter for nearly every question.

    python bench/mmlu_chance.py --model qwen2.5-coder-0.5b-instruct --questions 228 --shots 0
    python bench/mmlu_chance.py --model qwen2.5-coder-0.5b-instruct --questions 114 --shots 5

Adds the model's entry to docs/results/mmlu-chance.json (one entry per model and shot count, replaced when
measured again). A study of forgetting can read MMLU only on a model whose interval lies above 25%.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, count: int, shots: int, threads: int) -> dict:
    import torch

    from edgeadapt import models
    from edgeadapt.data.mmlu import sample
    from edgeadapt.evaluation.mmlu import CHANCE, predictions, wilson
    from edgeadapt.inference.predictor import ModelPredictor

    torch.set_num_threads(threads)
    model, tokenizer = models.load(models.resolve(name), torch.float32, torch.device("cpu"))
    questions = sample(count, [], seed=0)
    started = time.perf_counter()
    chosen = predictions(ModelPredictor(model, tokenizer), questions, shots, 4)
    right = sum(c == q["correct_answer"] for c, q in zip(chosen, questions))
    low, high = wilson(right, len(questions))
    return {
        "model": name,
        "shots": shots,
        "questions": len(questions),
        "acc": right / len(questions),
        "ci95": [low, high],
        "above_chance": low > CHANCE,
        "letters_chosen": dict(sorted(Counter(chosen).items())),
        "letters_right": dict(sorted(Counter(q["correct_answer"] for q in questions).items())),
        "seconds": round(time.perf_counter() - started, 1),
        "threads": threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument(
        "--questions", type=int, default=114, help="a multiple of 57 samples every subject alike"
    )
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "mmlu-chance.json"))
    args = parser.parse_args()
    entry = measure(args.model, args.questions, args.shots, args.threads)
    out = Path(args.out)
    entries = json.loads(out.read_text()) if out.is_file() else []
    entries = [e for e in entries if (e["model"], e["shots"]) != (args.model, args.shots)] + [entry]
    out.write_text(json.dumps(entries, indent=2) + "\n")
    low, high = entry["ci95"]
    print(
        f"{args.model}, {args.shots}-shot, {entry['questions']} questions: {entry['acc']:.1%} "
        f"(95% {low:.1%}-{high:.1%}; chance 25%), letters chosen {entry['letters_chosen']}; "
        f"{entry['seconds']} s; written: {out}"
    )


if __name__ == "__main__":
    main()
