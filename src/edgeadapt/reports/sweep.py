"""sweep.json -> sweep.md (frontier plot beside it) and a self-contained sweep.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeadapt.reports.common import png, pyplot, write_page


def frontier_plot(sweep: dict[str, Any]) -> bytes:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (method, frontier) in enumerate(sweep["frontiers"].items()):
        points = [p for p in sweep["points"] if p["method"] == method]
        ax.errorbar(
            [p["degradation"] for p in points],
            [100 * p["accuracy"] for p in points],
            xerr=[p["spread"] for p in points],
            fmt="o",
            color=f"C{i}",
            alpha=0.45,
        )
        ax.plot(
            [p["degradation"] for p in frontier],
            [100 * p["accuracy"] for p in frontier],
            "-",
            color=f"C{i}",
            label=method,
        )
    ax.scatter(
        [0], [100 * sweep["base"]["domain_accuracy"]], marker="s", color="black", label="base", zorder=3
    )
    ax.set(
        title="domain accuracy vs forgetting (lines: Pareto frontier; dots: every point)",
        xlabel="general perplexity change (%)",
        ylabel="domain accuracy (%)",
    )
    ax.legend()
    return png(fig)


def markdown_lines(sweep: dict[str, Any]) -> list[str]:
    cfg, seeds = sweep["config"], sweep["seeds"]
    epochs = cfg["train"].get("epochs")
    budget = (
        f"{epochs:g} epoch(s) over each point's rows (its steps in the tables)"
        if epochs
        else f"steps {cfg['sweep']['steps'] or [cfg['train']['steps']]}"
    )
    lines = [
        f"# edgeadapt sweep `{cfg['name']}`",
        "",
        f"Model `{sweep['model'].get('name')}`, domain `{sweep['data']['domain']}`; learning rates × "
        f"{cfg['sweep']['lr_factors']} of each method's, {budget}, "
        f"seeds {seeds}. Base model: domain accuracy {sweep['base']['domain_accuracy']:.1%}.",
        "",
        "## Forgetting at matched skill",
        "",
        "General perplexity change each method needs to reach a domain accuracy, interpolated along its "
        "frontier (± the spread across seeds)."
        + (
            ""
            if len(seeds) > 1
            else " One seed: the spread is not measured, so small differences mean little."
        ),
        "",
    ]
    methods = list(sweep["frontiers"])
    lines += [
        "| target accuracy | " + " | ".join(methods) + " | verdict |",
        "|" + "---|" * (len(methods) + 2),
    ]
    for row in sweep["matched"]:
        cells = []
        for method in methods:
            at = row["methods"][method]
            if row.get("no_update_needed"):
                cells.append("—")
            else:
                cells.append(
                    "never reached" if at is None else f"{at['degradation']:+.1f}% ± {at['spread']:.1f}"
                )
        lines.append(
            f"| {row['target_accuracy']:.1%} ({row['share_of_best']:.0%} of best) | "
            + " | ".join(cells)
            + f" | {row['verdict']} |"
        )
    lines += ["", "![frontier](plots/sweep.png)", "", "## Every point", ""]
    grid = list(cfg["sweep"].get("grid") or {})
    lines += [
        "| method | lr | "
        + "".join(f"{k} | " for k in grid)
        + "steps | seeds | domain acc | general degr. | spread | topic retention | fact recall | frontier |",
        "|---|---|" + "---|" * len(grid) + "---|---|---|---|---|---|---|---|",
    ]
    on_frontier = {p["point"] for frontier in sweep["frontiers"].values() for p in frontier}
    for p in sorted(sweep["points"], key=lambda p: (p["method"], p["steps"], p["lr"], str(p.get("grid")))):
        retention = "—" if p["topic_retention"] is None else f"{p['topic_retention']:.2f}"
        facts = "—" if p["fact_recall"] is None else f"{p['fact_recall']:.1%}"
        values = "".join(f"{p.get('grid', {}).get(k)} | " for k in grid)
        lines.append(
            f"| {p['method']} | {p['lr']:.3g} | {values}{p['steps']} | {p['seeds']} | {p['accuracy']:.1%} | "
            f"{p['degradation']:+.1f}% | {p['spread']:.1f} | {retention} | {facts} | "
            f"{'yes' if p['point'] in on_frontier else ''} |"
        )
    return lines + [""] + curve_lines(sweep)


def curve_plot(sweep: dict[str, Any], key: str) -> bytes:
    """Domain accuracy and each forgetting signal against a swept key, one line per method point (error bars:
    the spread over seeds); the base model's level dashed. Log x where every value is a positive number."""
    plt = pyplot()

    base = sweep["base"]
    panels = [  # (curve field, spread field, scale, title, the base model's level)
        ("accuracy", "accuracy_spread", 100, "domain accuracy (%)", base.get("domain_accuracy")),
        ("degradation", "spread", 1, "general perplexity change (%)", 0.0),
        ("topic_retention", None, 1, "topic retention", 1.0),
        ("fact_recall", None, 100, "fact recall (%)", base.get("fact_recall")),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    rows_of = sweep["curves"][key]
    values = [r["value"] for rows in rows_of.values() for r in rows]
    log_x = all(isinstance(v, int | float) and v > 0 for v in values)
    for ax, (field, spread, scale, title, level) in zip(axes.flat, panels):
        for i, (name, rows) in enumerate(rows_of.items()):
            kept = [r for r in rows if r[field] is not None]
            ax.errorbar(
                [r["value"] for r in kept],
                [scale * r[field] for r in kept],
                yerr=[scale * r[spread] for r in kept] if spread else None,
                fmt="o-",
                color=f"C{i}",
                label=name,
                capsize=3,
            )
        if level is not None:
            ax.axhline(scale * level, color="black", linestyle="--", linewidth=1, label="base")
        ax.set(title=title, xlabel=key, xscale="log" if log_x else "linear")
    axes.flat[0].legend(fontsize=8)
    return png(fig)


def curve_lines(sweep: dict[str, Any]) -> list[str]:
    """Each method's outcomes against a swept key (the data-size curve), mean ± spread over seeds."""
    lines = []
    for key, per_point in (sweep.get("curves") or {}).items():
        lines += [
            f"## Against {key}",
            "",
            f"| method point | {key} | steps | domain acc | general degr. | topic retention | fact recall |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, rows in per_point.items():
            for r in rows:
                retention = "—" if r["topic_retention"] is None else f"{r['topic_retention']:.2f}"
                facts = "—" if r["fact_recall"] is None else f"{r['fact_recall']:.1%}"
                lines.append(
                    f"| {name} | {r['value']} | {r['steps']} | {r['accuracy']:.1%} ± {r['accuracy_spread']:.1%} | "
                    f"{r['degradation']:+.1f}% ± {r['spread']:.1f} | {retention} | {facts} |"
                )
        lines += ["", f"![against {key}](plots/sweep-{key}.png)", ""]
    return lines


def write_sweep_reports(run_dir: Path, sweep: dict[str, Any]) -> None:
    curves = {f"sweep-{key}": curve_plot(sweep, key) for key in sweep.get("curves") or {}}
    write_page(run_dir, "sweep", markdown_lines(sweep), frontier_plot(sweep), curves)
