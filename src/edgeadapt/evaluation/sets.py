"""A run's evaluation sets, tokenized once: domain test questions, general chunks, probes and facts; and the
topic space the probes' answers are assigned in."""

from __future__ import annotations

from edgeadapt.core.config import RunConfig
from edgeadapt.data.format import encode, prompt_ids, split_row, text_chunks
from edgeadapt.data.run_data import RunData
from edgeadapt.evaluation.registry import BENCHMARKS
from edgeadapt.evaluation.suite import EvalSets
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.embedder import Embedder


def user_prompt(tokenizer, text: str) -> list[int]:
    return prompt_ids(tokenizer, [{"role": "user", "content": text}])


def domain_sets(rows: list[dict], tokenizer, max_length: int) -> dict:
    """The domain part of the sets: encoded test rows and their prompts."""
    return {
        "domain_rows": rows,
        "domain_encoded": [encode(tokenizer, r, max_length) for r in rows],
        "domain_prompts": [prompt_ids(tokenizer, split_row(r)[0]) for r in rows],
    }


def eval_sets(data: RunData, tokenizer, cfg: RunConfig, only: tuple[str, ...] | None = None) -> EvalSets:
    """The domain test set, the general chunks and every registered benchmark's set (or those in `only`)."""
    return EvalSets(
        **domain_sets(data.test, tokenizer, cfg.data.max_length),
        general_chunks=text_chunks(
            tokenizer, data.general_text, cfg.eval.chunk_tokens, cfg.eval.general_chunks
        ),
        benchmarks=benchmark_sets(data, tokenizer, cfg, only),
    )


def benchmark_sets(data: RunData, tokenizer, cfg: RunConfig, only: tuple[str, ...] | None = None) -> dict:
    """Each registered benchmark's set (None where the config turns it off)."""
    return {
        name: benchmark.prepare(data, tokenizer, cfg)
        for name, benchmark in BENCHMARKS.items()
        if only is None or name in only
    }


def row_text(row: dict) -> str:
    """Everything a row says (prompt turns and answer), as one text to embed."""
    messages, target = split_row(row)
    return " ".join(filter(None, [m["content"] for m in messages or []] + [target]))


def topic_space(data: RunData, embedder: Embedder | None = None) -> TopicSpace:
    topics: dict[str, list[str]] = {}
    for row in data.probes:
        topics.setdefault(row["topic"], []).append(row["prompt"])
    domain_texts = [row_text(r) for r in data.train[:64]]
    return TopicSpace(embedder or Embedder(), topics, {f"domain:{data.domain_name}": domain_texts})
