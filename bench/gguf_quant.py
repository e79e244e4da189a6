"""What a quantized GGUF costs, measured in llama.cpp itself: for the base model and each adapter of a finished
run, the merged model exported as f16, q8_0 and q4_0, loaded in llama.cpp (xllamacpp, greedy), asked the
run's domain test questions and the 50 general facts. Per file: its size, domain accuracy, fact recall,
the share of answers identical to the f16 file's, and llama.cpp's tokens/s.

Run: `python bench/gguf_quant.py runs/demo [--methods base,lora] [--questions 32]`; writes
docs/results/gguf-quant.json. Run it alone on the machine: the tokens/s are timings.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("f16", "q8_0", "q4_0")


def answers(llama, tokenizer, prompts: list[list[int]], max_tokens: int) -> list[str]:
    return [tokenizer.decode(llama.greedy_ids(p, max_tokens), skip_special_tokens=True) for p in prompts]


def measure(run_dir: str, variant: str, dtype: str, sets, tokenizer, folder: Path, threads: int) -> dict:
    from edgeadapt.deploy.gguf import export_run
    from edgeadapt.deploy.llamacpp import LlamaCpp
    from edgeadapt.evaluation.metrics import contains_answer, exact_match

    path = folder / f"{variant}-{dtype}.gguf"
    export_run(run_dir, variant, path, dtype)
    with LlamaCpp(path, threads=threads) as llama:
        domain = answers(llama, tokenizer, sets["domain_prompts"], 24)
        facts = answers(llama, tokenizer, sets["fact_prompts"], 16)
        llama.tokens_per_second(sets["domain_prompts"][0], 4)  # warm-up
        speed = llama.tokens_per_second(sets["domain_prompts"][0], 32)
    return {
        "bytes": path.stat().st_size,
        "domain_accuracy": sum(map(exact_match, domain, sets["references"])) / len(domain),
        "fact_recall": sum(map(contains_answer, facts, sets["fact_answers"])) / len(facts),
        "answers": domain + facts,
        "tokens_per_s": speed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--methods", default="base,lora")
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "gguf-quant.json"))
    args = parser.parse_args()

    from edgeadapt.data.format import prompt_ids, reference, split_row
    from edgeadapt.evaluation.sets import user_prompt
    from edgeadapt.runs.run import reopen

    run, _ = reopen(args.run_dir, [], "export")
    tokenizer, data = run.tokenizer, run.data
    rows = data.test[: args.questions]
    sets = {
        "domain_prompts": [prompt_ids(tokenizer, split_row(r)[0]) for r in rows],
        "references": [reference(r) for r in rows],
        "fact_prompts": [user_prompt(tokenizer, r["prompt"]) for r in data.facts],
        "fact_answers": [r["response"] for r in data.facts],
    }
    results = {
        "run": args.run_dir,
        "questions": len(rows),
        "facts": len(data.facts),
        "threads": args.threads,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="edgeadapt-gguf-") as tmp:
        for variant in args.methods.split(","):
            per = {
                dtype: measure(args.run_dir, variant, dtype, sets, tokenizer, Path(tmp), args.threads)
                for dtype in DTYPES
            }
            reference_answers = per["f16"]["answers"]
            for dtype, m in per.items():
                m["same_answers_as_f16"] = sum(
                    a == b for a, b in zip(m.pop("answers"), reference_answers)
                ) / len(reference_answers)
                print(
                    f"{variant:6} {dtype:5} {m['bytes'] / 1e6:7.1f} MB  domain {m['domain_accuracy']:.1%}  facts "
                    f"{m['fact_recall']:.1%}  same as f16 {m['same_answers_as_f16']:.1%}  {m['tokens_per_s']:.1f} tok/s"
                )
            results["models"][variant] = per
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
