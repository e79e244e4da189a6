"""transfer.json -> transfer.md (heat map PNG beside it) and a self-contained transfer.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeadapt.reports.common import fmt_or_dash, png, pyplot, write_page


def heatmap(results: dict[str, Any]) -> bytes:
    """Domain accuracy per method: rows the model (base, tuned on each domain), columns the test domain."""
    plt = pyplot()

    domains, variants = results["domains"], list(results["methods"])
    fig, axes = plt.subplots(1, len(variants), figsize=(3.6 * len(variants), 3.4), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        rows = [results["base"]] + [results["methods"][variant]["trained_on"][d] for d in domains]
        values = [[100 * r["domains"][j]["domain_accuracy"] for j in domains] for r in rows]
        ax.imshow(values, cmap="viridis", vmin=0, vmax=100)
        for y, row in enumerate(values):
            for x, value in enumerate(row):
                ax.text(
                    x, y, f"{value:.0f}", ha="center", va="center", color="white" if value < 60 else "black"
                )
        ax.set_xticks(range(len(domains)), domains)
        ax.set_yticks(range(len(rows)), ["base"] + [f"on {d}" for d in domains])
        ax.set(title=f"{variant}: accuracy %", xlabel="evaluated on")
    return png(fig)


def markdown_lines(results: dict[str, Any]) -> list[str]:
    domains = results["domains"]
    lines = [
        f"# edgeadapt transfer `{results['config']['name']}`",
        "",
        f"Model `{results['model'].get('name')}`; every method trained on each of {', '.join(domains)} "
        f"({results['config']['train']['steps']} steps each) and evaluated on every domain's test set and on "
        f"general text. Base general perplexity {results['base']['general_ppl']:.2f}.",
        "",
        "S = 1/PPL; DSI_i = [S_i(θ_i)/S_i(θ0)] / [S_G(θ_i)/S_G(θ0)]; GG_i = (S_G(θ0) − S_G(θ_i)) / S_G(θ0); "
        "CDTR(i→j) = (S_j(θ_i) − S_j(θ0)) / (S_j(θ_j) − S_j(θ0)); cross-domain accuracy: mean ± sample "
        "standard deviation of the off-diagonal accuracies.",
        "",
    ]
    header = (
        "| model | "
        + " | ".join(f"acc {d}" for d in domains)
        + " | "
        + " | ".join(f"PPL {d}" for d in domains)
    )
    for variant, m in results["methods"].items():
        metrics = m["metrics"]
        lines += [f"## {variant} (lr {m['lr']:g})", "", header + " | general PPL | DSI | GG |"]
        lines.append("|" + "---|" * (2 * len(domains) + 4))
        rows = [("base", results["base"], None)] + [(f"on {d}", m["trained_on"][d], d) for d in domains]
        for label, scores, trained_on in rows:
            accuracy = " | ".join(f"{scores['domains'][j]['domain_accuracy']:.1%}" for j in domains)
            ppl = " | ".join(f"{scores['domains'][j]['domain_ppl']:.2f}" for j in domains)
            extra = (
                f"{metrics['dsi'][trained_on]:.2f} | {metrics['gg'][trained_on]:+.3f}"
                if trained_on
                else "— | —"
            )
            lines.append(f"| {label} | {accuracy} | {ppl} | {scores['general_ppl']:.2f} | {extra} |")
        cross = metrics["cross_domain_accuracy"]
        lines += [
            "",
            f"Cross-domain accuracy {cross['mean']:.1%} ± {cross['std']:.1%} (n = {cross['n']}).",
            "",
        ]
        lines += [
            "| CDTR(i→j) | " + " | ".join(f"to {d}" for d in domains) + " |",
            "|" + "---|" * (len(domains) + 1),
        ]
        for i in domains:
            cells = [fmt_or_dash(metrics["cdtr"][i].get(j), ".2f") if j != i else "1 (own)" for j in domains]
            lines.append(f"| from {i} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines + ["![accuracy heat map](plots/transfer.png)", ""]


def write_transfer_reports(run_dir: Path, results: dict[str, Any]) -> None:
    write_page(run_dir, "transfer", markdown_lines(results), heatmap(results))
