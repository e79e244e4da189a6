"""routing.json -> routing.md (confusion matrix and frontier plots beside it) and a self-contained routing.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeadapt.reports.common import fmt_or_dash, png, pyplot, write_page
from edgeadapt.routing.registry import router_key


def own_kind(results: dict[str, Any]) -> str:
    """The kind of router the library ships (routing.json's config; `scar` before the key existed)."""
    return results["config"]["router"].get("kind", "scar")


def own_router(results: dict[str, Any]) -> str:
    """The library router's first seed, as routing.json names it."""
    return router_key(own_kind(results), results["seeds"][0])


def pm(s: dict | None, spec: str, scale: float = 1.0) -> str:
    if not s or s.get("mean") is None:
        return "—"
    return f"{format(s['mean'] * scale, spec)} ± {format(s['sd'] * scale, spec)}"


def goals(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, target, measured, met) for the issue's goals; met is None where nothing was measured."""
    summary, systems, cost = results["summary"], results["systems"], results["cost"]
    own = summary["routing"].get(own_kind(results), {})
    own_system = summary["systems"].get(own_kind(results), {})
    base = systems["base"]
    out = []

    def add(goal, target, value, fmt, met):
        out.append(
            (
                goal,
                target,
                "—" if value is None else format(value, fmt),
                None if value is None else met(value),
            )
        )

    add(
        "router macro-F1 (held-out prompts, null included)",
        "≥ 0.95",
        own.get("macro_f1", {}).get("mean"),
        ".3f",
        lambda v: v >= 0.95,
    )
    add(
        "general prompts sent to an adapter",
        "≤ 5%",
        own.get("general_to_adapter_rate", {}).get("mean"),
        ".1%",
        lambda v: v <= 0.05,
    )
    if "general_new_to_adapter_rate" in own:  # studies from before the set existed lack it
        add(
            "general prompts of kinds absent from training sent to an adapter",
            "≤ 5%",
            own["general_new_to_adapter_rate"].get("mean"),
            ".1%",
            lambda v: v <= 0.05,
        )
    add(
        "unknown-domain prompts sent to the base",
        "≥ 90%",
        own.get("unknown_to_base_rate", {}).get("mean"),
        ".1%",
        lambda v: v >= 0.9,
    )
    add(
        "every domain's accuracy as a share of its oracle",
        "≥ 97%",
        own_system.get("min_share_of_oracle", {}).get("mean"),
        ".1%",
        lambda v: v >= 0.97,
    )
    degr = own_system.get("general_degradation_pct", {})
    add(
        "general perplexity change against the base",
        "within seed noise",
        degr.get("mean"),
        "+.2f",
        lambda v: abs(v) <= max(2 * (degr.get("sd") or 0), 0.5),
    )
    add(
        "topic retention",
        "within seed noise of 1.0",
        own_system.get("topic_retention", {}).get("mean"),
        ".3f",
        lambda v: v >= 0.97,
    )
    fact = own_system.get("fact_recall", {}).get("mean")
    add(
        "fact recall against the base's",
        f"{base.get('fact_recall', 0):.1%}",
        fact,
        ".1%",
        lambda v: v >= base.get("fact_recall", 0) - 0.04,
    )
    add(
        "router p95 latency (2-core CPU)",
        "≤ 10 ms",
        cost["router_latency"]["p95_ms"],
        ".1f",
        lambda v: v <= 10,
    )
    add(
        "routed tokens/s vs one merged adapter",
        "≥ 90%",
        cost["tokens_per_s"]["ratio"],
        ".0%",
        lambda v: v >= 0.9,
    )
    lost = (systems[own_router(results)]["mean_accuracy"] - results["scale"]["mean_accuracy"]) * 100
    add(
        f"domain accuracy lost going to {results['scale']['experts']} experts",
        "≤ 3 points",
        lost,
        "+.1f",
        lambda v: v <= 3,
    )
    new = results.get("new_expert")
    if new:  # a router kind that takes new experts
        add(
            f"a new expert ({new['expert']}) joins without retraining: its prompts routed right",
            "—",
            new["accuracy_new"],
            ".1%",
            lambda v: True,
        )
    return out


def routing_lines(results: dict[str, Any]) -> list[str]:
    seeds = results["seeds"]
    lines = [
        f"# Adapter library and router (`{results['config']['name']}`)",
        "",
        f"- Model `{results['model'].get('name')}`; experts: "
        + ", ".join(
            f"{n} ({e['domain']}, r={e['rank']}, {e['train'].get('steps')} steps)"
            for n, e in results["library"]["experts"].items()
        )
        + f"; router seeds {seeds}; the study took {results['seconds']:.0f} s on {results['device']} with {results['torch_threads']} threads.",
        "",
        "## Goals",
        "",
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {g} | {t} | {m} | {'—' if ok is None else ('yes' if ok else 'no')} |"
        for g, t, m, ok in goals(results)
    ]
    lines += [
        "",
        "## Routing (held-out prompts)",
        "",
        "Mean ± standard deviation over the router seeds; single runs for the others.",
        "",
    ]
    kinds = list(next(iter(results["routing"].values()))["by_kind"])
    lines += [
        "| router | accuracy | macro-F1 | general → adapter | unknown → base | " + " | ".join(kinds) + " |",
        "|---" * (5 + len(kinds)) + "|",
    ]
    for kind, s in results["summary"]["routing"].items():
        lines.append(
            f"| {kind} (mean ± sd) | {pm(s['accuracy'], '.1%')} | {pm(s['macro_f1'], '.3f')} | {pm(s['general_to_adapter_rate'], '.1%')} | "
            f"{pm(s['unknown_to_base_rate'], '.1%')} |" + " |" * len(kinds)
        )
    for name, r in results["routing"].items():
        cells = " | ".join(fmt_or_dash(r["by_kind"].get(k, {}).get("accuracy"), ".1%") for k in kinds)
        lines.append(
            f"| {name} | {fmt_or_dash(r['accuracy'], '.1%')} | {r['macro_f1']:.3f} | {fmt_or_dash(r['general_to_adapter_rate'], '.1%')} | "
            f"{fmt_or_dash(r['unknown_to_base_rate'], '.1%')} | {cells} |"
        )
    lines += ["", "![confusion matrix and the frontier](plots/routing.png)", ""]
    if results.get("layers"):
        lines += [
            f"Which layer the query comes from ({own_kind(results)}, seed {seeds[0]}; layer 0: the token embeddings):",
            "",
            "| layer | accuracy | macro-F1 | general → adapter | unknown → base | latency p50 / p95 (ms) |",
            "|---|---|---|---|---|---|",
        ]
        for layer, r in results["layers"].items():
            lines.append(
                f"| {layer} | {r['accuracy']:.1%} | {r['macro_f1']:.3f} | {fmt_or_dash(r['general_to_adapter_rate'], '.1%')} | "
                f"{fmt_or_dash(r['unknown_to_base_rate'], '.1%')} | {r['latency']['p50_ms']:.1f} / {r['latency']['p95_ms']:.1f} |"
            )
        lines.append("")
    lines += system_lines(results) + cost_lines(results)
    return lines


def system_lines(results: dict[str, Any]) -> list[str]:
    systems = results["systems"]
    domains = results["library"]["domains"]
    lines = [
        "## The routed system against single models",
        "",
        "Every system on every domain's test set and on general text (the same suite as `compare`). Share of "
        "oracle: domain accuracy / the oracle's (its own expert on every domain request). GG and DSI from "
        "perplexities (S = 1/PPL).",
        "",
        "| system | mean acc | share of oracle (mean / min) | general PPL | general degr. | topic retention | fact recall | leakage | GG | DSI (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in systems.items():
        lines.append(
            f"| {name} | {m['mean_accuracy']:.1%} | {fmt_or_dash(m['mean_share_of_oracle'], '.1%')} / {fmt_or_dash(m['min_share_of_oracle'], '.1%')} | "
            f"{m['general_ppl']:.2f} | {m['general_degradation_pct']:+.2f}% | {fmt_or_dash(m['topic_retention'], '.3f')} | "
            f"{fmt_or_dash(m.get('fact_recall'), '.1%')} | {m['domain_leakage']:.1%} | {m['gg']:+.4f} | "
            f"{sum(d['dsi'] for d in m['domains'].values()) / len(m['domains']):.2f} |"
        )
    own = results["summary"]["systems"].get(own_kind(results))
    if own:
        lines += [
            "",
            f"The {own_kind(results)} router across {len(results['seeds'])} seeds: mean accuracy {pm(own['mean_accuracy'], '.1%')}, general degradation "
            f"{pm(own['general_degradation_pct'], '+.2f')}%, topic retention {pm(own['topic_retention'], '.3f')}, "
            f"fact recall {pm(own['fact_recall'], '.1%')}.",
        ]
    lines += [
        "",
        "Domain accuracy per system:",
        "",
        "| system | " + " | ".join(domains) + " |",
        "|---" * (len(domains) + 1) + "|",
    ]
    for name, m in systems.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{m['domains'][d]['domain_accuracy']:.1%}" for d in domains) + " |"
        )
    lines.append("")
    cdtr = results.get("transfer", {}).get("cdtr", {})
    if cdtr:
        lines += [
            "CDTR of the experts (row: the expert, column: the domain it is asked about):",
            "",
            "| expert | " + " | ".join(domains) + " |",
        ]
        lines.append("|---" * (len(domains) + 1) + "|")
        for i in domains:
            lines.append(
                f"| {i} | "
                + " | ".join("—" if i == j else fmt_or_dash(cdtr.get(i, {}).get(j), "+.3f") for j in domains)
                + " |"
            )
        lines.append("")
    return lines


def cost_lines(results: dict[str, Any]) -> list[str]:
    cost, scale_, new = results["cost"], results["scale"], results.get("new_expert")
    lat, tps, mem = cost["router_latency"], cost["tokens_per_s"], cost["weight_bytes"]
    return (
        [
            "## Cost and scale",
            "",
            f"- Router latency per request (batch 1): p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms over {lat['n']} prompts; "
            f"a 32-token answer of the base model takes {cost['answer_ms']:.0f} ms, so routing adds {cost['router_share_of_answer']:.1%} "
            f"(p95 {cost['router_p95_share_of_answer']:.1%}).",
            f"- Switching experts: {cost['switch_ms']['one']:.3f} ms (one adapter), {cost['switch_ms']['two']:.3f} ms (two, weighted).",
            f"- Generation: {tps['routed']:.1f} tokens/s with expert {tps['expert']} applied as an adapter against {tps['merged']:.1f} "
            f"merged into the base ({tps['ratio']:.0%}).",
            f"- Weights in memory: base {mem['base'] / 1e6:,.1f} MB; with {mem['experts']} experts {mem['with_experts'] / 1e6:,.1f} MB; "
            f"with {scale_['experts']} experts {scale_['weight_bytes'] / 1e6:,.1f} MB.",
            f"- {scale_['experts']} experts (every expert {scale_['experts'] // mem['experts']} times, a domain's prompts split among its copies): "
            f"routing accuracy on domain prompts {scale_['routing_accuracy_domain']:.1%}, mean domain accuracy {scale_['mean_accuracy']:.1%}.",
        ]
        + (
            [
                f"- A new expert joining: `{new['expert']}` added with its key at its prompts' centroid, no other key retrained: "
                f"{fmt_or_dash(new['accuracy_new'], '.1%')} of its test prompts and {fmt_or_dash(new['accuracy_others'], '.1%')} of the others routed right."
            ]
            if new
            else [f"- A new expert joining: the {own_kind(results)} router takes none without retraining."]
        )
        + (
            [f"- The library package (zstd): {results['package']['bytes'] / 1e6:,.2f} MB."]
            if results.get("package")
            else []
        )
        + [""]
    )


def plots(results: dict[str, Any]) -> bytes:
    plt = pyplot()

    seed0 = own_router(results)
    confusion = results["routing"][seed0]["confusion"]
    sweep = sweep_points(results)
    fig, axes = plt.subplots(1, 2 + bool(sweep), figsize=(6 * (2 + bool(sweep)), 4.8))
    ax = axes[0]
    ax.imshow(confusion["matrix"], cmap="Blues")
    classes = confusion["classes"]
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for y, row in enumerate(confusion["matrix"]):
        for x, value in enumerate(row):
            ax.text(x, y, str(value), ha="center", va="center", fontsize=8)
    ax.set(title=f"{seed0}: true (rows) vs routed (columns)")
    ax = axes[1]
    for i, (name, m) in enumerate(results["systems"].items()):
        ax.scatter([m["general_degradation_pct"]], [m["mean_accuracy"] * 100], color=f"C{i % 10}", label=name)
    ax.set(
        title="every domain: mean accuracy vs forgetting",
        xlabel="general perplexity change (%)",
        ylabel="mean domain accuracy (%)",
    )
    ax.legend(fontsize=7)
    if sweep:
        ax = axes[2]
        for i, (method, points) in enumerate(sweep.items()):
            ax.scatter(
                [p[0] for p in points],
                [p[1] for p in points],
                color=f"C{i}",
                alpha=0.6,
                label=f"{method} (sweep)",
            )
        domain = sweep_domain(results)
        for name in ("base", "oracle", seed0, "multitask", "merged_mean"):
            if name in results["systems"]:
                m = results["systems"][name]
                ax.scatter(
                    [m["general_degradation_pct"]],
                    [m["domains"][domain]["domain_accuracy"] * 100],
                    marker="*",
                    s=120,
                    label=name,
                )
        ax.set(
            title=f"{domain}: accuracy vs forgetting, with the learning-rate sweep",
            xlabel="general perplexity change (%)",
            ylabel="accuracy (%)",
        )
        ax.legend(fontsize=7)
    return png(fig)


def sweep_domain(results: dict[str, Any]) -> str:
    return "medical" if "medical" in results["library"]["domains"] else results["library"]["domains"][0]


def sweep_points(results: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """The single-model methods of a learning-rate sweep (router.sweep), as (degradation, accuracy %)."""
    path = results["config"]["router"].get("sweep")
    if not path or not Path(results["config"].get("base_dir", "."), path).is_file():
        return {}
    sweep = json.loads(Path(results["config"].get("base_dir", "."), path).read_text())
    points: dict[str, list[tuple[float, float]]] = {}
    for p in sweep["points"]:
        points.setdefault(p["method"], []).append((p["degradation"], p["accuracy"] * 100))
    return points


def write_routing_reports(run_dir: Path, results: dict[str, Any]) -> None:
    write_page(run_dir, "routing", routing_lines(results), plots(results))
