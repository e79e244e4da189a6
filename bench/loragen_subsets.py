"""Two rows of one LoRA-Gen result compared on parts of its seen tasks: per task source, and inside or outside
the seen sample of an earlier result (the tasks it measured, and the ones it never saw).

    python bench/loragen_subsets.py docs/results/loragen-pool-seeds-seen48.json \
        --row "generated[pool:minilm]" --against multitask --earlier docs/results/loragen-pool-seeds-800.json

A larger seen sample (`loragen.seen_tasks`) changes which tasks the headline averages over as well as how
many; this says whether a gap comes from the tasks an earlier sample left out, and from which source. Per
part: the tasks, each row's mean and the paired gap (row - against) in points, its standard error over tasks,
wins, losses and ties. Reads JSON only (seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeadapt.core.errors import UserError
from edgeadapt.studies.loragen_summary import paired_gap, row_tables


def scores_of(results: dict, row: str, names: list[str]) -> dict[str, float]:
    table = row_tables(results).get(row)
    if table is None:
        raise UserError(f"row {row!r} is not in the file; rows: {', '.join(row_tables(results))}")
    return {n: table[n]["score"] for n in names if n in table}


def compared(results: dict, row: str, against: str, names: list[str]) -> dict:
    """`row` against `against` over `names` (those both scored)."""
    mine, theirs = scores_of(results, row, names), scores_of(results, against, names)
    both = [n for n in names if n in mine and n in theirs]
    gap = paired_gap({n: mine[n] for n in both}, {n: theirs[n] for n in both})
    ties = sum(mine[n] == theirs[n] for n in both)
    means = [100 * sum(s[n] for n in both) / len(both) if both else None for s in (mine, theirs)]
    return {**gap, "ties": ties, "means": means}


def parts(results: dict, earlier: dict | None) -> dict[str, list[str]]:
    """The seen tasks split every way this compares them: all, per source, in and outside `earlier`'s sample."""
    seen = results["groups"]["seen"]
    out = {"all": seen}
    for name in seen:
        out.setdefault(f"source {results['task_info'][name]['source']}", []).append(name)
    if earlier is not None:
        before = set(earlier["groups"]["seen"])
        missing = sorted(before - set(seen))
        if missing:
            raise UserError(f"the earlier sample has seen tasks this file lacks: {', '.join(missing)}")
        out["in the earlier sample"] = [n for n in seen if n in before]
        out["new to this sample"] = [n for n in seen if n not in before]
    return out


def report(row: str, against: str, figures: dict[str, dict]) -> None:
    print(f"{row} against {against}, seen tasks: means, gap in points ± s.e. (won/lost/tied)")
    for part, f in figures.items():
        if f["gap_points"] is None:
            continue
        wins, losses = f["wins_losses"]
        spread = f"± {f['gap_stderr']:.1f}" if f["gap_stderr"] is not None else "(one task)"
        print(
            f"  {part:45} {f['tasks']:3d} tasks  {f['means'][0]:5.1f} / {f['means'][1]:5.1f}  "
            f"{f['gap_points']:+5.1f} {spread} ({wins}/{losses}/{f['ties']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", type=Path, help="a loragen.json, or seeds pooled by bench/loragen_seeds.py"
    )
    parser.add_argument("--row", required=True, help="generated[SPEC], multitask, in-context, ...")
    parser.add_argument("--against", default="multitask")
    parser.add_argument("--earlier", type=Path, help="a result whose seen sample to split by")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    try:
        results = json.loads(args.results.read_text())
        earlier = json.loads(args.earlier.read_text()) if args.earlier else None
        figures = {
            part: compared(results, args.row, args.against, names)
            for part, names in parts(results, earlier).items()
        }
    except (OSError, ValueError, KeyError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    report(args.row, args.against, figures)
    if args.out:
        record = {"results": str(args.results), "earlier": str(args.earlier), "row": args.row}
        args.out.write_text(json.dumps({**record, "against": args.against, "parts": figures}, indent=1))


if __name__ == "__main__":
    main()
