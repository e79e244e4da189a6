"""A mitigation at a user's scale: one sweep folder of configs/mitigation-data-size.yaml or
configs/mitigation-long.yaml (each method at one learning rate, every setting on every seed) reduced to the
table RESULTS shows, with the mean and standard deviation across seeds of every signal.

    .venv/bin/python bench/mitigation_scale.py runs/mitigation-data-size [--out docs/results/...json]

Writes docs/results/<the sweep's name>.json (every run's figures, so the table can be rebuilt where the runs
are gone) and prints the Markdown table. A setting's row appears once any seed of it has finished; the
seeds behind each row are named, so a partial sweep cannot pass for a finished one. Runs kept in that file
and absent from the folder (a sweep finished over sessions on machines whose runs/ did not survive) stay in
it; a run in the folder replaces its kept figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = (
    ("domain_accuracy", "{:.1%}"),
    ("general_degradation_pct", "{:+.1f}%"),
    ("topic_retention", "{:.2f}"),
    ("fact_recall", "{:.0%}"),
)
KEEP = tuple(k for k, _ in SIGNALS) + ("train_seconds", "lr", "steps", "regularizers")


def run_figures(folder: Path) -> dict[str, dict]:
    """{setting: {seed: {"base": ..., method: figures}}} of every finished run (results.json) in `folder`."""
    settings: dict[str, dict] = {}
    for path in sorted(folder.glob("*-seed*/results.json")):
        label, seed = path.parent.name.rsplit("-seed", 1)
        setting = label.rsplit("-", 1)[0]  # "kl-prompts-epochs1" -> "kl-prompts"
        results = json.loads(path.read_text())
        settings.setdefault(setting, {})[f"seed{seed}"] = {
            "base": {k: results["base"].get(k) for k in ("domain_accuracy", "general_ppl", "fact_recall")},
            **{name: {k: m.get(k) for k in KEEP} for name, m in results["methods"].items()},
        }
    return settings


def summary(values: list[float], pattern: str) -> str:
    mean = pattern.format(statistics.fmean(values))
    if len(values) < 2:
        return mean
    return f"{mean} ± {pattern.format(statistics.stdev(values)).lstrip('+')}"


def table(settings: dict[str, dict]) -> list[str]:
    lines = [
        "| method | setting | seeds | domain acc | general PPL change | topic retention | fact recall | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bases = [run["base"] for seeds in settings.values() for run in seeds.values()]
    if bases:
        recall = summary([b["fact_recall"] for b in bases], "{:.0%}")
        accuracy = summary([b["domain_accuracy"] for b in bases], "{:.1%}")
        lines.append(f"| base | — | — | {accuracy} | — | — | {recall} | — |")
    methods = sorted({m for seeds in settings.values() for run in seeds.values() for m in run if m != "base"})
    for method in methods:
        for setting, seeds in sorted(settings.items(), key=lambda item: item[0] != "as-is"):
            runs = [run[method] for run in seeds.values() if method in run]
            if not runs:
                continue
            cells = [summary([r[key] for r in runs], pattern) for key, pattern in SIGNALS]
            seconds = statistics.fmean(r["train_seconds"] for r in runs)
            names = ", ".join(s.removeprefix("seed") for s, run in sorted(seeds.items()) if method in run)
            lines.append(f"| {method} | {setting} | {names} | " + " | ".join(cells) + f" | {seconds:,.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="the sweep's folder, e.g. runs/mitigation-data-size")
    parser.add_argument("--out", default=None, help="default: docs/results/<folder name>.json")
    args = parser.parse_args()
    folder = Path(args.runs)
    out = Path(args.out) if args.out else ROOT / "docs" / "results" / f"{folder.name}.json"
    settings = json.loads(out.read_text())["runs"] if out.is_file() else {}
    for setting, seeds in run_figures(folder).items():
        settings.setdefault(setting, {}).update(seeds)
    if not settings:
        raise SystemExit(f"no finished run (results.json) under {folder}")
    lines = table(settings)
    out.write_text(json.dumps({"sweep": folder.name, "runs": settings, "table": lines}, indent=1) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
