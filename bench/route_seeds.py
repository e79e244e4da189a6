"""The route study's routing figures for every router seed, without its system evaluations: each seed's
router trained and calibrated as `route eval` trains it (the library's kind, `router.rule`, `router.layer`),
and its routes on every kind of held-out prompt (domain test prompts, general, general_new, domain words,
unknown subjects, short, paraphrased, mixed). A domain test prompt routed to its own expert answers as the
oracle's route does, so the share of domain prompts routed right bounds the routed system's accuracy against
the oracle's; `route eval` measures the systems themselves (about 50 minutes on two cores).

Run: `python bench/route_seeds.py configs/router.yaml [KEY=VALUE ...] [--out docs/results/route-seeds.json]`
(a library built first; about 5 minutes on two cores).
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

FIGURES = (
    "accuracy",
    "macro_f1",
    "general_to_adapter_rate",
    "general_new_to_adapter_rate",
    "unknown_to_base_rate",
)


def main() -> int:
    from edgeadapt.studies.library import train_router
    from edgeadapt.studies.router_data import RouterData
    from edgeadapt.studies.routing import routing_report
    from library_cli import open_library

    args, cfg, runs, library = open_library("docs/results/route-seeds.json")
    data = RouterData(cfg, runs, library)
    seeds = {}
    for seed in cfg.router.seeds:
        router = train_router(cfg, data, seed, print)
        seeds[seed] = routing_report(router, data)
        print(seed, json.dumps({k: seeds[seed][k] for k in FIGURES}), flush=True)
    spread = {
        k: {
            "mean": statistics.mean(s[k] for s in seeds.values()),
            "sd": statistics.stdev(s[k] for s in seeds.values()),
        }
        for k in FIGURES
        if len(seeds) > 1
    }
    by_kind = {
        kind: [s["by_kind"][kind]["accuracy"] for s in seeds.values()]
        for kind in next(iter(seeds.values()))["by_kind"]
    }
    report = {
        "date": str(datetime.now(timezone.utc).date()),
        "config": args.config,
        "overrides": args.overrides,
        "rule": cfg.router.rule,
        "layer": cfg.router.layer,
        "seeds": seeds,
        "mean_sd": spread,
        "by_kind": by_kind,
    }
    Path(args.out).write_text(json.dumps(report, indent=1))
    for k, v in spread.items():
        print(f"{k}: {v['mean']:.3f} ± {v['sd']:.3f}")
    print(json.dumps(by_kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
