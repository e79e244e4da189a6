"""A trained LoRA-Gen generator's seen-task scores with the edge model answering in fp32 and in bf16: whether a
generator trained under bf16 autocast (`train.precision: bf16`) loses accuracy in training or only when its
adapters are served in another precision than it trained under.

    python bench/loragen_precision.py configs/loragen-pool.yaml pool:minilm train.seed=1 \
        name=loragen-pool-seed1-bf16 loragen.steps=800 train.precision=bf16 [--out FILE]

Scores the study's seen tasks (`loragen.seen_tasks`, from the first paraphrase no generator trained on, as
`loragen eval` does; untimed, no controls) under the generator of that run folder: once in fp32, once with
the merged edge model answering under bf16 autocast. Pass the overrides the generator was trained under
(`loragen eval` would train it again under others; this script refuses instead). Per task and in mean; the
difference paired over tasks (points ± s.e.).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # bench/ modules
from generator_args import generator_parser  # noqa: E402


def scores(evaluation, generator, spec: str, bf16: bool) -> dict[str, float]:
    """The seen tasks' scores as the study measures them (`Evaluation.with_adapter`: merged in fp32, then
    answered by its predictor), its predictor set to answer as `loragen.answer_precision` would."""
    from edgeadapt.studies.loragen import asked_texts

    evaluation.predictor.bf16 = bf16
    k, out = evaluation.cfg.loragen.train_paraphrases, {}
    for task in evaluation.groups["seen"]:
        text = asked_texts(task, "seen", k)[0]  # the study's seen-task text
        rows = evaluation.with_adapter(
            generator.generate(text)[0], generator.cfg.scaling, [task], f"{spec} bf16={bf16}", timed=False
        )
        out[task.name] = rows[task.name]["score"]
    return out


def main() -> int:
    from edgeadapt.core import config
    from edgeadapt.core.errors import UserError
    from edgeadapt.studies.loragen import open_trained
    from edgeadapt.studies.loragen_eval import Evaluation
    from edgeadapt.studies.loragen_summary import paired_gap

    parser = generator_parser(__doc__)
    parser.add_argument("--out", type=Path, help="also write the scores as JSON here")
    args = parser.parse_args()
    try:
        cfg = config.load(args.config, args.overrides)
        cfg.loragen.answer_precision = "fp32"  # each pass sets its own; a bf16 one would make both bf16
        generator = open_trained(cfg, args.spec)
        evaluation = Evaluation(cfg)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    measured, seconds = {}, {}
    for name in ("fp32", "bf16"):
        start = time.perf_counter()
        measured[name] = scores(evaluation, generator, args.spec, name == "bf16")
        seconds[name] = round(time.perf_counter() - start, 1)
    fp32, bf16 = measured["fp32"], measured["bf16"]
    gap = paired_gap(bf16, fp32)
    mean = {name: 100 * sum(s.values()) / len(s) for name, s in (("fp32", fp32), ("bf16", bf16))}
    print(
        f"{args.spec}, {len(fp32)} seen tasks: fp32 {mean['fp32']:.1f}%, bf16 {mean['bf16']:.1f}%, "
        f"bf16 - fp32 {gap['gap_points']:+.1f} ± {gap['gap_stderr']:.1f} points ({gap['wins_losses'][0]}/"
        f"{gap['wins_losses'][1]}); answering took {seconds['fp32']:.0f} s in fp32, {seconds['bf16']:.0f} s in bf16"
    )
    if args.out:
        record = {"command": sys.argv[1:], "seconds": seconds, **measured, "mean": mean, "bf16_vs_fp32": gap}
        args.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
