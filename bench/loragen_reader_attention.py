"""What an attending reader (`pool:minilm-tokens`) learned to read: per seen task, the share of its queries'
attention on the words that name the task against the share a plain mean gives them, and whether the task's
untrained paraphrase is read nearest its own trained texts (what recognition needs), for the trained pool.

    python bench/loragen_reader_attention.py configs/loragen-pool.yaml pool:minilm-tokens train.seed=1 \\
        name=loragen-pool-seed1-seen48-all7-others2 loragen.steps=800 loragen.other_paraphrases=2 \\
        'loragen.targets=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]' loragen.seen_tasks=48 \\
        loragen.encoder=pool:minilm-tokens loragen.compare_encoders=[] train.precision=bf16 \\
        --out docs/results/loragen-pool-seed1-seen48-all7-others2-tokens-attention.json

The overrides must be those the generator trained under (as bench/loragen_asked_from.py). A task's naming words
are the tokens of a text that are not frame words, the MiniLM tokens found in at least a quarter of all training
texts (the list functions' sentence frames, "list", "the"...), and not [CLS]/[SEP]. The nearest trained text
is by cosine of what the gates read (the layer-normed states, every query); the mean-pooled embedding's
nearest (what `pool:minilm` reads) is beside it. Nothing trains; seconds.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from edgeadapt.studies.loragen_summary import task_families

sys.path.insert(0, str(Path(__file__).parent))  # bench/ modules
from generator_args import generator_parser  # noqa: E402

FRAME_SHARE = 0.25


def frame_tokens(tokenizer, texts: list[str]) -> set[int]:
    """Token ids in at least FRAME_SHARE of the texts, and the special tokens."""
    counts = Counter(i for text in texts for i in set(tokenizer(text)["input_ids"]))
    return {i for i, c in counts.items() if c >= FRAME_SHARE * len(texts)} | set(tokenizer.all_special_ids)


@torch.no_grad()
def naming_share(net, text: str, frame: set[int]) -> dict:
    """The attention (averaged over the queries) on the text's naming words, the share a mean gives them, and
    the five most attended tokens."""
    weights = net.attention(*net.reader.tokens([text]))[0].mean(0)
    ids = net.reader.tokenizer(text)["input_ids"]
    naming = torch.tensor([i not in frame for i in ids])
    return {
        "attended": float(weights[naming].sum()),
        "mean": float(naming.float().mean()),
        "top": [net.reader.tokenizer.decode([ids[int(t)]]) for t in weights.topk(min(5, len(ids))).indices],
    }


@torch.no_grad()
def recognition(net, texts: list[str], task_of: list[str], asked: dict[str, str]) -> dict[str, dict]:
    """Per task asked from an untrained text: whether its nearest trained text is its own, by the gates' input
    and by the mean-pooled embedding, with the margin (own nearest cosine - others' nearest)."""
    out = {}
    for label, read in (("attended", lambda t: net.norm(net.read(t)).flatten(1)), ("mean", net.reader)):
        trained = F.normalize(read(texts).float(), dim=-1)
        for name, text in asked.items():
            sims = trained @ F.normalize(read([text]).float(), dim=-1)[0]
            own = max(float(s) for s, t in zip(sims, task_of) if t == name)
            other = max(float(s) for s, t in zip(sims, task_of) if t != name)
            out.setdefault(name, {})[label] = {"own_nearest": own > other, "margin": own - other}
    return out


def measure(cfg, spec: str) -> dict[str, dict]:
    from edgeadapt.studies.loragen import (
        asked_texts,
        collection_of,
        generator_texts,
        open_trained,
        seen_sample,
    )

    net = open_trained(cfg, spec).net
    if not net.cfg.attends:
        raise ValueError(f"{spec} does not attend over token states (loragen.encoder minilm-tokens does)")
    g = cfg.loragen
    tasks = collection_of(cfg, lambda _: None).by_role("train")
    seen = seen_sample(tasks, g.seen_tasks, g.per_task)
    texts, index = generator_texts(cfg, tasks)
    frame = frame_tokens(net.reader.tokenizer, texts)
    asked = {t.name: a[0] for t in seen for a in [asked_texts(t, "seen", g.train_paraphrases)] if a}
    near = recognition(net, texts, [tasks[i].name for i in index], asked)
    out = {}
    for task in seen:
        if task.name in asked:
            trained = [naming_share(net, text, frame) for text, i in zip(texts, index) if tasks[i] is task]
            out[task.name] = {
                "source": task.source,
                "trained": trained,
                "untrained": naming_share(net, asked[task.name], frame),
                "recognition": near[task.name],
            }
    return out


def family_figures(per_task: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for label, group in task_families({n: s["source"] for n, s in per_task.items()}).items():
        rows = [per_task[n] for n in group]
        untrained = [r["untrained"] for r in rows]
        out[label] = {
            "tasks": len(rows),
            "untrained_naming_attended": statistics.fmean(u["attended"] for u in untrained),
            "untrained_naming_mean": statistics.fmean(u["mean"] for u in untrained),
            "trained_naming_attended": statistics.fmean(t["attended"] for r in rows for t in r["trained"]),
            "trained_naming_mean": statistics.fmean(t["mean"] for r in rows for t in r["trained"]),
            **{
                f"own_nearest_{how}": sum(r["recognition"][how]["own_nearest"] for r in rows)
                for how in ("attended", "mean")
            },
        }
    return out


def main() -> int:
    parser = generator_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from edgeadapt.core.config import load
    from edgeadapt.core.errors import UserError

    try:
        per_task = measure(load(args.config, args.overrides), args.spec)
    except (UserError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    figures = family_figures(per_task)
    report = {"config": args.config, "spec": args.spec, "overrides": args.overrides, "families": figures}
    args.out.write_text(json.dumps({**report, "per_task": per_task}, indent=1))
    for label, f in figures.items():
        print(
            f"{label} ({f['tasks']} tasks): naming words take {f['untrained_naming_attended']:.0%} of the "
            f"attention on the untrained paraphrase (a mean gives them {f['untrained_naming_mean']:.0%}; trained "
            f"texts {f['trained_naming_attended']:.0%} / {f['trained_naming_mean']:.0%}); own nearest: "
            f"{f['own_nearest_attended']}/{f['tasks']} attended, {f['own_nearest_mean']}/{f['tasks']} mean"
        )
    for name, row in list(per_task.items())[:3]:
        print(f"  {name}: untrained paraphrase's most attended tokens {row['untrained']['top']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
