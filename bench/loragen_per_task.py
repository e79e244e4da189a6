"""Per-task LoRAs for more seen tasks of a finished LoRA-Gen study, and a generator's share of them.

    python bench/loragen_per_task.py configs/loragen-pool.yaml train.seed=1 name=loragen-pool-seed1-seen48 \
        loragen.steps=800 loragen.seen_tasks=48 loragen.encoder=pool:minilm loragen.compare_encoders=[] \
        --results docs/results/loragen-pool-seed1-seen48.json --count 16 \
        --out docs/results/loragen-pool-seed1-seen48-per-task.json [--resume]

The study trains per-task LoRAs for `loragen.per_task` only (four tasks), so its "share of the per-task LoRA"
rests on four tasks. This trains one for each of `--count` seen tasks (those of `loragen.per_task` first, then
one source at a time in turn, as the study samples seen tasks), the study's way (`loragen.per_task_steps`, its
batch, into RUN/per-task/TASK; one already trained, the study's own say, is reused, never trained again over
the rows that scored it; `--resume` continues one stopped mid-training), scores each on its own test rows as
the study does, and sets them beside the results file's generator and multi-task LoRA rows on those tasks:
the generator's share of the per-task LoRA (ratio of the means, as the study's summary computes it) and the
paired gaps. The results file must come from the same config and overrides (its seen tasks are checked).

`--out` is written after every task, `"complete": false` until the last. With `--resume` the scores already
in it (same results file and overrides) are kept and only the missing tasks trained and scored, so a count can
grow across sessions whose run folders are gone (copy the smaller count's file to the new `--out` first); a
`--count` that would drop scores the file holds is refused. `bench/loragen_per_task_seeds.py` pools the seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from edgeadapt.core import config
from edgeadapt.core.errors import UserError, unknown
from edgeadapt.loragen.merge import read_adapter
from edgeadapt.studies.loragen import seen_sample, sub_run, train_lora, trained_per_task
from edgeadapt.studies.loragen_eval import Evaluation
from edgeadapt.studies.loragen_summary import beside_per_task, per_task_figures, row_tables


def per_task_scores(cfg, results: dict, count: int, resume: bool, done: dict, save, log=print) -> dict:
    """Each chosen seen task's per-task LoRA score: taken from `done`, or trained where none is and scored
    now; `save(scores, complete)` after each task scored."""
    evaluation = Evaluation(cfg, log)
    if evaluation.group_names()["seen"] != results["groups"]["seen"]:
        raise UserError("the results file scored other seen tasks than this config: give the same overrides")
    chosen = seen_sample(evaluation.groups["seen"], count, cfg.loragen.per_task)[:count]
    dropped = set(done) - {t.name for t in chosen}
    if dropped:  # rewriting the file with fewer tasks would lose scores already paid for
        raise UserError(
            f"the output file holds scores --count {count} would drop ({', '.join(sorted(dropped)[:3])}"
            f"{', ...' if len(dropped) > 3 else ''}): give a larger --count, or another --out"
        )
    scores = {t.name: done[t.name] for t in chosen if t.name in done}
    if scores:
        log(f"{len(scores)} of {len(chosen)} per-task scores kept from the output file")
    for n, task in enumerate(chosen, 1):
        if task.name in scores:
            continue
        log(f"per-task LoRA {n} of {len(chosen)}: {task.name}")
        if trained_per_task(cfg, task.name) is None:
            run = sub_run(cfg, f"per-task/{task.name}")
            steps = cfg.loragen.per_task_steps
            train_lora(cfg, run, evaluation.collection, [task], steps, resume, log)
        tensors, scaling = read_adapter(trained_per_task(cfg, task.name))
        row = evaluation.with_adapter(tensors, scaling, [task], "per-task", timed=False)
        scores[task.name] = row[task.name]["score"]
        save(scores, len(scores) == len(chosen))
    return scores


def kept_scores(out: Path, results: Path, overrides: list[str]) -> tuple[dict[str, float], float]:
    """The per-task scores an earlier run of the same results file and overrides wrote to `out`, and the
    seconds it took."""
    if not out.is_file():
        return {}, 0.0
    earlier = json.loads(out.read_text())
    if not isinstance(earlier, dict):
        raise UserError(f"{out}: not a file this script wrote; give another --out")
    if (earlier.get("results"), earlier.get("overrides")) != (str(results), overrides):
        raise UserError(
            f"{out} holds scores of another results file or overrides ({earlier.get('results')}, "
            f"{earlier.get('overrides')}): give those, or another --out"
        )
    try:
        scores = {name: float(row["per-task"]) for name, row in earlier.get("per_task_scores", {}).items()}
        return scores, float(earlier.get("seconds", 0))
    except (AttributeError, KeyError, TypeError, ValueError):
        raise UserError(f"{out}: not a file this script wrote; give another --out") from None


def shares(results: dict, row: str, per_task: dict[str, float]) -> dict:
    """The row's and the multi-task LoRA's share of the per-task LoRAs and paired gaps to them, in points."""
    scores = beside_per_task(results, row, per_task)
    figures = per_task_figures(scores, row, list(per_task))
    kept = ("generated_share", "multitask_share", "generated_vs_per_task", "multitask_vs_per_task")
    return {
        "tasks": figures["tasks"],
        "per_task_mean": figures["means"]["per-task"],
        **{key: figures[key] for key in kept},
        "per_task_scores": scores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--results", type=Path, required=True, help="the study's loragen.json")
    parser.add_argument("--row", default="generated[pool:minilm]")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    record = {"date": date.today().isoformat(), "results": str(args.results), "overrides": args.overrides}
    try:
        cfg = config.load(args.config, args.overrides)
        record["seed"] = cfg.train.seed  # per-task LoRAs of one seed stand beside that seed's generator
        results = json.loads(args.results.read_text())
        rows = row_tables(results)
        if args.row not in rows:  # a row's label, not a slice of it: any row of the study
            raise unknown(f"row of {args.results}", args.row, rows)
        done, seconds = kept_scores(args.out, args.results, args.overrides) if args.resume else ({}, 0.0)

        def save(scores: dict[str, float], complete: bool) -> dict:  # seconds summed over the runs
            record["seconds"] = round(seconds + time.perf_counter() - start, 1)
            figures = shares(results, args.row, scores)
            args.out.write_text(
                json.dumps({**record, "complete": complete, "row": args.row, **figures}, indent=1)
            )
            return figures

        figures = save(per_task_scores(cfg, results, args.count, args.resume, done, save), True)
    except (OSError, ValueError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    gap = figures["generated_vs_per_task"]

    def share(key: str) -> str:  # None when every per-task LoRA scored 0 (a tiny model)
        return "-" if figures[key] is None else f"{figures[key]:.0%}"

    print(
        f"{figures['tasks']} seen tasks: per-task LoRA {figures['per_task_mean']:.1f}%; {args.row} reaches "
        f"{share('generated_share')} of it ({gap['gap_points']:+.1f} ± {gap['gap_stderr'] or 0:.1f} points), "
        f"the multi-task LoRA {share('multitask_share')}"
    )


if __name__ == "__main__":
    main()
