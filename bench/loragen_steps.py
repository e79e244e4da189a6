"""Seconds per training step of a LoRA-Gen generator on the study's own collection, with random batches and
with batches grouped by length (`train.group_by_length`): what grouping saves where rows differ in length.

    python bench/loragen_steps.py configs/loragen-pool.yaml pool:minilm train.seed=1 [--steps 50] \
        [--precision fp32 bf16] [--batches random grouped] [--out FILE]

Trains the generator `--steps` steps each way (`--batches`: both by default; in each `--precision`, as
`train.precision`) in a scratch folder (nothing of the study's is touched), one after the other in one
process, and reports the mean and median step time after the first two, with each way's share of padding over
an epoch of its training batches (drawn as training draws them). Grouped batches come in random order
(`edgeadapt.data.batches`), so a few steps already sample every length; more steps keep the mean steadier. Time it on an idle machine: anything
else on the CPU changes every column.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # bench/ modules
from throughput import StepTimer  # noqa: E402


def padding_share(lengths: list[int], batch_size: int, grouped: bool, seed: int) -> float:
    """The share of padding positions in one epoch of training batches over rows of these lengths, random or
    grouped as training draws them (right-padded to the batch's longest row)."""
    import random

    from edgeadapt.data.batches import grouped_by_length

    if grouped:
        order = grouped_by_length(lengths, batch_size, len(lengths), seed)
    else:
        order = random.Random(seed).sample(range(len(lengths)), len(lengths))
    batches = [[lengths[i] for i in order[n : n + batch_size]] for n in range(0, len(order), batch_size)]
    return 1 - sum(map(sum, batches)) / sum(max(b) * len(b) for b in batches)


def row_lengths(run_cfg) -> list[int]:
    """The generator's training rows' token counts, as `train_generator` encodes them."""
    from edgeadapt.studies.loragen import base_run, collection_of, generator_rows, training_texts

    collection = collection_of(run_cfg, log=lambda _: None)
    tasks = collection.by_role("train")
    _, task_of = training_texts(tasks, run_cfg.loragen.train_paraphrases)
    tokenizer, seed = base_run(run_cfg).tokenizer, run_cfg.train.seed
    rows, _ = generator_rows(collection, tasks, task_of, tokenizer, run_cfg.data.max_length, seed)
    return [len(row["input_ids"]) for row in rows]


def time_steps(cfg, spec: str, grouped: bool, precision: str, steps: int, scratch: Path) -> dict:
    """Train the generator `steps` steps (random or grouped batches, fp32 or bf16); its step times and
    padding."""
    from edgeadapt.core import config
    from edgeadapt.studies.loragen import collection_of, train_generator

    way = "grouped" if grouped else "random"
    overrides = [
        f"train.precision={precision}",
        f"train.group_by_length={str(grouped).lower()}",
        f"loragen.steps={steps}",
        f"loragen.eval_every={steps}",  # the curve's evaluations, at the start and the end: not timed
        "train.save_every=0",
    ]
    run_cfg = config.load(
        cfg["path"], [*cfg["overrides"], *overrides, f"out_dir={scratch}", f"name={way}-{precision}"]
    )
    timer = StepTimer()
    train_generator(run_cfg, collection_of(run_cfg, log=lambda _: None), spec, callbacks=(timer,))
    times = timer.times[2:]
    lengths = row_lengths(run_cfg)
    return {
        "batches": way,
        "precision": precision,
        "steps": len(timer.times),
        "mean_s": round(statistics.mean(times), 3),
        "median_s": round(statistics.median(times), 3),
        "padding_share": round(padding_share(lengths, run_cfg.loragen.batch_size, grouped, 0), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the study's YAML config")
    parser.add_argument("spec", help="the generator, [KIND:]ENCODER")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.seed=1")
    parser.add_argument("--steps", type=int, default=50, help="steps each way")
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=["fp32", "bf16"],
        help="train.precision, each in turn",
    )
    parser.add_argument(
        "--batches",
        nargs="+",
        default=["random", "grouped"],
        choices=["random", "grouped"],
        help="random or length-grouped batches, each in turn (one way alone: half the time)",
    )
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    if args.steps < 3:
        parser.error(f"--steps: at least 3 (the first two are not timed), got {args.steps}")
    cfg = {"path": args.config, "overrides": args.overrides}
    with tempfile.TemporaryDirectory() as scratch:
        rows = [
            time_steps(cfg, args.spec, grouped, precision, args.steps, Path(scratch))
            for precision in args.precision
            for grouped in [way == "grouped" for way in dict.fromkeys(args.batches)]
        ]
    for row in rows:
        print(
            f"{row['batches']:>8} {row['precision']}: {row['mean_s']:.2f} s a step (median "
            f"{row['median_s']:.2f}), {100 * row['padding_share']:.0f}% padding"
        )
    by_way = {(row["precision"], row["batches"]): row for row in rows}
    if {"random", "grouped"} <= set(args.batches):  # the ratio needs both ways
        for precision in args.precision:
            ratio = by_way[precision, "grouped"]["mean_s"] / by_way[precision, "random"]["mean_s"]
            print(f"grouped / random in {precision}: {ratio:.2f} of the time a step")
    if args.out:
        from datetime import date

        import torch

        from machine import cpu_name  # platform.processor() is empty on Linux

        where = {"date": date.today().isoformat(), "cpu": cpu_name(), "threads": torch.get_num_threads()}
        record = {"config": cfg, "spec": args.spec, **where, "rows": rows}
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
