"""The `analysis` section of a run's report: update spectra, per-layer drift, and the rank recommendation."""

from __future__ import annotations

from typing import Any

from edgeadapt.reports.common import fmt_or_dash


def analysis_lines(results: dict[str, Any]) -> list[str]:
    analysis = results.get("analysis")
    if not analysis:
        return []
    lines = [
        "## What the updates look like",
        "",
        f"Weight updates ΔW per linear module (LoRA: scaling·B·A; SFT and adaptq: tuned − base). Effective "
        f"rank exp(H(σ/Σσ)) and stable rank ‖ΔW‖F²/‖ΔW‖₂² are means over modules; overlap is the share of "
        f"ΔW's top-{analysis['top_k']} output directions inside the base weight's top-{analysis['top_k']} "
        f"subspace. On {analysis['chunks']} chunks of general text: Jensen–Shannon divergence of attention "
        "maps from the base (nats, mean over layers) and linear CKA of hidden states with the base's.",
        "",
        "| method | modules | eff. rank | stable rank | overlap | attention JS | CKA mean | CKA min | domain acc "
        "| out-of-domain acc | general degr. |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, a in analysis["methods"].items():
        s, m = a["summary"], results["methods"][name]
        lines.append(
            f"| {name} | {s['modules_updated']} | {fmt_or_dash(s['mean_effective_rank'], '.1f')} | "
            f"{fmt_or_dash(s['mean_stable_rank'], '.2f')} | {fmt_or_dash(s['mean_subspace_overlap'], '.3f')} | "
            f"{fmt_or_dash(s['mean_attention_js'], '.2e')} | {fmt_or_dash(s['mean_cka'], '.3f')} | {fmt_or_dash(s['min_cka'], '.3f')} | "
            f"{m['domain_accuracy']:.1%} | {fmt_or_dash(m.get('out_of_domain_accuracy'), '.1%')} | "
            f"{m['general_degradation_pct']:+.1f}% |"
        )
    advice = analysis.get("recommendation")
    if advice:
        lines.append("")
        if advice["variant"]:
            lines.append(
                f"**Rank for a {advice['budget_pct']:g}% forgetting budget: `{advice['variant']}`** (rank "
                f"{advice['rank']}, scaling {advice['scaling']}): {advice['domain_accuracy']:.1%} domain accuracy at "
                f"{advice['general_degradation_pct']:+.1f}% general perplexity; {advice['within_budget']} of "
                f"{advice['candidates']} LoRA-family variants stayed within the budget. One seed: differences "
                "of a few points are within noise."
            )
        else:
            lines.append(
                f"**No rank recommended** for a {advice['budget_pct']:g}% forgetting budget: {advice['reason']} "
                f"({advice['within_budget']} of {advice['candidates']} LoRA-family variants within the budget)."
            )
            nearest = advice.get("nearest")
            if nearest:
                lines[-1] += (
                    f" The least forgetting among the variants that learned anything: `{nearest['variant']}`, "
                    f"{nearest['domain_accuracy']:.1%} domain accuracy at {nearest['general_degradation_pct']:+.1f}% "
                    "general perplexity: the budget a LoRA-family variant of this run needed."
                )
    ranks = ["", "![outcomes and update shape by rank](plots/ranks.png)"] if rank_series(results) else []
    return lines + [
        *ranks,
        "",
        "![update spectra](plots/spectra.png)",
        "",
        "![per-layer drift](plots/drift.png)",
        "",
    ]


def rank_series(results: dict[str, Any]) -> dict[str, list[tuple[int, str]]]:
    """LoRA-family variants by scaling, as (rank, variant) sorted by rank; empty unless ranks differ."""
    series: dict[str, list[tuple[int, str]]] = {}
    for name, m in results["methods"].items():
        options = m.get("options", {})
        if options.get("rank") and name in results.get("analysis", {}).get("methods", {}):
            series.setdefault(options.get("scaling", "standard"), []).append((options["rank"], name))
    ranks = {rank for points in series.values() for rank, _ in points}
    return {k: sorted(v) for k, v in series.items()} if len(ranks) > 1 else {}


def rank_plot(plt, results: dict[str, Any], png) -> dict[str, bytes]:
    """A rank sweep at a glance: outcomes and update shape against the rank, one line per scaling; analysed
    variants without a rank (full-rank updates such as SFT) as horizontal lines where the run has them."""
    series = rank_series(results)
    if not series:
        return {}
    methods, analysis = results["methods"], results["analysis"]["methods"]
    panels = [
        ("domain accuracy (%)", lambda n: methods[n]["domain_accuracy"] * 100),
        ("general perplexity change (%)", lambda n: methods[n]["general_degradation_pct"]),
        ("effective rank of ΔW (mean)", lambda n: analysis[n]["summary"]["mean_effective_rank"]),
        ("stable rank of ΔW (mean)", lambda n: analysis[n]["summary"]["mean_stable_rank"]),
    ]
    full = [n for n, m in methods.items() if not m.get("options", {}).get("rank") and n in analysis]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 3.6))
    for ax, (title, value) in zip(axes, panels):
        for scaling, points in series.items():
            ax.plot([r for r, _ in points], [value(n) for _, n in points], marker="o", label=scaling)
        for name in full:
            ax.axhline(value(name), color="black", ls="--", lw=1, label=name)
        ax.set(title=title, xlabel="LoRA rank", xscale="log")
        ax.legend(fontsize=7)
    return {"ranks.png": png(fig)}


def analysis_plots(plt, analysis: dict[str, Any], png) -> dict[str, bytes]:
    """Spectra (normalized singular values of ΔW, averaged over modules) and per-layer drift."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, a in analysis["methods"].items():
        spectra = [
            m["singular_values"] for m in a["modules"] if m["singular_values"] and m["singular_values"][0] > 0
        ]
        if not spectra:
            continue
        width = min(len(s) for s in spectra)
        mean = [sum(s[i] / s[0] for s in spectra) / len(spectra) for i in range(width)]
        ax.plot(range(1, width + 1), mean, label=name)
    ax.set(
        title="update spectra (σ_i/σ_1, mean over modules)",
        xlabel="singular value index",
        ylabel="σ_i / σ_1",
        yscale="log",
    )
    ax.legend(fontsize=7)
    out = {"spectra.png": png(fig)}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, a in analysis["methods"].items():
        layers = [r["layer"] for r in a["layers"]]
        axes[0].plot(layers, [r["cka"] for r in a["layers"]], label=name)
        axes[1].plot(layers, [r["attention_js"] for r in a["layers"]], label=name)
        axes[2].plot(
            layers, [r["attention_entropy"] - r["attention_entropy_base"] for r in a["layers"]], label=name
        )
    for ax, title in zip(
        axes,
        (
            "hidden-state CKA with the base",
            "attention JS divergence from the base",
            "attention entropy change",
        ),
    ):
        ax.set(title=title, xlabel="layer")
        ax.legend(fontsize=7)
    out["drift.png"] = png(fig)
    return out
