"""The LoRA-Gen study's markdown report (RUN/loragen.md): one table per task group, the controls, forgetting,
and each goal with whether it was met."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeadapt.core.config import RunConfig


def fmt(value, pattern="{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


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
    for spec, controls in s["controls"].items():
        lines += [
            f"## Does the description matter? (encoder {spec}; held-out and seen tasks)",
            "",
            "| adapter generated from | score % | gap to the right description, points |",
            "|---|---|---|",
            f"| the right description | {fmt(100 * controls['right'] if controls['right'] is not None else None)} | |",
        ]
        for kind in ("random", "other", "shuffled"):
            value = controls[kind]
            lines.append(
                f"| {kind} | {fmt(100 * value if value is not None else None)} | {fmt(controls[f'{kind}_gap_points'])} |"
            )
        lines.append("")
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
    lines += ["", "## Goals", ""]
    for spec, g in s["goals"].items():
        lines.append(
            f"- encoder {spec}: " + ", ".join(f"{k} {'met' if v else 'missed'}" for k, v in g["met"].items())
        )
    lines.append(f"\nStudy time: {results['seconds'] / 60:.1f} min.")
    out.write_text("\n".join(lines) + "\n")
    return out
