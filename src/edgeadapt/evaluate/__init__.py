"""Evaluation: the same held-out sets for the base model and every tuned one.

- `domain_ppl`: perplexity of the domain test responses (prompt tokens excluded);
- `domain_accuracy`: greedy answers to the domain test questions, normalized exact match with the reference;
- `general_ppl`: perplexity of general held-out prose, in fixed chunks;
- `on_topic_rate`, `domain_leakage`: answers to general probes, embedded and assigned to the nearest topic
  (see `topics`); retention and degradation relative to the base model come from `metrics`;
- `fact_recall`: short general questions with known answers (`data.facts`), the share whose greedy answer
  contains the reference;
- `peak_rss_bytes`: the process's peak resident memory while the model was evaluated (sampled every 20 ms;
  it includes what else the process holds, e.g. the embedding model for the probes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil
from torch import nn

from edgeadapt.config import EvalConfig
from edgeadapt.evaluate.generation import greedy
from edgeadapt.evaluate.metrics import contains_answer, exact_match
from edgeadapt.evaluate.perplexity import perplexity
from edgeadapt.evaluate.topics import TopicSpace


@dataclass
class EvalSets:
    """Everything tokenized once and shared by every model evaluated in a run."""

    domain_rows: list[dict]  # raw test rows (prompt, response)
    domain_encoded: list[dict[str, list[int]]]  # prompt + response with the loss on the response
    domain_prompts: list[list[int]]  # prompt ids for generation
    general_chunks: list[dict[str, list[int]]]
    probe_prompts: list[list[int]]
    probe_topics: list[str]
    fact_prompts: list[list[int]] = field(default_factory=list)
    fact_answers: list[str] = field(default_factory=list)


def domain_scores(model: nn.Module, tokenizer, sets: EvalSets, cfg: EvalConfig) -> tuple[dict, list[str]]:
    """domain_ppl and domain_accuracy, with the greedy domain answers."""
    model.eval()
    answers = greedy(
        model, tokenizer, sets.domain_prompts, cfg.max_new_tokens, cfg.generate_batch_size, "domain questions"
    )
    references = [row["response"] for row in sets.domain_rows]
    metrics = {
        "domain_ppl": perplexity(model, sets.domain_encoded, cfg.batch_size),
        "domain_accuracy": sum(map(exact_match, answers, references)) / len(references),
    }
    return metrics, answers


def domain_and_general(
    model: nn.Module, tokenizer, sets: EvalSets, cfg: EvalConfig
) -> tuple[dict, list[str]]:
    """domain_ppl, domain_accuracy and general_ppl, with the greedy domain answers."""
    metrics, answers = domain_scores(model, tokenizer, sets, cfg)
    metrics["general_ppl"] = perplexity(model, sets.general_chunks, cfg.batch_size)
    return metrics, answers


@contextmanager
def peak_rss(interval_s: float = 0.02) -> Iterator[dict[str, int]]:
    """Sample this process's resident memory in a thread; `peak` holds the largest value seen."""
    process, seen, done = psutil.Process(), {"peak": 0}, threading.Event()

    def sample():
        while True:
            seen["peak"] = max(seen["peak"], process.memory_info().rss)
            if done.wait(interval_s):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
        seen["peak"] = max(seen["peak"], process.memory_info().rss)


def evaluate_model(model: nn.Module, tokenizer, sets: EvalSets, cfg: EvalConfig, topics: TopicSpace) -> dict:
    """All metrics of one model on the shared sets, with a few sample answers for the report."""
    start = time.perf_counter()
    with peak_rss() as memory:
        result, answers = domain_and_general(model, tokenizer, sets, cfg)
        probe_answers = greedy(
            model, tokenizer, sets.probe_prompts, cfg.probe_new_tokens, cfg.generate_batch_size, "probes"
        )
        if sets.fact_prompts:
            facts = greedy(
                model, tokenizer, sets.fact_prompts, cfg.fact_new_tokens, cfg.generate_batch_size, "facts"
            )
            result["fact_recall"] = sum(map(contains_answer, facts, sets.fact_answers)) / len(facts)
    assigned = topics.assign(probe_answers)
    result.update(
        on_topic_rate=sum(map(str.__eq__, assigned, sets.probe_topics)) / len(assigned),
        domain_leakage=sum(a == topics.domain for a in assigned) / len(assigned),
        samples={
            "domain": [
                {"prompt": r["prompt"], "reference": r["response"], "answer": a}
                for r, a in zip(sets.domain_rows[:3], answers)
            ],
            "probes": [
                {"topic": t, "answer": a, "assigned": s}
                for t, a, s in list(zip(sets.probe_topics, probe_answers, assigned))[::13][:5]
            ],
        },
    )
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    result["peak_rss_bytes"] = memory["peak"]
    return result
