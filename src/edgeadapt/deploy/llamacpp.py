"""llama.cpp itself, through the prebuilt `xllamacpp` wheel (`pip install --no-deps xllamacpp==2026.10.11549`):
load an exported GGUF (and a GGUF LoRA on top), answer greedily from token ids, and time it.

Greedy is temperature 0 and top-k 1; the answer's token ids come back through `logprobs`, so they can be
compared with transformers' token for token.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError

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
    """One GGUF model (and optionally a GGUF LoRA applied at run time) in llama.cpp, on `threads` CPU threads."""

    def __init__(self, model: Path, lora: Path | None = None, threads: int = 1, n_ctx: int = 1024):
        xlc = runtime()
        params = xlc.CommonParams()
        params.model.path = str(model)
        params.n_ctx = n_ctx
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        if lora is not None:
            adapter = xlc.CommonAdapterLoraInfo()
            adapter.path, adapter.scale = str(lora), 1.0
            params.lora_adapters = [adapter]
        self.server = xlc.Server(params)

    def complete(self, prompt_ids: list[int], max_tokens: int) -> dict[str, Any]:
        response = self.server.handle_completions(
            {
                "prompt": list(prompt_ids),
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "top_k": 1,
                "logprobs": 1,
            }
        )
        if not isinstance(response, dict) or "choices" not in response:
            raise RuntimeError(f"llama.cpp answered {str(response)[:300]}")
        return response

    def greedy(self, prompt_ids: list[int], max_tokens: int) -> tuple[list[int], list[float]]:
        """The token ids llama.cpp generates greedily (it stops early at end of generation), and the
        log-probability it gave each."""
        choice = self.complete(prompt_ids, max_tokens)["choices"][0]
        content = (choice.get("logprobs") or {}).get("content", [])
        return [t["id"] for t in content], [float(t["logprob"]) for t in content]

    def greedy_ids(self, prompt_ids: list[int], max_tokens: int) -> list[int]:
        return self.greedy(prompt_ids, max_tokens)[0]

    def tokens_per_second(self, prompt_ids: list[int], max_tokens: int) -> float:
        """Generation speed llama.cpp measured itself (prompt processing excluded)."""
        timings = self.complete(prompt_ids, max_tokens)["timings"]
        return float(timings["predicted_per_second"])

    def close(self) -> None:
        self.server = None
        gc.collect()

    def __enter__(self) -> LlamaCpp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
