"""How near each description control lies to the text a generator reads, in the MiniLM reader's embedding:
the cosine between a seen task's read text (its unseen paraphrase) and its random, other-task and shuffled
controls, built exactly as the study builds them (`loragen_eval.controls`).

    python bench/loragen_control_similarity.py configs/loragen-pool.yaml train.seed=0 loragen.seen_tasks=48 \
        --out docs/results/loragen-control-similarity-seed0-seen48.json

A control the reader embeds next to the right text cannot show that the generator listens, whatever it
scores. Reads the task collection and MiniLM (seconds); trains and answers nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

KINDS = ("random", "other", "shuffled")


def similarities(cfg) -> dict[str, dict[str, float]]:
    """Per seen task: each control's cosine to the read text, and the nearest other task's read text."""
    from edgeadapt.loragen.encoders import MiniLMEncoder
    from edgeadapt.studies.loragen import asked_texts, collection_of, seen_sample
    from edgeadapt.studies.loragen_eval import controls

    g = cfg.loragen
    group = seen_sample(collection_of(cfg, lambda _: None).by_role("train"), g.seen_tasks, g.per_task)
    # as the study: a task with no untrained paraphrase is not scored, yet stays another task's "other"
    asked = {t.name: asked_texts(t, "seen", g.train_paraphrases) for t in group}
    seen = [t for t in group if asked[t.name]]
    reads = [asked[t.name][0] for t in seen]
    encode = MiniLMEncoder()
    right = encode(reads)  # L2-normalized: a dot product is the cosine
    out = {}
    for i, task in enumerate(seen):
        made = controls(reads[i], task, group, cfg.train.seed)
        embedded = encode([made[k] for k in KINDS])
        cos = (embedded @ right[i]).tolist()
        others = [float(right[j] @ right[i]) for j in range(len(seen)) if j != i]
        out[task.name] = {**dict(zip(KINDS, cos)), "nearest other task": max(others)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from edgeadapt.core.config import load
    from edgeadapt.core.errors import UserError

    try:
        cfg = load(args.config, args.overrides)
        per_task = similarities(cfg)
    except (UserError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kinds = [*KINDS, "nearest other task"]
    means = {k: statistics.fmean(s[k] for s in per_task.values()) for k in kinds}
    report = {"config": args.config, "overrides": args.overrides, "mean_cosine": means, "per_task": per_task}
    args.out.write_text(json.dumps(report, indent=1))
    print(f"{len(per_task)} seen tasks, mean cosine to the read text (MiniLM):")
    for kind in kinds:
        print(f"  {kind:20s} {means[kind]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
