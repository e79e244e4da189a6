"""Does a trained generator make a task's adapter from what the task asks, or from how it is worded?

For a generator folder (either design) and its task collection, three texts per training task are turned
into adapters: the description, the paraphrase the generator also trained on, and the never-trained
paraphrase (the text seen tasks are scored from). Each adapter is summarized by what it does, its update
ΔW·x on a few fixed random inputs x in every target module and layer, and compared:

- distance (L2 between two adapters' responses, over the root-mean-square response): a task's description
  against its trained paraphrase, against its unseen paraphrase, and on average against other tasks'
  descriptions;
- retrieval: for how many tasks the unseen paraphrase's adapter is nearer to its own task's description
  adapter than to any other task's (chance: 1 / tasks);
- what the generator reads (`fingerprint`: MiniLM's sentence embedding, or the pool's mean meta-token
  state), by the same three comparisons in cosine similarity;
- for the pool, the gates: which experts they choose, and the total-variation distance between two texts'
  gate weights (0: the same experts at the same weights, 1: disjoint).

By groups: every task, the list functions (one sentence template per text kind, where only a short clause
says what to do), the rest. No timing: run it while nothing else measures time (~10 min on two cores for
the 256-task collection and the Gemma-3-270M reader, seconds for MiniLM).

    .venv/bin/python bench/generator_neighbours.py runs/loragen-pool/generators/model-gemma3-270m \
        [--collection builtin-large] [--out docs/results/loragen-pool-neighbours-pool.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from edgeadapt.data.tasks import open_collection
from edgeadapt.loragen.make import Generator

PROBES = 4  # random inputs each update is applied to


def responses(net, read: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(n, features): every target module's scaled ΔW·x, all layers, on `PROBES` fixed random inputs."""
    weights = net.weights(read)
    out = []
    for name in sorted(weights):
        a, b = weights[name]  # (n, layers, r, in), (n, layers, out, r)
        probes = torch.randn(a.shape[-1], PROBES, generator=torch.Generator().manual_seed(seed))
        out.append((net.cfg.scaling * b @ (a @ probes)).flatten(1))
    return torch.cat(out, dim=1)


def gate_weights(net, read: torch.Tensor) -> torch.Tensor | None:
    """The pool's gate weights per text, (n, modules·layers, K), zero off the top k; None for other designs."""
    if not hasattr(net, "gate_choices"):
        return None
    mixes = [
        torch.zeros(*chosen.shape[:2], net.cfg.experts).scatter(-1, chosen, gates)
        for _, gates, chosen in net.gate_choices(read).values()
    ]
    return torch.cat(mixes, dim=1)


def comparisons(distance: torch.Tensor, n: int, members: list[int], lower_is_nearer: bool = True) -> dict:
    """From an (3n, 3n) matrix over [descriptions, trained paraphrases, unseen paraphrases]: the three
    comparisons over `members`, and retrieval of each member's description from its unseen paraphrase."""
    sign = 1 if lower_is_nearer else -1
    trained = [float(distance[i, n + i]) for i in members]
    unseen = [float(distance[i, 2 * n + i]) for i in members]
    other = [statistics.mean(float(distance[i, j]) for j in members if j != i) for i in members]
    index = torch.tensor(members)
    found = (sign * distance[2 * n + index][:, index]).argmin(dim=1)
    return {
        "trained_paraphrase": summary(trained),
        "unseen_paraphrase": summary(unseen),
        "other_tasks": summary(other),
        "unseen_nearer_than_other_tasks_share": share([sign * u < sign * o for u, o in zip(unseen, other)]),
        "retrieved_from_unseen_paraphrase": share([int(f) == k for k, f in enumerate(found)]),
        "chance": round(1 / len(members), 4),
    }


def summary(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 4), "sd": round(statistics.stdev(values), 4)}


def share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4)


def usage(mix: torch.Tensor) -> dict:
    chosen = (mix > 0).float()  # (n, slots, K)
    return {
        "share_per_expert": [round(float(s), 4) for s in chosen.sum((0, 1)) / chosen.sum()],
        "experts_used_per_slot_mean": round(float((chosen.sum(0) > 0).sum(-1).float().mean()), 2),
        "distinct_choices": len({tuple(row.flatten().tolist()) for row in chosen.bool()}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generator", type=Path)
    parser.add_argument("--collection", default="builtin-large")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = Generator.open(args.generator)
    net = generator.net
    tasks = open_collection(args.collection, args.seed, 0, 0, 400, build=False).by_role("train")
    trained = set(generator.cfg.training_descriptions)
    if not all(t.description in trained and t.paraphrases[0] in trained for t in tasks):
        raise SystemExit(
            f"{args.generator} was not trained on {args.collection}'s descriptions and paraphrases"
        )
    texts = (
        [t.description for t in tasks]
        + [t.paraphrases[0] for t in tasks]
        + [t.paraphrases[-1] for t in tasks]
    )
    with torch.no_grad():
        reads = [net.read(texts[i : i + 16]) for i in range(0, len(texts), 16)]
        read = torch.cat(reads)
        response = torch.cat([responses(net, r) for r in reads])
        fingerprint = net.fingerprint(read)
        mix = gate_weights(net, read)
    n = len(tasks)
    scale = response.pow(2).sum(1).mean().sqrt()
    measures = {
        "adapter_distance": (torch.cdist(response, response) / scale, True),
        "reading_similarity": (fingerprint @ fingerprint.T, False),
    }
    if mix is not None:
        flat = mix.flatten(1)
        slots = mix.shape[1]
        measures["gate_tv"] = (0.5 * torch.cdist(flat, flat, p=1) / slots, True)
    listed = [i for i, t in enumerate(tasks) if t.source.endswith("list_functions")]
    rest = [i for i in range(n) if i not in listed]
    result: dict = {
        "generator": str(args.generator),
        "kind": generator.cfg.kind,
        "tasks": n,
        "probes": PROBES,
    }
    for group, members in (("all", list(range(n))), ("list_functions", listed), ("other_sources", rest)):
        result[group] = {"tasks": len(members)}
        for name, (matrix, lower) in measures.items():
            result[group][name] = comparisons(matrix, n, members, lower)
            c = result[group][name]
            print(
                f"{group} ({len(members)}) {name}: trained paraphrase {c['trained_paraphrase']['mean']:.3f}, "
                f"unseen {c['unseen_paraphrase']['mean']:.3f}, other tasks {c['other_tasks']['mean']:.3f}; "
                f"retrieved {c['retrieved_from_unseen_paraphrase']:.0%} (chance {c['chance']:.1%})"
            )
    if mix is not None:
        result["gate_usage"] = usage(mix[:n])
        print(f"gate usage: {result['gate_usage']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
