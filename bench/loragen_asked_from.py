"""Recognition or skill: a trained generator's seen tasks asked from the texts they trained on against the
paraphrase they never saw, per task family, beside the per-task LoRAs.

    python bench/loragen_asked_from.py configs/loragen-pool.yaml pool:minilm train.seed=1 \\
        name=loragen-pool-seed1-seen48-all7-steps1600 loragen.steps=1600 \\
        'loragen.targets=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]' loragen.seen_tasks=48 \\
        loragen.encoder=pool:minilm loragen.compare_encoders=[] train.precision=bf16 \\
        --per-task docs/results/loragen-pool-seed1-seen48-per-task48.json \\
        --out docs/results/loragen-pool-seed1-seen48-all7-steps1600-asked-from.json

The overrides must be those the generator trained under (RUN/generators/SPEC/trained_under.json: another run,
or other settings, is refused); nothing trains. The study scores a
seen task from its untrained paraphrase only. If the adapter made from a text the task trained on (its
description, its first `loragen.train_paraphrases` paraphrases) scores near the per-task LoRA while the
untrained paraphrase does not, the generator learned the task and the reader does not carry the paraphrase to
it: a better reader or more paraphrases are the lever, not more practice. If both fall short, the pool never
learned the task well. Scores as the study does (the same rows, greedy answers); untimed.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from edgeadapt.studies.loragen_summary import paired_gap, task_families

sys.path.insert(0, str(Path(__file__).parent))  # bench/ modules
from generator_args import generator_parser  # noqa: E402

TEXTS = ("trained", "untrained")


def asked_scores(cfg, spec: str) -> dict[str, dict]:
    """Per seen task with an untrained paraphrase: its source and the scores of the adapters made from each
    trained text and each untrained one, in the study's order."""
    from edgeadapt.studies.loragen import asked_texts, open_trained, trained_texts
    from edgeadapt.studies.loragen_eval import Evaluation

    generator = open_trained(cfg, spec)  # before the base model loads: a wrong run is refused at once
    evaluation = Evaluation(cfg)
    k = cfg.loragen.train_paraphrases
    out = {}
    for task in evaluation.groups["seen"]:
        untrained = asked_texts(task, "seen", k)
        if not untrained:
            continue
        texts = {"trained": trained_texts(task, k), "untrained": untrained}
        out[task.name] = {"source": task.source}
        for kind, group in texts.items():
            out[task.name][kind] = [
                evaluation.with_adapter(
                    generator.generate(text)[0], generator.cfg.scaling, [task], kind, False
                )[task.name]["score"]
                for text in group
            ]
    return out


def family_figures(scores: dict[str, dict], per_task: dict[str, float]) -> dict[str, dict]:
    """Per family: each text kind's mean in points, its share of the per-task LoRAs' mean (tasks with one) and
    the paired gap trained - untrained."""
    out = {}
    for label, group in task_families({n: s["source"] for n, s in scores.items()}).items():
        mean = {kind: {n: statistics.fmean(scores[n][kind]) for n in group} for kind in TEXTS}
        figures: dict = {
            "tasks": len(group),
            "means": {k: 100 * statistics.fmean(v.values()) for k, v in mean.items()},
        }
        figures["trained_vs_untrained"] = paired_gap(mean["trained"], mean["untrained"])
        beside = [n for n in group if n in per_task]
        if beside and (reference := statistics.fmean(per_task[n] for n in beside)):
            figures["per_task_mean"] = 100 * reference
            figures["shares"] = {k: statistics.fmean(mean[k][n] for n in beside) / reference for k in TEXTS}
        out[label] = figures
    return out


def main() -> int:
    parser = generator_parser(__doc__)
    parser.add_argument("--per-task", type=Path, help="bench/loragen_per_task.py's file for the same seed")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from edgeadapt.core.config import load
    from edgeadapt.core.errors import UserError

    try:
        cfg = load(args.config, args.overrides)
        per_task = {}
        if args.per_task:
            per_task = {
                n: s["per-task"] for n, s in json.loads(args.per_task.read_text())["per_task_scores"].items()
            }
        scores = asked_scores(cfg, args.spec)
    except (UserError, OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    figures = family_figures(scores, per_task)
    report = {"config": args.config, "spec": args.spec, "overrides": args.overrides, "families": figures}
    args.out.write_text(json.dumps({**report, "per_task": scores}, indent=1))
    for label, f in figures.items():
        gap = f["trained_vs_untrained"]
        shares = " ".join(f"{k} {v:.0%}" for k, v in f.get("shares", {}).items())
        print(
            f"{label} ({f['tasks']} tasks): trained texts {f['means']['trained']:.1f}%, untrained paraphrase "
            f"{f['means']['untrained']:.1f}% ({gap['gap_points']:+.1f} ± {gap['gap_stderr'] or 0:.1f}); "
            f"share of per-task: {shares or '-'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
