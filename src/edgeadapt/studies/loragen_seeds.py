"""The LoRA-Gen study over seeds: runs of one config that differ only in `train.seed` (each with its own
`name=`), read as one. Every measurement is averaged over the seeds task by task and summarized as a single
run is (`loragen_summary.summarize`), so a paired standard error is over tasks whose scores are seed means;
beside the pooled summary stand each seed's own headline figures and their spread, so a reader sees whether
the seeds agree before trusting the mean."""

from __future__ import annotations

import statistics
from typing import Any

from edgeadapt.core.errors import UserError
from edgeadapt.studies.loragen_summary import BudgetKey, budget_key, budgets, summarize

NOT_AVERAGED = ("summary", "seconds", "seeds", "between_seeds")
"""Recomputed from the pooled measurements (summary), added up (seconds), or this module's own output."""
RECORDS = ("added", "multitask_added")
"""What bench/loragen_add.py recorded of a part it trained and measured anew (source file, date, seconds,
budget): a record, not a measurement, so not averaged. Pooled as each seed's, beside the budget they share
(seeds with different budgets are refused before pooling)."""


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def average(values: list[Any], where: str, left_out: list[str]) -> Any:
    """The mean of one measurement across seeds: numbers averaged, dicts key by key (a key some seed lacks is
    left out and named in `left_out`), lists of numbers element by element; text (sample answers) is the
    first seed's. A measurement some seed did not take (None) is None."""
    first = values[0]
    if any(v is None for v in values):
        return None
    if all(isinstance(v, dict) for v in values):
        keys = [k for k in first if all(k in v for v in values)]
        left_out += [
            f"{where}.{k}" for v in values for k in v if k not in keys and f"{where}.{k}" not in left_out
        ]
        return {
            k: pooled_record([v[k] for v in values])
            if k in RECORDS
            else average([v[k] for v in values], f"{where}.{k}", left_out)
            for k in keys
        }
    if all(is_number(v) for v in values):
        return sum(values) / len(values)
    if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        if all(is_number(x) for v in values for x in v):
            return [sum(column) / len(column) for column in zip(*values)]
    return first


def pooled_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each seed's record of a part added later, beside the budget they share (`budgets` reads it)."""
    budgets = [r.get("budget") for r in records]
    return {"budget": pooled_budget(budgets) if all(budgets) else budgets[0], "per_seed": records}


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """One run's figures that the study's conclusions rest on: every row's score per task group, and per
    generator its gap to the multi-task LoRA and to each control on seen tasks (points), its share of the
    per-task LoRA and of the in-context gain, and its generation time."""
    out: dict[str, Any] = {
        "score": {
            group: {label: row["score"] for label, row in table.items()}
            for group, table in summary["groups"].items()
        }
    }
    for spec, goals in summary["goals"].items():
        seen = summary["controls"][spec]["seen"]
        out[spec] = {
            "seen_vs_multitask_points": goals["seen_vs_multitask"]["gap_points"],
            "seen_control_gap_points": {k: seen[f"{k}_gap_points"] for k in ("random", "other", "shuffled")},
            "seen_vs_per_task": goals["seen_vs_per_task"],
            "heldout_in_context_gain_share": goals["heldout_in_context_gain_share"],
            "generation_ms": goals["generation_ms"],
        }
    return out


def spread_between(figures: list[Any]) -> Any:
    """Per figure of `headline`, its value in each seed, their mean and standard deviation."""
    if all(isinstance(f, dict) for f in figures):
        keys = [k for k in figures[0] if all(k in f for f in figures)]
        return {k: spread_between([f[k] for f in figures]) for k in keys}
    numbers = [f for f in figures if is_number(f)]
    return {
        "per_seed": figures,
        "mean": statistics.mean(numbers) if len(numbers) == len(figures) else None,
        "sd": statistics.stdev(numbers) if len(numbers) == len(figures) > 1 else None,
    }


def refuse_mixed_answering(runs: dict[str, dict[str, Any]]) -> None:
    """Refuses seeds answered in different precisions (`loragen.answer_precision`; fp32 in older files)."""
    answered = {label: run.get("answer_precision", "fp32") for label, run in runs.items()}
    if len(set(answered.values())) > 1:
        each = "; ".join(f"{label}: {precision}" for label, precision in answered.items())
        raise UserError(f"the seeds were answered in different precisions ({each}): measure them alike.")


def refuse_mixed_controls(runs: dict[str, dict[str, Any]]) -> None:
    """Refuses seeds whose controls were made from different texts: their average would be neither."""
    for spec in runs[next(iter(runs))]["generated"]:
        made_from = {
            label: run["generated"].get(spec, {}).get("controls_of", "the trained description")
            for label, run in runs.items()
        }
        if len(set(made_from.values())) > 1:
            each = "; ".join(f"{label}: {what}" for label, what in made_from.items())
            raise UserError(
                f"the seeds' controls for {spec} were made from different texts ({each}): measure the older "
                "run's generators again (`loragen eval ... --resume` does) before pooling."
            )


def refuse_mixed_budgets(runs: dict[str, dict[str, Any]]) -> None:
    """Refuses seeds whose generator, or whose multi-task LoRA, trained for different steps, batches,
    precision or batching (an 800-step generator averaged with a 400-step one is neither). A budget a file did
    not record (older files) cannot be checked and does not refuse."""
    for spec in runs[next(iter(runs))]["generated"]:
        for which, role in ((0, spec), (1, "multi-task LoRA")):
            recorded = {
                label: budget_key(budget)
                for label, run in runs.items()
                if spec in run["generated"] and (budget := budgets(run, spec)[which])
            }
            if len(set(recorded.values())) > 1:
                each = "; ".join(f"{label}: {budget_words(key)}" for label, key in recorded.items())
                raise UserError(
                    f"the seeds' {role} trained on different budgets ({each}): train them alike "
                    "(bench/loragen_add.py with the same loragen.steps) before pooling."
                )


def refuse_repeated_seeds(runs: dict[str, dict[str, Any]]) -> None:
    """Refuses two runs that trained on one seed (where their budgets record it: from 2026-12-06), which would
    read as two seeds' agreement."""
    seen: dict[int, str] = {}
    for label, run in runs.items():
        seed = (run.get("budget") or {}).get("seed")
        if seed in seen:
            raise UserError(
                f"{seen[seed]} and {label} both trained on seed {seed}: pool runs of different seeds"
            )
        if seed is not None:
            seen[seed] = label


def pooled_budget(budgets: list[dict[str, Any]]) -> dict[str, Any]:
    """The budget the seeds share (refused otherwise), with each seed in place of a mean of them."""
    shared = {k: v for k, v in budgets[0].items() if k != "seed"}
    seeds = [b.get("seed") for b in budgets]
    return shared if None in seeds else {**shared, "seeds": seeds}


def budget_words(key: BudgetKey) -> str:
    """A budget as the refusal says it: "800 steps of 16 in fp32", grouped by length where it was."""
    words = f"{key.steps} steps of {key.batch_size} in {key.precision}"
    return words + (", grouped by length" if key.group_by_length else "")


def pool_seeds(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`runs`: a label per seed (its file, say) -> that run's loragen.json. The pooled results, with a
    summary of their own, `seeds` (each run's headline figures), `between_seeds` (their spread) and
    `left_out` (measurements not every seed took, so not pooled)."""
    if len(runs) < 2:
        raise UserError("pooling seeds needs the results of at least two runs (one loragen.json per seed).")
    labels, results = list(runs), list(runs.values())
    for label, run in runs.items():
        if run["groups"] != results[0]["groups"]:
            raise UserError(
                f"{label} scored other tasks than {labels[0]}: seeds pool only runs of one config and "
                "collection (change train.seed and name=, nothing else)."
            )
    refuse_mixed_answering(runs)
    refuse_mixed_controls(runs)
    refuse_mixed_budgets(runs)
    refuse_repeated_seeds(runs)
    left_out: list[str] = []
    pooled = {
        key: average([r[key] for r in results], key, left_out)
        for key in results[0]
        if key not in NOT_AVERAGED and all(key in r for r in results)
    }
    if all(r.get("budget") for r in results):
        pooled["budget"] = pooled_budget([r["budget"] for r in results])
    pooled["seconds"] = sum(r.get("seconds") or 0 for r in results)
    pooled["summary"] = summarize(pooled)
    seeds = {label: headline(summarize(r)) for label, r in runs.items()}  # as this code summarizes
    pooled["seeds"] = seeds
    pooled["between_seeds"] = spread_between(list(seeds.values()))
    pooled["left_out"] = left_out
    return pooled
