"""A routed library on both device runtimes: the library `edgeadapt library build CONFIG` made, exported for
each runtime (`package export LIB --library [--runtime llamacpp]`), applied to a transformers device and to a
llama.cpp device (f16 base GGUF; experts as GGUF LoRAs at scale 0, the router's query read from the GGUF),
and asked, one request at a time as a device serves them, every domain's test questions and the requests a
device meets that belong on the base: the route study's held-out written general requests (`general`), the
general kinds absent from the router's training (`general_new`), general requests in a domain's words and
questions of subjects without an expert (`unknown`), beside the short, paraphrased and mixed domain cases.

Per runtime: the route each request took and its greedy answer; routing accuracy per kind, the share of
general requests sent to an adapter, each domain's accuracy (exact match, as the route study scores it);
across runtimes: routes and answers identical; on llama.cpp: every base-routed answer against the plain base
GGUF's (no adapter loaded), and the router's milliseconds per request against a 32-token answer's.

Run (a library built first; about 30 minutes on two cores):
`python bench/device_library.py configs/router.yaml [KEY=VALUE ...] [--out docs/results/device-library.json]
[--section]`
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ANSWER_TOKENS = 32  # the answer length the router's overhead is judged against


def requests(cfg, runs) -> list[dict]:
    """Every request with its label (an expert, null, or a+b), its kind and, for a domain question, its
    reference answer."""
    from edgeadapt.data.format import prompt_text, reference
    from edgeadapt.data.router_cases import cases_for, labels_of
    from edgeadapt.studies.router_data import general_texts, unknown_questions
    from edgeadapt.updates.library import expert_name

    out = [
        {"text": prompt_text(r), "label": expert_name(d), "kind": "domain", "domain": d, "ref": reference(r)}
        for d, run in runs.items()
        for r in run.data.test
    ]
    # the route study's held-out written general requests: every fifth, as RouterData.general_test
    out += [{"text": t, "label": "null", "kind": "general"} for t in general_texts(cfg, list(runs))[::5]]
    for kind, cases in cases_for(list(runs)).items():
        for text, label in cases:
            names = ["null" if d == "null" else expert_name(d) for d in labels_of(label)]
            out.append({"text": text, "label": "+".join(names), "kind": kind})
    out += [
        {"text": t, "label": "null", "kind": "unknown"}
        for t in unknown_questions(cfg.router.unknown_subjects)
    ]
    return out


def serve_all(server, asked: list[dict], tokens: int, log) -> list[dict]:
    said = []
    for i, request in enumerate(asked):
        start = time.perf_counter()
        answer, route = server.generate(request["text"], tokens)
        said.append({"answer": answer, "route": list(route.experts), "seconds": time.perf_counter() - start})
        if i % 100 == 99:
            log(f"  {i + 1}/{len(asked)} requests")
    return said


def router_ms(server, asked: list[dict]) -> list[float]:
    """The llama.cpp device's router alone: its query from the GGUF and its decision, per request."""
    from edgeadapt.data.format import prompt_ids
    from edgeadapt.routing.router import Request

    out = []
    for request in asked:
        ids = prompt_ids(server.tokenizer, [{"role": "user", "content": request["text"]}])
        start = time.perf_counter()
        server.router.route([Request(ids, request["text"])])
        out.append(1000 * (time.perf_counter() - start))
    return out


def plain_base_answers(device_dir: Path, asked: list[dict], tokens: int) -> list[str]:
    """The base GGUF alone (no adapter loaded), as a llama.cpp device with no update answers."""
    from edgeadapt.deploy.runtime import get_runtime

    server = get_runtime("llamacpp").serve(device_dir, None, None)
    return [server.generate(r["text"], tokens)[0] for r in asked]


def scores(asked: list[dict], said: list[dict], experts: list[str]) -> dict:
    from edgeadapt.evaluation.metrics import exact_match
    from edgeadapt.studies.routing import routes_report

    report = routes_report(
        [r["label"] for r in asked], [tuple(s["route"]) for s in said], [r["kind"] for r in asked], experts
    )
    by_domain: dict[str, list[bool]] = {}
    for request, answer in zip(asked, said):
        if request["kind"] == "domain":
            by_domain.setdefault(request["domain"], []).append(exact_match(answer["answer"], request["ref"]))
    report["domain_accuracy"] = {d: sum(v) / len(v) for d, v in by_domain.items()}
    report["domain_n"] = {d: len(v) for d, v in by_domain.items()}
    report["mean_domain_accuracy"] = statistics.mean(report["domain_accuracy"].values())
    return report


def base_routed(said: list[dict]) -> list[int]:
    return [i for i, s in enumerate(said) if not s["route"]]


def compare(asked: list[dict], said: dict[str, list[dict]], base_said: list[str]) -> dict:
    """`base_said`: the plain base GGUF's answers to the requests llama.cpp routed to the base, in order."""
    a, b = said["transformers"], said["llamacpp"]
    kinds = list(dict.fromkeys(r["kind"] for r in asked))
    on_base = base_routed(b)
    return {
        "routes_identical": {
            k: statistics.mean(a[i]["route"] == b[i]["route"] for i, r in enumerate(asked) if r["kind"] == k)
            for k in kinds
        },
        "answers_identical": {
            k: statistics.mean(
                a[i]["answer"] == b[i]["answer"] for i, r in enumerate(asked) if r["kind"] == k
            )
            for k in kinds
        },
        "routes_differing": [
            {"text": r["text"][:120], "transformers": a[i]["route"], "llamacpp": b[i]["route"]}
            for i, r in enumerate(asked)
            if a[i]["route"] != b[i]["route"]
        ][:20],
        "base_routed": len(on_base),
        "base_routed_identical_to_plain_base": sum(
            b[i]["answer"] == base_said[j] for j, i in enumerate(on_base)
        ),
        "base_routed_differing": [
            {"text": asked[i]["text"][:120], "routed": b[i]["answer"], "plain_base": base_said[j]}
            for j, i in enumerate(on_base)
            if b[i]["answer"] != base_said[j]
        ][:10],
    }


def arguments(parser) -> None:
    parser.add_argument(
        "--limit", type=int, default=0, help="ask only the first N requests of each kind (a try)"
    )
    parser.add_argument("--section", action="store_true")


def main() -> int:
    from edgeadapt.deploy import build, device
    from edgeadapt.deploy.library_packages import export_library
    from library_cli import open_library

    args, cfg, runs, library = open_library("docs/results/device-library.json", arguments)
    log = lambda m: print(m, flush=True)  # noqa: E731
    first = next(iter(runs.values()))
    asked = requests(cfg, runs)
    if args.limit:
        asked = [
            r
            for k in dict.fromkeys(x["kind"] for x in asked)
            for r in [x for x in asked if x["kind"] == k][: args.limit]
        ]
    tokens = cfg.eval.max_new_tokens
    report = {
        "date": str(datetime.now(timezone.utc).date()),
        "config": args.config,
        "overrides": args.overrides,
        "library": str(library.folder),
        "experts": list(library.experts),
        "router": library.router_id,
        "max_new_tokens": tokens,
        "requests": {k: sum(r["kind"] == k for r in asked) for k in dict.fromkeys(r["kind"] for r in asked)},
        "runtimes": {},
    }
    said = {}
    with tempfile.TemporaryDirectory(prefix="edgeadapt-devlib-") as tmp:
        for runtime in ("transformers", "llamacpp"):
            dev, package = Path(tmp) / runtime, Path(tmp) / f"{runtime}.eaupd"
            log(f"{runtime}: device, library package, {len(asked)} requests")
            device.init(dev, first.model_path, runtime=runtime, options={"model": cfg.model.name})
            export_library(library.folder, package, release=build.release(1), runtime=runtime)
            device.apply(package, dev, None, allow_unsigned=True)
            server = device.active_server(dev)
            said[runtime] = serve_all(server, asked, tokens, log)
            report["runtimes"][runtime] = scores(asked, said[runtime], list(library.experts))
            report["runtimes"][runtime]["package_bytes"] = package.stat().st_size
            if runtime == "llamacpp":
                ms = router_ms(server, asked)
                answer_ms = [1000 * s["seconds"] / tokens * ANSWER_TOKENS for s in said[runtime]]
                report["router_ms"] = {
                    "p50": statistics.median(ms),
                    "p95": statistics.quantiles(ms, n=20)[-1],
                    "share_of_32_token_answer": statistics.median(ms) / statistics.median(answer_ms),
                }
                on_base = [asked[i] for i in base_routed(said[runtime])]
                del server
                log(f"llamacpp: {len(on_base)} base-routed requests against the plain base GGUF")
                base_said = plain_base_answers(dev, on_base, tokens)
            else:
                del server
    report["compare"] = compare(asked, said, base_said)
    Path(args.out).write_text(json.dumps(report, indent=1))
    summary(report, log)
    if args.section:
        write(report)
    return 0


def summary(report: dict, log) -> None:
    for runtime, r in report["runtimes"].items():
        log(
            f"{runtime}: routing {r['accuracy']:.1%}, macro-F1 {r['macro_f1']:.3f}, general to adapter "
            f"{r['general_to_adapter_rate']:.1%}, mean domain acc {r['mean_domain_accuracy']:.1%} "
            + json.dumps({d: round(v, 3) for d, v in r["domain_accuracy"].items()})
        )
    c = report["compare"]
    log(f"routes identical: {json.dumps({k: round(v, 3) for k, v in c['routes_identical'].items()})}")
    log(f"answers identical: {json.dumps({k: round(v, 3) for k, v in c['answers_identical'].items()})}")
    log(f"base-routed = plain base: {c['base_routed_identical_to_plain_base']} of {c['base_routed']}")
    log(f"router: {json.dumps(report['router_ms'])}")


def write(report: dict) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from sections import write_section

    rt, c = report["runtimes"], report["compare"]
    kinds = list(report["requests"])
    lines = [
        "## A routed library on both device runtimes (`bench/device_library.py`)",
        "",
        f"- Date: {report['date']}; `{report['config']}` {' '.join(report['overrides'])}; experts: "
        f"{', '.join(report['experts'])}; greedy, {report['max_new_tokens']} tokens, one request at a time. "
        "Requests: " + ", ".join(f"{k} {n}" for k, n in report["requests"].items()) + ".",
        "",
        "| | transformers device | llama.cpp device | routes identical | answers identical |",
        "|---|---|---|---|---|",
    ]
    for kind in kinds:
        lines.append(
            f"| routing accuracy, {kind} ({report['requests'][kind]}) | {rt['transformers']['by_kind'][kind]['accuracy']:.1%} | "
            f"{rt['llamacpp']['by_kind'][kind]['accuracy']:.1%} | {c['routes_identical'][kind]:.1%} | "
            f"{c['answers_identical'][kind]:.1%} |"
        )
    for domain in rt["transformers"]["domain_accuracy"]:
        lines.append(
            f"| domain accuracy, {domain} ({rt['llamacpp']['domain_n'][domain]}) | {rt['transformers']['domain_accuracy'][domain]:.1%} | "
            f"{rt['llamacpp']['domain_accuracy'][domain]:.1%} | | |"
        )
    lines += [
        f"| general requests to an adapter | {rt['transformers']['general_to_adapter_rate']:.1%} | "
        f"{rt['llamacpp']['general_to_adapter_rate']:.1%} | | |",
        f"| macro-F1 | {rt['transformers']['macro_f1']:.3f} | {rt['llamacpp']['macro_f1']:.3f} | | |",
        "",
        f"On llama.cpp {c['base_routed_identical_to_plain_base']} of {c['base_routed']} base-routed answers are the "
        f"plain base GGUF's, character for character; the router took {report['router_ms']['p50']:.1f} ms p50 / "
        f"{report['router_ms']['p95']:.1f} ms p95 per request, {report['router_ms']['share_of_32_token_answer']:.1%} "
        "of a 32-token answer.",
        "",
    ]
    write_section("device_library", lines)


if __name__ == "__main__":
    sys.exit(main())
