"""What each setting of configs/mitigation-frontier.yaml costs in training time, every setting in one session.

The frontier's settings ran across several sessions, on a machine whose speed drifted between them (the same
as-is training took 107-145 s in one and 165-225 s in another), so their training seconds cannot be compared
with each other. This trains every setting back to back in one process, each method at its first learning
rate, one seed, and reports per setting: the data it prepares once (the base's own answers for self-replay and
KL on prompts, the SDFT rewrites), each method's seconds per step, and those against the method as it is.

    .venv/bin/python bench/mitigation_cost.py [configs/mitigation-frontier.yaml] [--steps 16] [--section]

Nothing else should run on the machine meanwhile: a timing taken under load is meaningless. 40 minutes on
two cores at 16 steps (2026-12-03; the SDFT rewrites about 4 of them, EWC's two Fishers about 4).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def time_setting(cfg, log) -> dict:
    """Train one grid run (every method at its first rate): prepare seconds and each method's seconds."""
    from edgeadapt.runs.run import Run
    from edgeadapt.studies.train import train_run

    run = Run(cfg)
    started = time.perf_counter()
    results = train_run(run, resume=False, log=log)
    wall = time.perf_counter() - started
    trained = sum(r.seconds for r in results.values())
    prepared = wall - trained  # data, model loads, self-replay answers, rewrites, EWC's Fisher
    return {
        "prepare_seconds": round(prepared, 1),
        "methods": {
            name: {
                "steps": r.steps,
                "seconds": round(r.seconds, 1),
                "seconds_per_step": round(r.seconds / r.steps, 2),
                "regularizers": r.regularizers,
                "memory_held_mb": round(
                    sum(t["memory_bytes"] for t in (r.regularizers or {}).values()) / 2**20, 1
                ),
            }
            for name, r in results.items()
        },
    }


def main() -> int:
    from edgeadapt.core.config import load
    from edgeadapt.studies.sweep import SETTING, grid_configs

    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default="configs/mitigation-frontier.yaml")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", nargs="*", help="only these settings (default: every one)")
    parser.add_argument("--out", default="docs/results/mitigation-cost.json")
    parser.add_argument("--section", action="store_true")
    args = parser.parse_args()
    # the forgetting curve measured at the start and the end only: its evaluations are not the setting's cost
    overrides = [
        f"train.steps={args.steps}",
        f"train.eval_every={args.steps}",
        f"sweep.seeds=[{args.seed}]",
        "sweep.lr_factors=[1]",
    ]
    cfg = load(args.config, overrides)
    report = {
        "date": str(datetime.now(timezone.utc).date()),
        "config": args.config,
        "steps": args.steps,
        "seed": args.seed,
        "settings": {},
    }
    with tempfile.TemporaryDirectory(prefix="edgeadapt-cost-") as tmp:
        cfg.out_dir = tmp
        for (point, _, _), sub in grid_configs(cfg).items():
            setting = dict(point)[SETTING]
            if args.settings and setting not in args.settings:
                continue
            print(f"== {setting}", flush=True)
            report["settings"][setting] = {"overrides": cfg.sweep.settings[setting]} | time_setting(
                sub, lambda line: None
            )
            print(json.dumps(report["settings"][setting]["methods"]), flush=True)
    relative(report)
    Path(args.out).write_text(json.dumps(report, indent=1))
    if args.section:
        write(report)
    return 0


def relative(report: dict) -> None:
    """Each method's seconds per step against the same method with no setting (`as-is`)."""
    plain = report["settings"].get("as-is")
    if not plain:
        return
    for values in report["settings"].values():
        for name, m in values["methods"].items():
            m["x_as_is"] = round(m["seconds_per_step"] / plain["methods"][name]["seconds_per_step"], 2)


def write(report: dict) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from sections import write_section

    names = list(next(iter(report["settings"].values()))["methods"])
    lines = [
        "## What each mitigation costs in training time (`bench/mitigation_cost.py`)",
        "",
        f"- Date: {report['date']}; `{report['config']}`'s settings back to back in one process, idle machine, "
        f"{report['steps']} steps each, seed {report['seed']}, each method at its first learning rate.",
        "",
        "| setting | prepared once (s) | "
        + " | ".join(f"{n}: s/step (× as is), memory held" for n in names)
        + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for setting, values in report["settings"].items():
        cells = [
            f"{m['seconds_per_step']:.2f} ({m.get('x_as_is', 1):.2f}×)"
            + (f", {m['memory_held_mb']:,.0f} MB" if m["memory_held_mb"] else "")
            for m in values["methods"].values()
        ]
        lines.append(f"| {setting} | {values['prepare_seconds']:.0f} | " + " | ".join(cells) + " |")
    write_section("mitigation_cost", lines + [""])


if __name__ == "__main__":
    sys.exit(main())
