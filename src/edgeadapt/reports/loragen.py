"""The LoRA-Gen study's markdown report (RUN/loragen.md): one table per task group, the controls, forgetting,
and each goal with whether it was met."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeadapt.core.config import RunConfig


def fmt(value, pattern="{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def pct(value) -> str:
    return fmt(100 * value if value is not None else None)


def control_lines(spec: str, by_group: dict[str, dict]) -> list[str]:
    """Score from the right description and from each control, per task group; the gap with its paired
    standard error over tasks, and the tasks the right description won / lost."""
    lines = [
        f"## Does the description matter? (encoder {spec})",
        "",
        "| tasks | right description % | control | control % | gap, points (± s.e.) | tasks won / lost |",
        "|---|---|---|---|---|---|",
    ]
    for group, c in by_group.items():
        for kind in ("random", "other", "shuffled"):
            won, lost = c[f"{kind}_wins_losses"]
            lines.append(
                f"| {group} ({c['tasks']}) | {pct(c['right'])} | {kind} | {pct(c[kind])} "
                f"| {fmt(c[f'{kind}_gap_points'])} ± {fmt(c[f'{kind}_gap_stderr'])} | {won} / {lost} |"
            )
    return [*lines, ""]


def spread_lines(spec: str, spread: dict[str, dict]) -> list[str]:
    """How much the score moves between the texts of one description (the description and paraphrases)."""
    lines = [
        f"Paraphrase spread (encoder {spec}), per task, the score's range and standard deviation across its texts, averaged:",
        "",
    ]
    for group, s in spread.items():
        if s["mean_range"] is not None:
            lines.append(f"- {group}: range {pct(s['mean_range'])} points, s.d. {pct(s['mean_std'])} points")
    return [*lines, ""]


def per_task_lines(results: dict[str, Any], group: str) -> list[str]:
    """Every row's score on every task of the group, one line per task."""
    table = results["summary"]["groups"][group]
    labels = list(table)
    lines = ["| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name in results["groups"][group]:
        cells = [pct(table[label]["per_task"].get(name)) for label in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_report(results: dict[str, Any], cfg: RunConfig, out: Path) -> Path:
    s = results["summary"]
    lines = [f"# LoRA-Gen study: {cfg.name} ({cfg.model.name})", ""]
    for group, table in s["groups"].items():
        lines += [
            f"## {group} tasks ({len(results['groups'][group])})",
            "",
            "| row | score % | prompt tokens | prefill ms | total ms | total vs in-context |",
            "|---|---|---|---|---|---|",
        ]
        for label, r in table.items():
            lines.append(
                f"| {label} | {fmt(100 * r['score'] if r['score'] is not None else None)} | {fmt(r['prompt_tokens'], '{:.0f}')} "
                f"| {fmt(r['prefill_ms'])} | {fmt(r['total_ms'])} | {fmt(r['total_vs_in_context'], '{:.2f}x')} |"
            )
        lines.append("")
        if group == "heldout":
            lines += ["Per held-out task, score %:", "", *per_task_lines(results, group)]
    for spec, by_group in s["controls"].items():
        lines += control_lines(spec, by_group) + spread_lines(spec, s["spread"][spec])
    lines += [
        "## Forgetting of general ability",
        "",
        "| model | general PPL | on-topic | leakage | fact recall |",
        "|---|---|---|---|---|",
    ]
    for label, f in results["forgetting"].items():
        if isinstance(f, dict):
            lines.append(
                f"| {label} | {fmt(f.get('general_ppl'), '{:.2f}')} | {fmt(f.get('on_topic_rate'), '{:.2f}')} "
                f"| {fmt(f.get('domain_leakage'), '{:.2f}')} | {fmt(f.get('fact_recall'), '{:.2f}')} |"
            )
    lines += ["", "## The in-context gain recovered", ""]
    for spec, by_group in s.get("in_context_gain", {}).items():
        for group, gain in by_group.items():
            share = gain["mean_share"]
            lines.append(
                f"- {spec}, {group}: {gain['tasks_with_gain']} of {gain['tasks']} tasks gain from the description "
                f"in context; the generated adapter recovers {pct(share)}% "
                "of that gain on average ((generated - zero-shot) / (in-context - zero-shot))"
            )
    lines += ["", "## Requests at equal answer length (held out)", ""]
    for spec, g in s["goals"].items():
        speedup = fmt(g.get("heldout_latency_speedup_equal_length"), "{:.2f}x")
        lines.append(
            f"- {spec}: {speedup} faster than in-context; "
            f"at most {fmt(g.get('heldout_latency_ceiling_equal_length'), '{:.2f}x')} at any answer length "
            "for any adapter that takes the description out of these prompts (the larger of the prefill and "
            "per-token ratios)"
        )
    lines += ["", "## Goals", ""]
    for spec, g in s["goals"].items():
        lines.append(f"- encoder {spec}: " + ", ".join(f"{k} {verdict(v)}" for k, v in g["met"].items()))
    lines.append(f"\nStudy time: {results['seconds'] / 60:.1f} min.")
    out.write_text("\n".join(lines) + "\n")
    return out


def verdict(met: bool | None) -> str:
    """A goal met, missed, or undecided (None: these results cannot judge it, e.g. too few tasks)."""
    return "undecided" if met is None else ("met" if met else "missed")


def goal_lines(summary: dict[str, Any], specs: list[str]) -> list[str]:
    """One terminal line per goal of each generator in `specs`: yes, no, or - (undecided)."""
    return [
        f"{'yes' if met else ('no ' if met is not None else '-  ')} {goal} (encoder {spec})"
        for spec in specs
        for goal, met in summary["goals"][spec]["met"].items()
    ]
