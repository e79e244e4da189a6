"""One setting of configs/mitigation-frontier.yaml against the methods as they are, at matched skill:
writes docs/results/mitigation-frontier-SETTING.json and prints the tables RESULTS shows.

    .venv/bin/python bench/mitigation_table.py self-replay [--runs runs/mitigation-frontier]

"As is" is configs/sweep.yaml's result (docs/results/sweep.json, three seeds; its best mean accuracy sets the
targets). At each target accuracy, per method: the general degradation along the Pareto frontier (as the
sweep interpolates it, with its spread across seeds), and the signals that do not share the evaluation's
corpus (topic retention, fact recall), interpolated linearly in accuracy between the base and the setting's
two learning rates on the seeds' means (± the interpolated standard deviation across seeds; the sweep kept
only means for as-is).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from edgeadapt.evaluation.frontier import degradation_at, pareto_frontier

sys.path.insert(0, str(Path(__file__).parent))
from mitigation_scale import run_figures  # noqa: E402  (the one reader of a sweep folder's runs)

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "docs" / "results" / "sweep.json"
SIGNALS = ("topic_retention", "fact_recall")


def interpolate(points: list[dict], target: float, key: str) -> float | None:
    """`key` where accuracy first reaches `target`, along the points in order of accuracy (None: never)."""
    return degradation_at(sorted(points, key=lambda p: p["accuracy"]), target, key)


def mean_points(runs: dict[str, dict], method: str) -> list[dict]:
    """The setting's points averaged over seeds, with the spread of the degradation (as the sweep keeps it)
    and of each signal."""
    by_lr: dict[str, list[dict]] = {}
    for run in runs.values():
        for name, m in run.items():
            if name.startswith(f"{method}-lr"):
                by_lr.setdefault(name, []).append(m)
    return [
        {
            "accuracy": statistics.fmean(m["domain_accuracy"] for m in ms),
            "degradation": statistics.fmean(m["general_degradation_pct"] for m in ms),
            "spread": statistics.stdev(m["general_degradation_pct"] for m in ms) if len(ms) > 1 else 0.0,
            **{k: statistics.fmean(m[k] for m in ms) for k in SIGNALS},
            **{f"{k}_sd": statistics.stdev(m[k] for m in ms) if len(ms) > 1 else 0.0 for k in SIGNALS},
        }
        for ms in by_lr.values()
    ]


def matched(setting: str, runs: dict[str, dict], sweep: dict) -> list[dict]:
    base = sweep["base"]
    origin = {"accuracy": base["domain_accuracy"], "degradation": 0.0, "spread": 0.0, "topic_retention": 1.0,
              "fact_recall": base["fact_recall"]}  # fmt: skip
    rows = []
    for share in sweep["sweep_targets"]:
        target = share * sweep["best_accuracy"]
        row = {"share_of_best": share, "target_accuracy": target, "methods": {}}
        for method in ("sft", "lora"):
            as_is = [origin] + [p for p in sweep["points"] if p["method"] == method]
            frontier = pareto_frontier(as_is)
            value = degradation_at(frontier, target)
            row["methods"][method] = (
                None
                if value is None
                else {
                    "degradation": value,
                    "spread": degradation_at(frontier, target, "spread"),
                    **{k: interpolate(as_is, target, k) for k in SIGNALS},
                }
            )
            points = [origin | {f"{k}_sd": 0.0 for k in SIGNALS}] + mean_points(runs, method)
            ours = pareto_frontier(points)
            value = degradation_at(ours, target)
            row["methods"][f"{method}+{setting}"] = (
                None
                if value is None
                else {
                    "degradation": value,
                    "spread": degradation_at(ours, target, "spread"),
                    **{
                        k: {
                            "mean": interpolate(points, target, k),
                            "sd": interpolate(points, target, f"{k}_sd"),
                        }
                        for k in SIGNALS
                    },  # fmt: skip
                }
            )
        rows.append(row)
    return rows


def fmt(cell: dict | None, key: str, pattern: str) -> str:
    if cell is None or cell.get(key) is None:
        return "never reached"
    value = cell[key]
    if isinstance(value, dict):
        return f"{pattern.format(value['mean'])} ± {pattern.format(value['sd'])}"
    spread = cell.get("spread") if key == "degradation" else None
    return pattern.format(value) + (f" ± {pattern.format(spread).lstrip('+')}" if spread is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("setting")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "mitigation-frontier"))
    args = parser.parse_args()
    sweep = json.loads(SWEEP.read_text())
    sweep["sweep_targets"] = [row["share_of_best"] for row in sweep["matched"]]
    out = ROOT / "docs" / "results" / f"mitigation-frontier-{args.setting}.json"
    runs = run_figures(Path(args.runs)).get(args.setting, {})
    if not runs and out.is_file():  # the runs are gone (another machine): the figures kept in docs/
        runs = json.loads(out.read_text())["runs"]
    if not runs:
        raise SystemExit(f"no runs of setting '{args.setting}' under {args.runs}")
    table = matched(args.setting, runs, sweep)
    note = f"the {args.setting} setting, seeds {', '.join(sorted(runs))}; 'as is' is docs/results/sweep.json"
    import yaml

    settings = yaml.safe_load((ROOT / "configs" / "mitigation-frontier.yaml").read_text())["sweep"][
        "settings"
    ]
    payload = {"config": "configs/mitigation-frontier.yaml", "setting": args.setting,
               "overrides": settings.get(args.setting), "note": note, "runs": runs, "matched": table}  # fmt: skip
    out.write_text(json.dumps(payload, indent=1) + "\n")
    for key, pattern in (
        ("degradation", "{:+.1f}%"),
        ("topic_retention", "{:.2f}"),
        ("fact_recall", "{:.0%}"),
    ):
        labels = list(table[0]["methods"])
        print(f"\n{key}\n| target | " + " | ".join(labels) + " |\n|---" * 1 + "|---" * len(labels) + "|")
        for row in table:
            cells = [fmt(row["methods"][m], key, pattern) for m in labels]
            print(
                f"| {row['target_accuracy']:.1%} ({row['share_of_best']:.0%}) | " + " | ".join(cells) + " |"
            )
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
