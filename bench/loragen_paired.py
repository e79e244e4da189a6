"""One row of two LoRA-Gen results side by side, paired task by task: the same generator (or multi-task LoRA)
trained twice under one change (bf16 against fp32, another reader...) and measured on the same rows.

    python bench/loragen_paired.py docs/results/loragen-pool-seed1-800.json \
        docs/results/loragen-pool-seed1-bf16.json --row "generated[pool:minilm]" [--row multitask]
    python bench/loragen_paired.py F.json F.json --row "generated[pool:minilm] vs generated[pool:minilm-tokens]"

A row "A vs B" pairs row A of the first file with row B of the second: two generators of one file, say.

Per task group: each file's mean score and the paired difference (second - first) in points with its standard
error over tasks, wins and losses (a difference inside two standard errors is none); per generator row also its
controls' gaps on seen tasks, and each row's forgetting. Reads JSON only (seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeadapt.core.errors import UserError
from edgeadapt.studies.loragen_summary import control_summary, generator_of, paired_gap, row_tables

FORGETTING = ("general_ppl", "on_topic_rate", "fact_recall")


def compare(first: dict, second: dict, row: str) -> dict:
    """The row's scores in both files per task group, paired; controls and forgetting beside them. A row
    "A vs B" is A's in the first file and B's in the second."""
    if first["groups"] != second["groups"]:
        raise UserError("the two files scored other tasks: pair only runs of one config, seed and collection")
    tables = [row_tables(results) for results in (first, second)]
    rows = row.split(" vs ") if " vs " in row else [row, row]
    for which, (name, table) in enumerate(zip(rows, tables)):
        if name not in table:
            raise UserError(
                f"row {name!r} is not in the {('first', 'second')[which]} file; rows: {', '.join(table)}"
            )
    out: dict = {"groups": {}}
    for group, names in first["groups"].items():
        scores = [{n: table[r][n]["score"] for n in names if n in table[r]} for r, table in zip(rows, tables)]
        out["groups"][group] = {
            "means": [100 * sum(s.values()) / len(s) if s else None for s in scores],
            "paired": paired_gap(scores[1], scores[0]),
        }
    seen = first["groups"]["seen"]
    if all(generator_of(r) for r in rows):
        out["controls_seen"] = [
            control_summary(results["generated"][generator_of(r)], seen)
            for r, results in zip(rows, (first, second))
        ]
    out["forgetting"] = [results["forgetting"].get(r) for r, results in zip(rows, (first, second))]
    return out


def control_gap(kind: str, controls: dict) -> str:
    """One control's gap as printed: "random +16.4 ± 8.5"; a gap never measured says so rather than +0.0 (a
    standard error of None is one task's, printed as 0)."""
    gap = controls.get(f"{kind}_gap_points")
    if gap is None:
        return f"{kind} not measured"
    return f"{kind} {gap:+.1f} ± {controls.get(f'{kind}_gap_stderr') or 0:.1f}"


def report(row: str, figures: dict) -> None:
    print(f"\n{row}: first / second, paired difference (second - first) in points ± s.e. (won/lost)")
    for group, g in figures["groups"].items():
        p = g["paired"]
        if p["gap_points"] is None:
            continue
        first, second = g["means"]
        print(
            f"  {group:15} {first:5.1f} / {second:5.1f}   {p['gap_points']:+5.1f} ± {p['gap_stderr'] or 0:.1f} "
            f"({p['wins_losses'][0]}/{p['wins_losses'][1]}, {p['tasks']} tasks)"
        )
    for label, controls in zip(("first", "second"), figures.get("controls_seen", [])):
        gaps = ", ".join(control_gap(kind, controls) for kind in ("random", "other", "shuffled"))
        print(f"  controls on seen, {label}: {gaps}")
    for label, forgetting in zip(("first", "second"), figures["forgetting"]):
        if forgetting:
            print(f"  forgetting, {label}: " + ", ".join(f"{k} {forgetting[k]:.3g}" for k in FORGETTING))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument(
        "--row", action="append", required=True, help='generated[SPEC], multitask, ...; "A vs B"'
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    try:
        files = [json.loads(path.read_text()) for path in (args.first, args.second)]
        figures = {row: compare(*files, row) for row in args.row}
    except (OSError, ValueError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    for row, each in figures.items():
        report(row, each)
    if args.out:
        args.out.write_text(
            json.dumps({"first": str(args.first), "second": str(args.second), **figures}, indent=1)
        )


if __name__ == "__main__":
    main()
