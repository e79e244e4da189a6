"""llama.cpp itself, through the prebuilt `xllamacpp` wheel (`pip install --no-deps xllamacpp==2026.10.11549`):
load an exported GGUF (and a GGUF LoRA on top), answer greedily from token ids, and time it.

Greedy is temperature 0 and top-k 1; the answer's token ids come back through `logprobs`, so they can be
compared with transformers' token for token.

LoRA adapters are loaded at scale 0 (`lora_init_without_apply`) and every request names every adapter's
scale (llama.cpp's per-request `lora` field): a request without the field, after one that scaled an
adapter, answered with neither the base's log-probabilities nor the adapter's (tests/test_llamacpp.py pins
both behaviours). Every request asks for its prompt computed whole (`cache_prompt` off): with the prompt
cache, answers depended on the requests before them. The log-probability of a given text comes from forcing
each of its tokens in turn with a logit bias: llama.cpp reports the chosen token's log-probability before
the bias (also pinned by a test).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError
from edgeadapt.data.format import IGNORE_INDEX

INSTALL = "pip install --no-deps xllamacpp==2026.10.11549"


def runtime():
    try:
        import xllamacpp
    except ImportError:
        raise UserError(
            f"llama.cpp's Python runtime is not installed: run `{INSTALL}` (`make install` does)."
        ) from None
    return xllamacpp


class LlamaCpp:
    """One GGUF model in llama.cpp, with any number of GGUF LoRAs applied per request at the scales a request
    names (`lora`: one path, applied at `scale` unless a request says otherwise, or a list), on `threads` CPU
    threads."""

    def __init__(
        self,
        model: Path,
        lora: Path | list[Path] | None = None,
        threads: int = 1,
        n_ctx: int = 1024,
        scale: float = 1.0,
    ):
        xlc = runtime()
        params = xlc.CommonParams()
        params.model.path = str(model)
        params.n_ctx = n_ctx
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1  # llama.cpp's own log lines: a device prints answers, not its loader's progress
        self.adapters = [Path(lora)] if isinstance(lora, str | Path) else [Path(p) for p in lora or []]
        if self.adapters:
            infos = []
            for path in self.adapters:
                info = xlc.CommonAdapterLoraInfo()
                info.path, info.scale = str(path), 0.0
                infos.append(info)
            params.lora_adapters = infos
            params.lora_init_without_apply = True
        self.scales = (
            [scale] * len(self.adapters) if isinstance(lora, str | Path) else [0.0] * len(self.adapters)
        )
        self.server = xlc.Server(params)

    def request(
        self, prompt: list[int] | str, max_tokens: int, scales: list[float] | None = None, **extra
    ) -> dict:
        """The completion request; a text prompt (not ids) is tokenized by llama.cpp with the GGUF's own
        vocabulary (for files the project has no tokenizer of)."""
        body = {
            "prompt": prompt if isinstance(prompt, str) else list(prompt),
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "top_k": 1,
            "logprobs": 1,
            # llama.cpp's server would reuse the KV cache of the prefix a prompt shares with earlier ones, and
            # its README warns that this "can cause nondeterministic results": on the router study's library 9
            # of 343 base-routed answers parted from the plain base GGUF's with it, none without
            # (bench/device_library.py, docs/RESULTS.md).
            "cache_prompt": False,
        }
        if self.adapters:  # every adapter named, every time (see the module's note)
            scales = self.scales if scales is None else scales
            body["lora"] = [{"id": i, "scale": float(s)} for i, s in enumerate(scales)]
        return {**body, **extra}

    def complete(
        self, prompt: list[int] | str, max_tokens: int, scales: list[float] | None = None, **extra
    ) -> dict[str, Any]:
        response = self.server.handle_completions(self.request(prompt, max_tokens, scales, **extra))
        if not isinstance(response, dict) or "choices" not in response:
            raise RuntimeError(f"llama.cpp answered {str(response)[:300]}")
        return response

    def greedy_timed(
        self, prompt: list[int] | str, max_tokens: int, scales: list[float] | None = None
    ) -> tuple[list[int], list[float], dict[str, float]]:
        """The token ids llama.cpp generates greedily (it stops early at end of generation), the
        log-probability it gave each, and its timings of the request (prompt_n and prompt_ms: the prompt's
        processing; predicted_n and predicted_ms: the answer's tokens)."""
        response = self.complete(prompt, max_tokens, scales)
        content = (response["choices"][0].get("logprobs") or {}).get("content", [])
        return [t["id"] for t in content], [float(t["logprob"]) for t in content], response.get("timings", {})

    def greedy(
        self, prompt: list[int] | str, max_tokens: int, scales: list[float] | None = None
    ) -> tuple[list[int], list[float]]:
        return self.greedy_timed(prompt, max_tokens, scales)[:2]

    def greedy_ids(
        self, prompt: list[int] | str, max_tokens: int, scales: list[float] | None = None
    ) -> list[int]:
        return self.greedy_timed(prompt, max_tokens, scales)[0]

    def token_logprobs(
        self, ids: list[int], scales: list[float] | None = None, positions: list[int] | None = None
    ) -> list[float]:
        """log p(ids[i] | ids[:i]) for each i in `positions` (default: every i >= 1): each token forced in turn
        (a logit bias), its log-probability as the model gave it before the bias; the prefix is llama.cpp's
        cached prompt, so each step reads one token (a whole prefix per token would cost the square of the
        length)."""
        out = []
        for step, i in enumerate(range(1, len(ids)) if positions is None else positions):
            # the first step computes its prefix whole (see `request`); the others extend this text's own
            # prefix, at these scales
            choice = self.complete(
                ids[:i], 1, scales, logit_bias=[[int(ids[i]), 1000.0]], cache_prompt=step > 0
            )["choices"][0]
            token = choice["logprobs"]["content"][0]
            if token["id"] != ids[i]:
                raise RuntimeError(f"llama.cpp did not take the forced token {ids[i]} (took {token['id']})")
            out.append(float(token["logprob"]))
        return out

    def tokens_per_second(
        self, prompt_ids: list[int], max_tokens: int, scales: list[float] | None = None
    ) -> float:
        """Generation speed llama.cpp measured itself (prompt processing excluded)."""
        timings = self.complete(prompt_ids, max_tokens, scales)["timings"]
        return float(timings["predicted_per_second"])

    def close(self) -> None:
        self.server = None
        gc.collect()

    def predictor(self, tokenizer, scales: list[float] | None = None, name: str = "llama.cpp"):
        """This model, at these adapter scales, behind the Predictor interface every evaluation asks."""
        return LlamaCppPredictor(self, tokenizer, scales, name)

    def __enter__(self) -> LlamaCpp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LlamaCppPredictor:
    """The `inference.predictor.Predictor` interface over llama.cpp, so an evaluation scores a GGUF model (and
    its GGUF LoRAs at `scales`) exactly as it scores a transformers one: greedy answers decoded as
    `inference.generation.greedy` decodes them, and the summed negative log-likelihood of each row's labelled
    tokens. One request at a time: a device serves requests one by one, so `batch_size` is not used."""

    model = None  # the weights live in llama.cpp: no module to count

    def __init__(self, llama: LlamaCpp, tokenizer, scales: list[float] | None, name: str):
        self.llama, self.tokenizer, self.scales, self.name = llama, tokenizer, scales, name

    def generate(self, prompts, max_new_tokens, batch_size=1, desc="generating") -> list[str]:
        return [
            self.tokenizer.decode(
                self.llama.greedy_ids(list(p), max_new_tokens, self.scales), skip_special_tokens=True
            ).strip()
            for p in prompts
        ]

    def loglikelihood(self, rows, batch_size=1, desc="perplexity") -> list[tuple[float, int]]:
        out = []
        for row in rows:
            ids, labels = list(row["input_ids"]), row["labels"]
            positions = [i for i in range(1, len(ids)) if labels[i] != IGNORE_INDEX]
            logprobs = self.llama.token_logprobs(ids, self.scales, positions) if positions else []
            out.append((-sum(logprobs), len(positions)))
        return out
