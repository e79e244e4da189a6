"""Generated adapters on llama.cpp, as a device would serve them: every adapter a trained generator makes for
the study's seen tasks (from their never-trained paraphrase) and held-out tasks (from their description),
exported as GGUF LoRAs and loaded at once at scale 0 on the f16 base GGUF; each task's rows asked with its
adapter at scale 1 (no description in the prompt) and with the description in the prompt on the base (every
scale 0: the in-context route). Scores through the same scorer as `loragen eval` (a llama.cpp predictor), so
they sit beside the transformers figures in RUN/loragen.json; latency per request, one at a time, as llama.cpp
timed it (prompt processing and generation), and the speed-up at equal answer length as the study computes it.

    python bench/loragen_llamacpp.py configs/loragen-pool.yaml --encoder pool:minilm [--threads 2]

Needs the config's trained generator (`edgeadapt loragen train CONFIG`) and, for the transformers column, its
evaluation (`edgeadapt loragen eval CONFIG`). Writes docs/results/loragen-llamacpp.json. Time it on an idle
machine: 18 minutes for the 16 seen and 11 held-out tasks of configs/loragen-pool.yaml on two cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_adapters(ev, spec: str, tasks: list, folder: Path) -> tuple[list[Path], dict[str, str]]:
    """One GGUF LoRA per task, from the description the study generates it from."""
    from edgeadapt.deploy.adapter_folders import export_gguf
    from edgeadapt.loragen.make import Generator
    from edgeadapt.studies.loragen import asked_texts, generator_dir

    generator = Generator.open(generator_dir(ev.cfg, spec), ev.cfg.base_dir)
    k, seen = ev.cfg.loragen.train_paraphrases, {t.name for t in ev.groups["seen"]}
    paths, texts = [], {}
    for task in tasks:
        text = asked_texts(task, "seen" if task.name in seen else "heldout", k)[0]
        generator.make(text, folder / task.name, log=lambda line: None)
        export_gguf(folder / task.name, folder / f"{task.name}.gguf", "f32", adapter=True)
        paths.append(folder / f"{task.name}.gguf")
        texts[task.name] = text
    return paths, texts


def timed(llama, tokenizer, rows: list[dict], how, scales: list[float], tokens: int) -> dict[str, float]:
    """Median prompt-processing and total milliseconds of single requests, and the mean new tokens."""
    from edgeadapt.evaluation.task_scores import prompt_for, user_ids

    runs = []
    for row in rows:
        started = time.perf_counter()
        ids = user_ids(tokenizer, prompt_for(row, how))
        # cold: no prefix kept from the request before, as the study's transformers timing has none
        timings = llama.complete(ids, tokens, scales, cache_prompt=False)["timings"]
        runs.append((timings["prompt_ms"], 1000 * (time.perf_counter() - started), timings["predicted_n"]))
    return {
        "prefill_ms": statistics.median(r[0] for r in runs),
        "total_ms": statistics.median(r[1] for r in runs),
        "new_tokens": statistics.mean(r[2] for r in runs),
    }


def measure(ev, llama, tasks: list, index: dict[str, int]) -> dict[str, dict]:
    from edgeadapt.evaluation.task_scores import Prompting, score_rows

    e, count = ev.cfg.eval, ev.cfg.loragen.latency_requests
    out: dict[str, dict] = {"generated": {}, "in-context": {}}
    for task in tasks:
        one = [1.0 if i == index[task.name] else 0.0 for i in range(len(index))]
        routes = {
            "generated": (Prompting("none"), one),
            "in-context": (Prompting("description", task.description), [0.0] * len(index)),
        }
        for label, (how, scales) in routes.items():
            predictor = llama.predictor(ev.tokenizer, scales, label)
            rows = ev.rows[task.name]
            scored = score_rows(
                predictor, task.kind, rows, how, ev.cfg.data.max_length * 2, e.max_new_tokens, 1, task.name
            )
            result = {"score": scored["score"], "prompt_tokens": scored["prompt_tokens"]}
            result.update(timed(llama, ev.tokenizer, rows[:count], how, scales, e.max_new_tokens))
            out[label][task.name] = result
        print(
            f"{task.name}: generated {out['generated'][task.name]['score']:.1%}, in-context "
            f"{out['in-context'][task.name]['score']:.1%}",
            flush=True,
        )
    return out


def transformers_scores(run_dir: Path, spec: str) -> dict[str, dict]:
    """The same rows' scores from the study's own evaluation (RUN/loragen.json), where it has run."""
    path = run_dir / "loragen.json"
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    return {
        "generated": {n: r["score"] for n, r in saved["generated"].get(spec, {}).get("tasks", {}).items()},
        "in-context": {n: r["score"] for n, r in saved["prompting"].get("in-context", {}).items()},
    }


def summary(measured: dict, names: dict[str, list[str]], reference: dict) -> dict:
    from edgeadapt.studies.loragen_summary import equal_length_ceiling, equal_length_speedup

    out = {}
    for group, tasks in names.items():
        row = {}
        for label in ("generated", "in-context"):
            got = [measured[label][n] for n in tasks]
            row[label] = {
                "score": statistics.mean(r["score"] for r in got),
                "transformers_score": (
                    statistics.mean(reference[label][n] for n in tasks)
                    if reference and all(n in reference[label] for n in tasks)
                    else None
                ),
                "prompt_tokens": statistics.mean(r["prompt_tokens"] for r in got),
                "prefill_ms": statistics.mean(r["prefill_ms"] for r in got),
                "total_ms": statistics.mean(r["total_ms"] for r in got),
                "new_tokens": statistics.mean(r["new_tokens"] for r in got),
            }
        row["speedup_total"] = row["in-context"]["total_ms"] / row["generated"]["total_ms"]
        row["speedup_equal_length"] = equal_length_speedup(
            measured["in-context"], measured["generated"], tasks
        )
        row["ceiling_equal_length"] = equal_length_ceiling(
            measured["in-context"], measured["generated"], tasks
        )
        out[group] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "loragen-pool.yaml"))
    parser.add_argument("--encoder", default="pool:minilm", help="which trained generator (KIND:ENCODER)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "loragen-llamacpp.json"))
    args = parser.parse_args()

    import torch

    from edgeadapt.core import config
    from edgeadapt.deploy.gguf import source_pre_tokenizer, write
    from edgeadapt.deploy.llamacpp import LlamaCpp
    from edgeadapt.studies.loragen import asked_texts
    from edgeadapt.studies.loragen_eval import Evaluation

    torch.set_num_threads(args.threads)
    cfg = config.load(args.config)
    ev = Evaluation(cfg)
    names = {g: [t.name for t in ev.groups[g]] for g in ("seen", "heldout")}
    k = cfg.loragen.train_paraphrases  # a seen task is asked from a paraphrase it never trained on
    names["seen"] = [t.name for t in ev.groups["seen"] if asked_texts(t, "seen", k)]
    tasks = [t for g in ("seen", "heldout") for t in ev.groups[g] if t.name in names[g]]
    with tempfile.TemporaryDirectory(prefix="edgeadapt-loragen-gguf-") as tmp:
        base = write(
            ev.model,
            ev.tokenizer,
            Path(tmp) / "base.gguf",
            "f16",
            cfg.model.name,
            source_pre_tokenizer(cfg.model.name),
        )
        adapters, texts = make_adapters(ev, args.encoder, tasks, Path(tmp))
        adapter_bytes = statistics.mean(p.stat().st_size for p in adapters)
        with LlamaCpp(base, adapters, args.threads, n_ctx=2048) as llama:
            measured = measure(ev, llama, tasks, {t.name: i for i, t in enumerate(tasks)})
    report = {
        "date": str(datetime.now(timezone.utc).date()),
        "config": args.config,
        "encoder": args.encoder,
        "threads": args.threads,
        "base": "f16 GGUF",
        "adapters_loaded": len(adapters),
        "adapter_gguf_bytes": adapter_bytes,
        "rows_per_task": cfg.loragen.eval_rows,
        "latency_requests": cfg.loragen.latency_requests,
        "summary": summary(measured, names, transformers_scores(ev.run.dir, args.encoder)),
        "tasks": measured,
        "descriptions": texts,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for group, row in report["summary"].items():
        g, c = row["generated"], row["in-context"]
        print(
            f"{group}: generated {g['score']:.1%} (transformers {g['transformers_score']}), in-context "
            f"{c['score']:.1%}; prefill {g['prefill_ms']:.0f} vs {c['prefill_ms']:.0f} ms, total "
            f"{g['total_ms']:.0f} vs {c['total_ms']:.0f} ms: {row['speedup_total']:.2f}x, "
            f"{row['speedup_equal_length']:.2f}x at equal length (at most {row['ceiling_equal_length']:.2f}x "
            "at any length)"
        )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
