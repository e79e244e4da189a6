"""The LoRA-Gen study's summary: per task group and row, the mean score, prompt tokens and latency; the
controls; the paraphrase spread; and each goal of the study with whether it was met."""

from __future__ import annotations

import statistics
from typing import Any, NamedTuple


def row_tables(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Label -> task -> measurements, for every row of the study."""
    rows = dict(results["prompting"])
    for spec, generated in results["generated"].items():
        rows[f"generated[{spec}]"] = generated["tasks"]
    rows["multitask"] = results["lora"]["multitask"]
    rows["per-task"] = results["lora"]["per-task"]
    return rows


def generator_of(row: str) -> str | None:
    """The generator spec of a `row_tables` label ("generated[pool:minilm]" -> "pool:minilm"); None for the
    other rows."""
    return row[len("generated[") : -1] if row.startswith("generated[") and row.endswith("]") else None


def mean_of(table: dict[str, dict], names: list[str], key: str) -> float | None:
    values = [table[n][key] for n in names if n in table and isinstance(table[n].get(key), (int, float))]
    return sum(values) / len(values) if values else None


def group_summary(rows: dict[str, dict], names: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for label, table in rows.items():
        present = [n for n in names if n in table]
        if not present:
            continue
        out[label] = {
            "tasks": len(present),
            "score": mean_of(table, present, "score"),
            "prompt_tokens": mean_of(table, present, "prompt_tokens"),
            "prefill_ms": mean_of(table, present, "prefill_ms"),
            "total_ms": mean_of(table, present, "total_ms"),
        }
        out[label]["per_task"] = {n: table[n]["score"] for n in present}
    context = out.get("in-context", {}).get("total_ms")
    for label in out:
        total = out[label]["total_ms"]
        out[label]["total_vs_in_context"] = total / context if total and context else None
    return out


def spread(paraphrases: dict[str, list[float]], names: list[str]) -> dict[str, float | None]:
    ranges = [max(s) - min(s) for n, s in paraphrases.items() if n in names and len(s) > 1]
    stds = [statistics.stdev(s) for n, s in paraphrases.items() if n in names and len(s) > 1]
    return {
        "mean_range": sum(ranges) / len(ranges) if ranges else None,
        "mean_std": sum(stds) / len(stds) if stds else None,
    }


def control_summary(generated: dict[str, Any], names: list[str] | None = None) -> dict[str, Any]:
    """The mean score from the right description and from each control (over `names`, default every task
    with controls); per control the gap in points, and paired over tasks: its standard error, and how many
    tasks the right description won and lost (a gap inside two standard errors is no evidence)."""
    right = {
        n: r["score"]
        for n, r in generated["tasks"].items()
        if n in generated["controls"] and (names is None or n in names)
    }
    out: dict[str, Any] = {"tasks": len(right), "right": sum(right.values()) / len(right) if right else None}
    for kind in ("random", "other", "shuffled"):
        scores = {n: generated["controls"][n][kind] for n in right}
        gaps = [100 * (right[n] - scores[n]) for n in right]
        out[kind] = sum(scores.values()) / len(scores) if scores else None
        out[f"{kind}_gap_points"] = sum(gaps) / len(gaps) if gaps else None
        out[f"{kind}_gap_stderr"] = statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else None
        out[f"{kind}_wins_losses"] = [sum(g > 0 for g in gaps), sum(g < 0 for g in gaps)]
    return out


def paired_gap(better: dict[str, float], worse: dict[str, float]) -> dict[str, Any]:
    """Mean of better - worse in points over the tasks both scored, its standard error, wins and losses."""
    gaps = [100 * (better[n] - worse[n]) for n in better if n in worse]
    return {
        "tasks": len(gaps),
        "gap_points": sum(gaps) / len(gaps) if gaps else None,
        "gap_stderr": statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else None,
        "wins_losses": [sum(g > 0 for g in gaps), sum(g < 0 for g in gaps)],
    }


def beside_per_task(
    results: dict[str, Any], row: str, per_task: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Per task of `per_task` (its per-task LoRA's score, bench/loragen_per_task.py's), that score beside
    `row`'s and the multi-task LoRA's in the study `results`."""
    tables = row_tables(results)
    return {
        n: {"per-task": s, row: tables[row][n]["score"], "multitask": tables["multitask"][n]["score"]}
        for n, s in per_task.items()
    }


LIST_FUNCTIONS = "bigbench:list_functions"


def task_families(sources: dict[str, str]) -> dict[str, list[str]]:
    """The task families the per-task comparisons report, each sorted and non-empty: all tasks, the list
    functions (where only the description says what to do) and the rest; `sources`: task -> its source."""
    names = sorted(sources)
    lists = [n for n in names if sources[n] == LIST_FUNCTIONS]
    rest = [n for n in names if n not in lists]
    groups = {"all": names, "list functions": lists, "all but the list functions": rest}
    return {label: group for label, group in groups.items() if group}


def per_task_figures(scores: dict[str, dict[str, float]], row: str, names: list[str]) -> dict[str, Any]:
    """Over `names` of `scores` (`beside_per_task`'s): each column's mean in points, `row`'s and the multi-task
    LoRA's share of the per-task LoRAs' mean (None when that is 0) and the paired gaps between the three."""
    column = {k: {n: scores[n][k] for n in names} for k in ("per-task", row, "multitask")}
    mean = {k: 100 * sum(v.values()) / len(v) for k, v in column.items()}
    return {
        "tasks": len(names),
        "means": mean,
        "generated_share": mean[row] / mean["per-task"] if mean["per-task"] else None,
        "multitask_share": mean["multitask"] / mean["per-task"] if mean["per-task"] else None,
        "generated_vs_per_task": paired_gap(column[row], column["per-task"]),
        "multitask_vs_per_task": paired_gap(column["multitask"], column["per-task"]),
        "generated_vs_multitask": paired_gap(column[row], column["multitask"]),
    }


def equal_length_parts(
    context: dict[str, dict], generated: dict[str, dict], names: list[str]
) -> list[tuple[float, float, float, float]]:
    """Per task, in-context's prefill and answer ms, and the generated adapter's prefill and answer ms had it
    answered as many tokens as the prompted base did (its own time per new token); tasks where either wrote
    no token are left out."""
    parts = []
    for n in names:
        c, g = context.get(n, {}), generated.get(n, {})
        if min(c.get("new_tokens") or 0, g.get("new_tokens") or 0) < 1:
            continue
        per_token = (g["total_ms"] - g["prefill_ms"]) / g["new_tokens"]
        parts.append(
            (c["prefill_ms"], c["total_ms"] - c["prefill_ms"], g["prefill_ms"], per_token * c["new_tokens"])
        )
    return parts


def equal_length_speedup(
    context: dict[str, dict], generated: dict[str, dict], names: list[str]
) -> float | None:
    """In-context total latency over the generated adapter's had it answered as long as the prompted base did:
    the ratio of the means over tasks. Tuned models stop after short answers where the prompted base runs
    on: this is the part of the speed-up that is not answer length."""
    parts = equal_length_parts(context, generated, names)
    return sum(p + a for p, a, _, _ in parts) / sum(p + a for _, _, p, a in parts) if parts else None


def equal_length_ceiling(
    context: dict[str, dict], generated: dict[str, dict], names: list[str]
) -> float | None:
    """The most the equal-length speed-up can be at any answer length (every task's scaled alike): it is the
    mediant of the prefill ratio and the answer-time ratio, so it lies between them, nearing the prefill
    ratio as answers shrink and the answer-time ratio as they grow. Under 2, no adapter that takes the
    description out of the prompt answers twice as fast at equal length on these prompts, however good."""
    parts = equal_length_parts(context, generated, names)
    if not parts:
        return None
    prefill = sum(p for p, _, _, _ in parts) / sum(p for _, _, p, _ in parts)
    answer = sum(a for _, a, _, _ in parts) / sum(a for _, _, _, a in parts)
    return max(prefill, answer)


MIN_GAIN_TASKS = 5
"""Held-out tasks where the base gains from the description needed before the share of that gain recovered
is a goal met or missed (issue 33 asks for at least five); with fewer it is reported, undecided (None)."""


def in_context_gain(results: dict[str, Any], spec: str, names: list[str]) -> dict[str, Any]:
    """Per task where the base gains from reading the description (in-context above zero-shot), the share of
    that gain the generated adapter recovers, (generated - zero-shot) / (in-context - zero-shot)."""
    zero, context = results["prompting"].get("zero-shot", {}), results["prompting"].get("in-context", {})
    generated = results["generated"][spec]["tasks"]
    shares = {
        n: (generated[n]["score"] - zero[n]["score"]) / (context[n]["score"] - zero[n]["score"])
        for n in names
        if n in generated and n in zero and n in context and context[n]["score"] > zero[n]["score"]
    }
    return {
        "tasks_with_gain": len(shares),
        "tasks": len(names),
        "mean_share": sum(shares.values()) / len(shares) if shares else None,
        "per_task": shares,
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    rows = row_tables(results)
    summary: dict[str, Any] = {"groups": {}, "controls": {}, "spread": {}, "goals": {}}
    for group, names in results["groups"].items():
        summary["groups"][group] = group_summary(rows, names)
    for spec, generated in results["generated"].items():
        summary["controls"][spec] = {
            "all": control_summary(generated),
            **{g: control_summary(generated, results["groups"][g]) for g in ("heldout", "seen")},
        }
        summary["spread"][spec] = {
            g: spread(generated["paraphrases"], n) for g, n in results["groups"].items()
        }
        summary.setdefault("in_context_gain", {})[spec] = {
            g: in_context_gain(results, spec, results["groups"][g]) for g in ("heldout", "seen")
        }
        summary["goals"][spec] = goals(summary, results, spec)
    return summary


def goals(summary: dict[str, Any], results: dict[str, Any], spec: str) -> dict[str, Any]:
    label = f"generated[{spec}]"
    held = summary["groups"]["heldout"]
    gen, context = held.get(label, {}), held.get("in-context", {})
    seen_names = [n for n in results["groups"]["seen"] if n in results["lora"]["per-task"]]
    gen_seen = mean_of(results["generated"][spec]["tasks"], seen_names, "score")
    per_seen = mean_of(results["lora"]["per-task"], seen_names, "score")
    forget = results["forgetting"]
    controls = summary["controls"][spec]["all"]
    seen_controls = summary["controls"][spec]["seen"]
    ms = results["generated"][spec]["generation_ms"]["total_ms"]
    generated = results["generated"][spec]["tasks"]  # a seen task with no unseen paraphrase has no row
    seen_scores = {n: generated[n]["score"] for n in results["groups"]["seen"] if n in generated}
    multitask = {n: r["score"] for n, r in results["lora"]["multitask"].items()}
    vs_multitask = paired_gap(seen_scores, multitask)
    gain = summary["in_context_gain"][spec]["heldout"]

    def ratio(a, b):
        return a / b if a is not None and b else None

    timed_beside = results["generated"][spec].get("in_context_latency")
    timing = timed_beside or results["prompting"].get("in-context", {})
    out = {
        "heldout_score_vs_in_context": ratio(gen.get("score"), context.get("score")),
        "heldout_latency_speedup": ratio(
            mean_of(timing, results["groups"]["heldout"], "total_ms"), gen.get("total_ms")
        ),
        "heldout_latency_speedup_equal_length": equal_length_speedup(
            timing, results["generated"][spec]["tasks"], results["groups"]["heldout"]
        ),
        "heldout_latency_ceiling_equal_length": equal_length_ceiling(
            timing, results["generated"][spec]["tasks"], results["groups"]["heldout"]
        ),
        # False in files from before 2026-12-05: in-context timed in the prompting part, perhaps another session
        "in_context_timed_beside": bool(timed_beside),
        "seen_vs_per_task": ratio(gen_seen, per_seen),
        "seen_tasks_with_per_task": len(seen_names),
        "general_ppl_generated": forget.get(label, {}).get("general_ppl"),
        "general_ppl_multitask": forget.get("multitask", {}).get("general_ppl"),
        "forgetting_no_worse": no_worse_forgetting(forget.get(label), forget.get("multitask")),
        "generation_ms": ms,
        "control_gaps_points": {k: controls[f"{k}_gap_points"] for k in ("random", "other", "shuffled")},
        "seen_vs_multitask": vs_multitask,
        "heldout_in_context_gain_share": gain["mean_share"],
        "heldout_tasks_with_gain": gain["tasks_with_gain"],
        "same_budget_as_multitask": same_budget(*budgets(results, spec)),
    }

    def beyond_two_se(gap, stderr, floor=0.0):
        return gap is not None and stderr is not None and gap >= floor and gap > 2 * stderr

    out["met"] = {
        "heldout_90pct_of_in_context": (out["heldout_score_vs_in_context"] or 0) >= 0.9,
        "heldout_2x_faster": (out["heldout_latency_speedup"] or 0) >= 2.0,
        "heldout_2x_faster_equal_length": (out["heldout_latency_speedup_equal_length"] or 0) >= 2.0,
        "seen_within_5pct_of_per_task": out["seen_vs_per_task"] is not None
        and out["seen_vs_per_task"] >= 0.95,
        "forgetting_no_worse_than_multitask": None
        if out["forgetting_no_worse"] is None
        else all(out["forgetting_no_worse"].values()),
        "generation_under_50ms": ms <= 50,
        "description_matters_2_points": all(
            gap is not None and gap >= 2 for gap in out["control_gaps_points"].values()
        ),
        # the pool generator's goals (docs/LORAGEN.md): seen tasks, held-out gain, a looser time budget
        "seen_90pct_of_per_task": out["seen_vs_per_task"] is not None and out["seen_vs_per_task"] >= 0.9,
        "seen_beats_multitask_2se": beyond_two_se(vs_multitask["gap_points"], vs_multitask["gap_stderr"]),
        "seen_controls_5_points_2se": all(
            beyond_two_se(seen_controls[f"{k}_gap_points"], seen_controls[f"{k}_gap_stderr"], 5.0)
            for k in ("random", "other", "shuffled")
        ),
        "heldout_half_in_context_gain": None
        if gain["tasks_with_gain"] < MIN_GAIN_TASKS
        else gain["mean_share"] >= 0.5,
        "generation_under_100ms": ms <= 100,
    }
    return out


def budgets(results: dict[str, Any], spec: str) -> tuple[dict | None, dict | None]:
    """(generator's, multi-task LoRA's) training budget: an addition's own (`bench/loragen_add.py`), else the
    study's; None where neither is recorded (files measured before budgets were)."""
    study = results.get("budget") or None
    generator = results["generated"][spec].get("added", {}).get("budget") or study
    multitask = results["lora"].get("multitask_added", {}).get("budget") or study
    return generator, multitask


def same_budget(generator: dict | None, multitask: dict | None) -> bool | None:
    """Whether the generator and the multi-task LoRA trained for the same steps on the same batch in the same
    precision (their learning rates are their own); None when either budget is unknown."""
    if not generator or not multitask:
        return None
    return budget_key(generator) == budget_key(multitask)


class BudgetKey(NamedTuple):
    """What makes two trainings one budget."""

    steps: int
    batch_size: int
    precision: str
    group_by_length: bool


def budget_key(budget: dict[str, Any]) -> BudgetKey:
    """A recorded budget's key. A budget recorded before precision was is fp32 (every LoRA-Gen result before it
    was trained on the CPU, where fp32 was the only choice); one recorded before batching was, random batches."""
    return BudgetKey(
        budget["steps"],
        budget["batch_size"],
        budget.get("precision", "fp32"),
        budget.get("group_by_length", False),
    )


def no_worse_forgetting(generated: dict | None, multitask: dict | None) -> dict[str, bool] | None:
    """Per measure of general ability, whether the generated adapters keep it as well as the multi-task LoRA
    does (perplexity no higher; topic retention and fact recall no lower); None before both are measured."""
    if not generated or not multitask:
        return None
    return {
        "general_ppl": generated["general_ppl"] <= multitask["general_ppl"],
        "on_topic_rate": generated["on_topic_rate"] >= multitask["on_topic_rate"],
        "fact_recall": generated["fact_recall"] >= multitask["fact_recall"],
    }
