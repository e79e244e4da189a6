"""The mitigations of forgetting a single model can train with, wired to a run: general requests answered
by the base itself (`data.self_replay`, and the `prompts` source of the KL term and EWC), the domain's own
responses rewritten by the base (`data.self_distill`, SDFT) and the regularizers of the training loop
(`train.kl_to_base`, `train.ewc`).

The self-answered rows are the project's general requests (`data.general_prompts`, which no forgetting
measure reads), each answered by the base model; written once per run into RUN/self-replay-HASH.json and
reused while the model, the prompts and the settings are the same (a resumed or repeated run does not
generate them again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import torch

from edgeadapt.core.errors import UserError
from edgeadapt.core.files import write_json_atomic
from edgeadapt.data.collate import collator
from edgeadapt.data.format import encode, prompt_ids, prompt_text, reference, split_row, text_chunks
from edgeadapt.data.general_prompts import GENERAL_PROMPTS
from edgeadapt.evaluation.metrics import exact_match
from edgeadapt.inference.generation import greedy
from edgeadapt.training.distributed import world_size
from edgeadapt.training.regularizers import EWC, KLToBase, Regularizer

SAMPLE_TEMPERATURE = 0.7
PROMPT_ANSWER_TOKENS = 64  # the base's answers when they are the KL term's or EWC's general rows


def base_answered(
    run, count: int, answers: str, max_new_tokens: int, log: Callable[[str], None] = print
) -> list[dict[str, str]]:
    """`count` rows {prompt, response}: the general prompts in turn, each answered by the base model (greedy:
    one answer per distinct prompt, repeated; sampled: a fresh sample for every row, seeded by data.seed)."""
    if count <= 0:
        return []
    distinct = min(count, len(GENERAL_PROMPTS)) if answers == "greedy" else count
    prompts = [GENERAL_PROMPTS[i % len(GENERAL_PROMPTS)] for i in range(distinct)]
    key = {
        "model": run.cfg.model.name,
        "answers": answers,
        "max_new_tokens": max_new_tokens,
        "seed": run.cfg.data.seed,
        "prompts": prompts,
    }
    rows = generated_once(
        run, "self-replay", key, lambda: generate_rows(run, prompts, answers, max_new_tokens, log)
    )
    return [rows[i % len(rows)] for i in range(count)]


def generated_once(run, stem: str, key: dict[str, Any], make: Callable[[], list]) -> list:
    """What `make` generates, written once to RUN/STEM-HASH.json and read back while `key` is the same."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = run.dir / f"{stem}-{digest}.json"
    rows = cached_rows(path, key)
    if rows is None:
        rows = make()
        write_json_atomic(path, {"key": key, "rows": rows})
    return rows


def base_answers(
    run, requests: list[str], max_new_tokens: int, desc: str, sample_temperature: float = 0.0
) -> list[str]:
    """The base model's answers to user requests (greedy, or sampled from a generator seeded by data.seed)."""
    model = run.load_model(torch.float32).eval()
    ids = [prompt_ids(run.tokenizer, [{"role": "user", "content": r}]) for r in requests]
    torch.manual_seed(run.cfg.data.seed)
    return greedy(
        model,
        run.tokenizer,
        ids,
        max_new_tokens,
        run.cfg.eval.generate_batch_size,
        desc=desc,
        sample_temperature=sample_temperature,
    )


def cached_rows(path, key: dict[str, Any]) -> list[dict[str, str]] | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved.get("rows") if isinstance(saved, dict) and saved.get("key") == key else None


def generate_rows(run, prompts: list[str], answers: str, max_new_tokens: int, log) -> list[dict[str, str]]:
    # one set of rows for self-replay and for the regularizers' `prompts` source: the label names neither
    log(f"[base answers] the base model answers {len(prompts)} general requests ({answers})")
    temperature = SAMPLE_TEMPERATURE if answers == "sampled" else 0.0
    texts = base_answers(run, prompts, max_new_tokens, "self-replay", temperature)
    # An empty answer stays: ending at once is what the base does there, and what the row teaches.
    return [{"prompt": p, "response": t} for p, t in zip(prompts, texts)]


# SDFT's prompt (Yang et al. 2024, "Self-Distillation Bridges Distribution Gap in Language Model Fine-Tuning").
SDFT_TEMPLATE = (
    "Below is an instruction that describes a task, along with a reference answer. Using the reference answer "
    "as a guide, write your own response.\n### Instruction:\n{prompt}\n### Reference Answer:\n{reference}\n"
    "### Response:"
)


def self_distilled(run, rows: list[dict], log: Callable[[str], None] = print) -> list[dict]:
    """`data.self_distill`: each domain response rewritten by the base model, shown the request and the
    reference (SDFT), so training moves the model less far from its own distribution. A rewrite is kept only
    where the domain's grader accepts it (its first line matches the reference, as domain accuracy checks);
    otherwise the row keeps its response, as SDFT falls back to the original when the rewrite is wrong."""
    if not run.cfg.data.self_distill:
        return rows
    asked = [i for i, row in enumerate(rows) if split_row(row)[0] is not None]
    requests = [
        SDFT_TEMPLATE.format(prompt=prompt_text(rows[i]), reference=reference(rows[i])) for i in asked
    ]
    longest = max((len(run.tokenizer(reference(rows[i]))["input_ids"]) for i in asked), default=0)
    tokens = min(256, 2 * longest + 8)  # room to restate the answer in other words
    key = {"model": run.cfg.model.name, "max_new_tokens": tokens, "requests": requests}

    def rewrite() -> list[str]:
        log(f"[self-distill] the base model rewrites {len(requests)} domain responses in its own words")
        return base_answers(run, requests, tokens, "self-distill")

    answers = generated_once(run, "self-distill", key, rewrite)
    out, kept = list(rows), 0
    for i, answer in zip(asked, answers):
        if exact_match(answer, reference(rows[i])):
            out[i] = with_response(rows[i], answer)
            kept += 1
    log(
        f"[self-distill] {kept} of {len(asked)} rewrites kept (the others changed the answer: originals kept)"
    )
    return out


def with_response(row: dict, answer: str) -> dict:
    if "messages" in row:
        return {**row, "messages": row["messages"][:-1] + [{**row["messages"][-1], "content": answer}]}
    return {**row, "response": answer}


def self_replay_rows(run, log: Callable[[str], None] = print) -> list[dict[str, str]]:
    """The rows `data.self_replay.ratio` adds to training (a share of all the training rows, as replay's)."""
    options = run.cfg.data.self_replay
    if not options.ratio:
        return []
    count = round(len(run.data.train) * options.ratio / (1 - options.ratio))
    return base_answered(run, count, options.answers, options.max_new_tokens, log)


def general_rows(run, source: str, count: int, log: Callable[[str], None]) -> list[dict[str, list[int]]]:
    """`count` encoded general rows for a regularizer: chunks of the general pack's prose that no evaluation
    reads (`text`), or general requests with the base's own answers (`prompts`, loss on the answer)."""
    cfg, tokenizer = run.cfg, run.tokenizer
    if source == "text":
        return text_chunks(tokenizer, run.data.unread_text(), cfg.eval.chunk_tokens, count)
    rows = base_answered(run, min(count, len(GENERAL_PROMPTS)), "greedy", PROMPT_ANSWER_TOKENS, log)
    return [encode(tokenizer, r, cfg.data.max_length) for r in rows]


def regularizers(run, model, log: Callable[[str], None] = print) -> list[Regularizer]:
    """The regularizers `train.kl_to_base` and `train.ewc` ask for, set up on the prepared model (before
    training moves it: the KL's reference and EWC's anchor are the model training starts from)."""
    train, found = run.cfg.train, []
    if (train.kl_to_base.weight > 0 or train.ewc.weight > 0) and world_size() > 1:
        raise UserError("train.kl_to_base and train.ewc run in one process: train without torchrun")
    collate = collator(run.tokenizer, False)
    if train.kl_to_base.weight > 0:
        kl = train.kl_to_base
        rows = general_rows(run, kl.source, kl.rows, log)
        found.append(KLToBase(model, rows, collate, kl.weight, kl.temperature, kl.batch_size))
    if train.ewc.weight > 0:
        rows = general_rows(run, train.ewc.source, train.ewc.samples, log)
        found.append(EWC(model, rows, collate, train.ewc.weight))
    for reg in found:
        cost = reg.summary()
        log(
            f"  {reg.name}: weight {reg.weight:g}, set up in {cost['setup_seconds']:.1f} s, "
            f"holding {cost['memory_bytes'] / 2**20:,.1f} MB"
        )
    return found
