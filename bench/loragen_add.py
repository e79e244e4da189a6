"""One more generator beside a finished LoRA-Gen study: trained, scored as `loragen eval` scores it, and added
to a copy of the study's loragen.json with the summary made again (`edgeadapt.studies.loragen_add`). For a
study whose run folder, and with it the trained baselines, is gone. The file must come from the same config,
overrides and seed: its task groups, the base model's zero-shot answers on the seen tasks, and its seed
(files written from 2026-12-06 record it) are checked.

    python bench/loragen_add.py configs/loragen-pool.yaml model:qwen2.5-coder-0.5b-instruct \\
        train.seed=1 name=loragen-pool-seed1 --to docs/results/loragen-pool-seed1.json \\
        --out docs/results/loragen-pool-seed1-qwen.json [--resume]

`--replace` measures a generator the file already scores again (trained again, unless `--resume` finds it
in the run), its rows replacing the file's: after the study's controls changed, say.

`multitask` in place of a generator trains the multi-task LoRA again under the overrides' `loragen.steps`
and `loragen.batch_size` (its lr is its method's) and replaces its rows and forgetting: the baseline on the
budget of a generator added under other steps (seed 1's at 800 steps: 75.5 minutes of training and 3.3 of
scoring on two cores):

    python bench/loragen_add.py configs/loragen-pool.yaml multitask train.seed=1 \
        name=loragen-pool-seed1-steps800 loragen.steps=800 \
        --to docs/results/loragen-pool-seed1-steps800.json --out docs/results/loragen-pool-seed1-800.json

The generator trains in RUN/generators/ and its parts are kept in RUN/loragen-parts/ (`--resume` reuses
both). Seed 1's Qwen2.5-Coder-0.5B reader: about an hour of training and 17 minutes of scoring on two cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MULTITASK = "multitask"  # the baseline, not a generator: no encoder has this name


def main() -> int:
    from edgeadapt.core import config
    from edgeadapt.core.errors import UserError
    from edgeadapt.reports.loragen import goal_lines
    from edgeadapt.runs import schema
    from edgeadapt.studies.loragen_add import add_generator, add_multitask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the study's YAML config")
    parser.add_argument(
        "spec",
        help="the generator to add, [KIND:]ENCODER (kind: loragen.kind), or `multitask`: the multi-task "
        "LoRA trained again under these overrides",
    )
    parser.add_argument("overrides", nargs="*", help="the study's key=value overrides, e.g. train.seed=1")
    parser.add_argument("--to", required=True, help="the study's loragen.json")
    parser.add_argument("--out", required=True, help="where the file with the generator added goes")
    parser.add_argument("--resume", action="store_true", help="reuse a trained generator and measured parts")
    parser.add_argument("--replace", action="store_true", help="measure a generator the file scores again")
    args = parser.parse_args()
    try:
        if Path(args.out).resolve() == Path(args.to).resolve():
            raise UserError(f"--out {args.out} is the study's own file: write the addition beside it.")
        cfg = config.load(args.config, args.overrides)
        results = schema.read(Path(args.to), schema.LoragenResults).to_json()
        if args.spec == MULTITASK:
            added = add_multitask(cfg, results, args.to, args.resume, overrides=args.overrides)
        else:
            added = add_generator(
                cfg, args.spec, results, args.to, args.resume, replace=args.replace, overrides=args.overrides
            )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    schema.write(Path(args.out), added, schema.LoragenResults)
    changed = list(added["generated"]) if args.spec == MULTITASK else [args.spec]  # every goal is against it
    print("\n".join(goal_lines(added["summary"], changed)))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
