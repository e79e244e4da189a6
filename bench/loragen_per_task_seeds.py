"""The generator's share of the per-task LoRAs, pooled over seeds and by task family.

    python bench/loragen_per_task_seeds.py docs/results/loragen-pool-seed{0,1}-seen48-per-task48.json \
        --out docs/results/loragen-pool-seeds-per-task48.json

Each file holds one seed's scores per task (the per-task LoRA, the generator's row, the multi-task LoRA);
pooled, a task's score is its mean over the seeds, as bench/loragen_seeds.py pools the study's rows. Shares
are ratios of means (the study's way); gaps are paired over tasks, in points, with their standard error.
Families are the tasks' sources in the study's results file (`task_info`): the list functions, where only the
description says what to do, apart from the rest.

`--against` sets the same per-task LoRAs beside another study's generator and multi-task LoRA, one results
file per per-task file (same seed, in the same order), e.g. the generator trained for more steps:

    python bench/loragen_per_task_seeds.py docs/results/loragen-pool-seed1-seen48-per-task48.json \
        --against docs/results/loragen-pool-seed1-seen48-steps1600-bf16.json \
        --out docs/results/loragen-pool-seed1-seen48-steps1600-bf16-per-task48.json

The results file must score every one of those tasks as seen tasks, with the per-task files' generator row
(or the row `--row` names, another generator of that file: `--row "generated[pool:minilm-tokens]"`), and train
on their seed where both record one (files written from 2026-12-06 on).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeadapt.studies.loragen_summary import (
    beside_per_task,
    budgets,
    generator_of,
    per_task_figures,
    row_tables,
    task_families,
)


def read(
    paths: list[Path], against: list[Path] | None = None, against_row: str | None = None
) -> tuple[str, list[dict[str, dict[str, float]]], dict[str, str]]:
    """The generator's row, each file's scores per task and each task's source; files must be complete and
    score the same tasks with the same row. With `against` (one results file per file) the generator's and
    the multi-task LoRA's scores are those results' instead, from their row `against_row` where given."""
    files = [json.loads(p.read_text()) for p in paths]
    for path, f in zip(paths, files):
        if not f.get("complete", True):
            raise ValueError(f"{path} is not complete: finish it with bench/loragen_per_task.py --resume")
    rows, tasks = {f["row"] for f in files}, {frozenset(f["per_task_scores"]) for f in files}
    if len(rows) > 1 or len(tasks) > 1:
        raise ValueError("the files score different tasks or generator rows: give one seed's file each")
    row, scores = rows.pop(), [f["per_task_scores"] for f in files]
    if against_row and against is None:
        raise ValueError("--row names a row of the --against files: give them")
    row = against_row or row
    if against is None:
        info = json.loads(Path(files[0]["results"]).read_text())["task_info"]
    else:
        if len(against) != len(paths):
            raise ValueError(f"--against gives {len(against)} results files for {len(paths)} per-task files")
        studies = [json.loads(p.read_text()) for p in against]
        seeds = [f.get("seed") for f in files]
        scores = [rows_from(st, p, row, s, n) for st, p, s, n in zip(studies, against, scores, seeds)]
        info = studies[0]["task_info"]
    sources = {name: info[name]["source"] for name in files[0]["per_task_scores"]}
    return row, scores, sources


def rows_from(
    results: dict, path: Path, row: str, scores: dict[str, dict[str, float]], seed: int | None = None
) -> dict[str, dict[str, float]]:
    """`scores`' per-task LoRA (trained on `seed`) beside the generator's and the multi-task LoRA's scores in
    the study `results` (read from `path`). A seed is checked where both files record it (from 2026-12-06)."""
    if not isinstance(results, dict) or not {"groups", "prompting", "generated", "lora"} <= set(results):
        raise ValueError(
            f"{path} is not a LoRA-Gen study's loragen.json (no groups, prompting, generated or lora)"
        )
    missing = set(scores) - set(results["groups"]["seen"])
    if missing:
        raise ValueError(f"{path} does not score {', '.join(sorted(missing)[:3])} as seen tasks")
    if row not in row_tables(results):
        raise ValueError(f"{path} has no {row} row; give the study that trained that generator")
    if spec := generator_of(row):
        same_seed(results, path, row, spec, seed)
    return beside_per_task(results, row, {n: s["per-task"] for n, s in scores.items()})


def same_seed(results: dict, path: Path, row: str, spec: str, seed: int | None) -> None:
    """Refuses a study whose generator or multi-task LoRA trained on another seed than the per-task LoRAs
    (`seed`), where both record theirs (budgets from 2026-12-06)."""
    for label, budget in zip((row, "multitask"), budgets(results, spec)):
        trained = (budget or {}).get("seed")
        if None not in (seed, trained) and trained != seed:
            raise ValueError(
                f"{path}'s {label} trained on seed {trained}, the per-task LoRAs on seed {seed}: "
                "give that seed's per-task file"
            )


def families(scores: dict[str, dict[str, float]], row: str, sources: dict[str, str]) -> dict:
    groups = task_families({name: sources[name] for name in scores})
    return {label: per_task_figures(scores, row, group) for label, group in groups.items()}


def pooled(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {k: sum(s[name][k] for s in per_seed) / len(per_seed) for k in per_seed[0][name]}
        for name in per_seed[0]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="bench/loragen_per_task.py's files, one per seed")
    parser.add_argument(
        "--against",
        nargs="+",
        type=Path,
        help="studies' loragen.json whose generator and multi-task rows to "
        "set beside the per-task LoRAs, one per file",
    )
    parser.add_argument("--row", help="the --against files' generator row (default: the per-task files')")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        row, per_seed, sources = read(args.files, args.against, args.row)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = {
        "files": [str(p) for p in args.files],
        "against": [str(p) for p in args.against or []],
        "row": row,
        "seeds": [families(s, row, sources) for s in per_seed],
        "pooled": families(pooled(per_seed), row, sources),
    }
    args.out.write_text(json.dumps(report, indent=1))
    for label, f in report["pooled"].items():
        seeds = f"{len(per_seed)} seeds pooled" if len(per_seed) > 1 else "one seed"
        print(f"{label} ({f['tasks']} tasks, {seeds}): {line(f, row)}")
    return 0


def line(f: dict, row: str) -> str:
    def share(key: str) -> str:  # None when every per-task LoRA scored 0 (a tiny model)
        return "-" if f[key] is None else f"{f[key]:.0%}"

    def gap(key: str) -> str:
        return f"{f[key]['gap_points']:+.1f} ± {f[key]['gap_stderr'] or 0:.1f}"

    means = f["means"]
    return (
        f"per-task LoRA {means['per-task']:.1f}%, {row} {means[row]:.1f}% ({share('generated_share')}; "
        f"{gap('generated_vs_per_task')}), multi-task {means['multitask']:.1f}% "
        f"({share('multitask_share')}); {row} vs multi-task {gap('generated_vs_multitask')}"
    )


if __name__ == "__main__":
    sys.exit(main())
