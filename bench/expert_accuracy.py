"""Each expert of a built library on its own domain's test questions (greedy, exact match, as the route
study scores them) and perplexity of its domain's test responses: the skill of a library's experts without
the router or a device, e.g. to compare two libraries trained with other LoRA targets.

Run (a library built first; about a minute per expert on two cores):
`python bench/expert_accuracy.py configs/router.yaml [KEY=VALUE ...] [--out docs/results/expert-accuracy.json]`
The JSON keeps every library measured, keyed by its folder, so two invocations sit side by side.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path


def main() -> int:
    from edgeadapt.evaluation.sets import domain_sets
    from edgeadapt.evaluation.suite import EvalSets, domain_scores
    from edgeadapt.inference.predictor import ModelPredictor
    from edgeadapt.updates.library import expert_name
    from library_cli import open_library

    args, cfg, runs, library = open_library("docs/results/expert-accuracy.json")
    experts = {}
    for domain, run in runs.items():
        name = expert_name(domain)
        model = library.load(run.load_model(run.dtype), [name])
        sets = domain_sets(run.data.test, run.tokenizer, cfg.data.max_length)
        scores, _ = domain_scores(ModelPredictor(model, run.tokenizer), EvalSets(**sets), cfg.eval)
        experts[name] = scores | {
            "targets": sorted(model.peft_config[name].target_modules),
            "questions": len(run.data.test),
        }
        print(name, json.dumps(experts[name]), flush=True)
    out = Path(args.out)
    kept = json.loads(out.read_text()) if out.is_file() else {}
    kept[str(library.folder)] = {
        "date": str(datetime.now(timezone.utc).date()),
        "config": args.config,
        "overrides": args.overrides,
        "experts": experts,
    }
    out.write_text(json.dumps(kept, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
