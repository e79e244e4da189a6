"""The llama.cpp health check, run as a child process of `device apply` (`python -m
edgeadapt.deploy.runtimes.llamacpp_check JOB.json`), so that a GGUF which crashes llama.cpp's loader takes
only this process down. It loads the base and the update in llama.cpp and prints one JSON line: for each,
the perplexity on the health text (each token forced in turn, its log-probability as the model gave it),
whether every log-probability is finite, and its greedy answers to the health prompts; for a library,
whether each expert alone gives finite log-probabilities.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HEALTH_TOKENS = 8


def figures(llama, spec: dict, scales: list[float] | None) -> dict:
    logprobs = llama.token_logprobs(spec["text"], scales)
    answers, finite = [], all(map(math.isfinite, logprobs))
    for prompt in spec["prompts"]:
        ids, lps = llama.greedy(prompt, HEALTH_TOKENS, scales)
        finite = finite and all(map(math.isfinite, lps))
        answers.append(ids)
    ppl = math.exp(-sum(logprobs) / len(logprobs)) if logprobs and finite else math.inf
    return {"ppl": ppl, "finite": finite, "answer_ids": answers}


def main(job_path: str) -> int:
    from edgeadapt.deploy.llamacpp import LlamaCpp

    spec = json.loads(Path(job_path).read_text())
    update = spec["update"]
    report = {}
    with LlamaCpp(Path(spec["base"])) as base:
        report["base"] = figures(base, spec, None)
    if update.get("model"):
        with LlamaCpp(Path(update["model"])) as model:
            report["update"] = figures(model, spec, None)
    else:
        adapters = [Path(p) for p in update["adapters"]]
        with LlamaCpp(Path(spec["base"]), adapters) as llama:
            if update["kind"] == "library":
                report["experts"] = {}
                for i, path in enumerate(adapters):
                    alone = [1.0 if j == i else 0.0 for j in range(len(adapters))]
                    _, lps = llama.greedy(spec["prompts"][0], HEALTH_TOKENS, alone)
                    report["experts"][path.parent.name] = all(map(math.isfinite, lps))
                scales = [0.0] * len(adapters)  # the library's base route: the base itself
            else:
                scales = [spec["scale"]]
            report["update"] = figures(llama, spec, scales)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
