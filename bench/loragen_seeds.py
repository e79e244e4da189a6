"""The LoRA-Gen study's seeds pooled: the loragen.json of runs of one config that differ only in
`train.seed` (each under its own `name=`), averaged task by task and summarized as one run is, beside each
seed's own headline figures and their spread (`edgeadapt.studies.loragen_seeds`).

    edgeadapt loragen train configs/loragen-pool.yaml train.seed=1 name=loragen-pool-seed1 [--resume]
    edgeadapt loragen eval configs/loragen-pool.yaml train.seed=1 name=loragen-pool-seed1 [--resume]
    python bench/loragen_seeds.py docs/results/loragen-pool.json runs/loragen-pool-seed1/loragen.json \
        --out docs/results/loragen-pool-seeds.json

Reads JSON only (seconds).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path


def figure(spread: dict, scale: float = 1.0) -> str:
    """Each seed's value, then mean ± s.d."""
    seeds = " / ".join("-" if v is None else f"{scale * v:.1f}" for v in spread["per_seed"])
    if spread["mean"] is None:
        return seeds
    return f"{seeds} (mean {scale * spread['mean']:.1f} ± {scale * (spread['sd'] or 0):.1f} s.d.)"


def print_tables(pooled: dict) -> None:
    from edgeadapt.reports.loragen import pct

    between, summary = pooled["between_seeds"], pooled["summary"]
    for group, rows in between["score"].items():
        print(f"\n{group}: score % per seed (mean ± s.d. between seeds)")
        for label, spread in rows.items():
            print(f"  {label:34} {figure(spread, 100)}")
    for spec, goals in summary["goals"].items():
        vs = goals["seen_vs_multitask"]
        seen = summary["controls"][spec]["seen"]
        print(f"\n{spec}, pooled over seeds (paired over {vs['tasks']} seen tasks, seed-mean scores):")
        print(
            f"  vs multi-task LoRA: {vs['gap_points']:.1f} ± {vs['gap_stderr']:.1f} points, won/lost {vs['wins_losses']}"
        )
        for kind in ("random", "other", "shuffled"):
            print(
                f"  right - {kind}: {seen[f'{kind}_gap_points']:.1f} ± {seen[f'{kind}_gap_stderr']:.1f} points, "
                f"won/lost {seen[f'{kind}_wins_losses']}"
            )
        print(
            f"  share of per-task LoRA: {pct(goals['seen_vs_per_task'])}%; goals met: "
            + ", ".join(k for k, v in goals["met"].items() if v)
        )
        each = between[spec]
        print(
            f"  per seed: vs multi-task {figure(each['seen_vs_multitask_points'])}; "
            f"random {figure(each['seen_control_gap_points']['random'])}; "
            f"other {figure(each['seen_control_gap_points']['other'])}"
        )


def main() -> int:
    from edgeadapt.core.errors import UserError
    from edgeadapt.core.files import write_json_atomic
    from edgeadapt.runs import schema
    from edgeadapt.studies.loragen_seeds import pool_seeds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="one loragen.json per seed")
    parser.add_argument("--out", default="docs/results/loragen-pool-seeds.json")
    args = parser.parse_args()
    repeated = sorted({p for p in args.results if args.results.count(p) > 1})
    if repeated:
        print(f"error: {', '.join(repeated)} given twice: pass one loragen.json per seed.", file=sys.stderr)
        return 2
    try:
        runs = {path: schema.read(Path(path), schema.LoragenResults).to_json() for path in args.results}
        pooled = pool_seeds(runs)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pooled = {"date": str(datetime.now(timezone.utc).date()), "results": args.results, **pooled}
    write_json_atomic(Path(args.out), pooled)
    print_tables(pooled)
    if pooled["left_out"]:
        print(f"\nnot in every seed, so not pooled: {', '.join(pooled['left_out'])}")
    print(f"\n{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
