"""Report sections for shipping: update package sizes (`edgeadapt package sizes`) and the edge budget check
(`edgeadapt edge-check`)."""

from __future__ import annotations

from typing import Any

from edgeadapt.reports.common import fmt_or_dash

MB = 1e6


def package_lines(results: dict[str, Any]) -> list[str]:
    packages = results.get("packages")
    if not packages:
        return []
    full, paper = packages["full_model"], packages["paper"]
    lines = [
        "## Update packages",
        "",
        f"What a device downloads to move from the base model to a tuned one: the full model is "
        f"{full['fp32'] / MB:,.1f} MB in fp32 and {full['bf16'] / MB:,.1f} MB in bf16 ({full['params']:,} "
        f"parameters). The H-LoRA paper's figure for comparison: {paper['full_bytes'] / MB:,.0f} MB → "
        f"{paper['update_bytes'] / MB:,.0f} MB ({paper['update_bytes'] / paper['full_bytes']:.1%}). "
        "Cost: perplexity of the model with the update as a device restores it from the package, against the "
        "fp32 update, on the run's test sets.",
        "",
        "| method | dtype | package MB | zstd MB | % of fp32 model | domain PPL vs fp32 (%) | general PPL vs fp32 (%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in packages["rows"]:
        cost = row["dtype_cost"] or {}
        lines.append(
            f"| {row['variant']} | {row['dtype']} | {row['package_bytes'] / MB:,.2f} | "
            f"{row['compressed_bytes'] / MB:,.2f} | {row['package_bytes'] / full['fp32']:.1%} | "
            f"{fmt_or_dash(cost.get('domain_ppl_change_pct'), '+.2f')} | "
            f"{fmt_or_dash(cost.get('general_ppl_change_pct'), '+.2f')} |"
        )
    return lines + [""]


def edge_lines(results: dict[str, Any]) -> list[str]:
    edge = results.get("edge")
    if not edge:
        return []
    p = edge["profile"]
    lines = [
        "## Edge budget check",
        "",
        f"Profile `{edge['profile_name']}`: at most {p['max_params']:,} parameters, {p['max_memory_mb']:,} MB "
        f"of process memory, {p['max_ms_per_token']:g} ms per generated token. Each model runs as deployed "
        f"(merged; adaptq with its frozen blocks quantized) in a fresh process on {edge['device']} with "
        f"{edge['threads']} threads: greedy generation at batch 1, {edge['new_tokens']} tokens after a warm-up; "
        "memory is that process's peak resident set. llama.cpp: the same model exported to GGUF (f16) and timed "
        "by llama.cpp itself on the same threads (what a device running llama.cpp would see).",
        "",
        "| model | parameters | weights MB | peak memory MB | ms/token (median) | llama.cpp tokens/s (ms/token) | llama.cpp ms/token at 1 / 2 / 4 threads | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in edge["models"].items():
        verdict = "pass" if m["passed"] else "FAIL: " + ", ".join(m["failed"])
        llama = (
            f"{m['llamacpp_tokens_per_s']:.1f} ({m['llamacpp_ms_per_token']:.1f})"
            if m.get("llamacpp_tokens_per_s")
            else "—"
        )
        by_threads = m.get("llamacpp_by_threads") or {}
        threads = " / ".join(
            f"{by_threads[n]['ms_per_token']:.1f}" if n in by_threads else "—" for n in ("1", "2", "4")
        )
        lines.append(
            f"| {name} | {m['params']:,} | {m['weight_bytes'] / MB:,.1f} | {m['peak_rss_bytes'] / MB:,.0f} | "
            f"{m['ms_per_token']:.1f} | {llama} | {threads if by_threads else '—'} | {verdict} |"
        )
    return lines + [""]
