"""The prompts a router trains, calibrates and is tested on, with their labels (an expert, or `null`).

- Domain prompts: each domain's training rows (train: `router.prompts_per_domain` sampled per seed) and its
  test rows (test), as the model reads them (chat template applied).
- General prompts (`null`): the project's written requests and, with `router.general_sources`, BIG-bench's
  commonsense questions (strategyqa, social_iqa), MMLU questions of subjects without an expert (and not
  held out as unknown) and general prose (the first tokens of text chunks from the half of the general pack
  that no evaluation reads: a text row is routed on its first tokens, with no chat template) and requests to
  rewrite a quoted sentence (the morphology pack's form, another operation). Every fifth is held out for
  test; of the rest, each seed puts three quarters in training and one quarter in calibration. Never the
  probes or facts.
- Hard cases (`data.router_cases`) and questions from MMLU subjects the library has no expert for
  (`router.unknown_subjects`): test only.

Queries (the base model's hidden states) are computed once per prompt and reused by every seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from edgeadapt.core.config import RunConfig
from edgeadapt.data.format import prompt_ids, split_row, text_chunks
from edgeadapt.data.format import prompt_text as row_prompt
from edgeadapt.data.general_prompts import GENERAL_PROMPTS, rewrite_requests, task_inputs
from edgeadapt.data.router_cases import cases_for, labels_of
from edgeadapt.routing.predictor import routing_prompt
from edgeadapt.routing.queries import prompt_queries
from edgeadapt.routing.registry import RouterTraining
from edgeadapt.routing.router import NULL, Request
from edgeadapt.runs.run import Run
from edgeadapt.updates.library import Library

BIGBENCH_GENERAL = ("strategyqa", "social_iqa")
PER_BIGBENCH_TASK = 400
PER_UNKNOWN_SUBJECT = 10
PER_MMLU_SUBJECT = 6
PER_REWRITE_TASK = 100
PROSE_CHUNKS = 240  # about all the unread half of the built-in general pack holds


@dataclass
class Prompt:
    ids: list[int]
    text: str
    label: str
    """An expert's name, `null`, or two names joined by `+` (a mixed request)."""
    kind: str
    asked: str = ""
    """What the user wrote (the text without the chat template), for reports."""

    def request(self) -> Request:
        return Request(self.ids, self.text)


class RouterData:
    def __init__(self, cfg: RunConfig, runs: dict[str, Run], library: Library, model=None):
        from edgeadapt.updates.library import expert_name

        self.cfg, self.experts = cfg, list(library.experts)
        first = next(iter(runs.values()))
        self.tokenizer = first.tokenizer
        self.model = model if model is not None else first.load_model(first.dtype).eval()
        self.expert_of = {domain: expert_name(domain) for domain in runs}
        self.pool = {
            self.expert_of[d]: [self.prompt(r, self.expert_of[d], "domain") for r in run.data.train]
            for d, run in runs.items()
        }
        self.domain_test = [
            self.prompt(r, self.expert_of[d], "domain") for d, run in runs.items() for r in run.data.test
        ]
        general = [self.prompt_text(t, NULL, "general") for t in general_texts(cfg, list(runs))]
        if "prose" in cfg.router.general_sources:
            general += self.prose(first)
        self.general_test, self.general_rest = general[::5], [p for i, p in enumerate(general) if i % 5]
        self.cases = {
            kind: [self.prompt_text(text, self.label_of(label), kind) for text, label in cases]
            for kind, cases in cases_for(list(runs)).items()
        }
        self.cases["unknown"] += [
            self.prompt_text(t, NULL, "unknown") for t in unknown_questions(cfg.router.unknown_subjects)
        ]
        self._queries: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    def label_of(self, label: str) -> str:
        return "+".join(NULL if d == NULL else self.expert_of[d] for d in labels_of(label))

    def prompt(self, row: dict, label: str, kind: str) -> Prompt:
        ids = prompt_ids(self.tokenizer, split_row(row)[0])
        return Prompt(ids, self.tokenizer.decode(ids, skip_special_tokens=True), label, kind, row_prompt(row))

    def prompt_text(self, text: str, label: str, kind: str) -> Prompt:
        return self.prompt({"prompt": text, "response": "-"}, label, kind)

    def prose(self, run: Run) -> list[Prompt]:
        """General prose as the router sees a text row (its first tokens, no chat template): chunks of the
        general pack's half that no evaluation reads, so the perplexity set's own form has null examples."""
        chunks = text_chunks(self.tokenizer, run.data.unread_text(), self.cfg.eval.chunk_tokens, PROSE_CHUNKS)
        ids = [routing_prompt(chunk) for chunk in chunks]
        texts = [self.tokenizer.decode(i, skip_special_tokens=True) for i in ids]
        return [Prompt(i, text, NULL, "general", text) for i, text in zip(ids, texts)]

    def split(self, name: str, seed: int) -> list[Prompt]:
        """`train` (domain prompts sampled per expert + three quarters of the general rest) or `calibration`."""
        rng = random.Random(seed)
        general = list(self.general_rest)
        rng.shuffle(general)
        cut = len(general) * 3 // 4
        if name == "calibration":
            return general[cut:]
        domain = []
        for expert in self.experts:
            pool = list(self.pool.get(expert, []))
            rng.shuffle(pool)
            domain += pool[: self.cfg.router.prompts_per_domain]
        return domain + general[:cut]

    def tests(self) -> dict[str, list[Prompt]]:
        return {"domain": self.domain_test, "general": self.general_test, **self.cases}

    def training(self, seed: int, relabel=None) -> RouterTraining:
        """What a router of any kind trains and calibrates on for this seed (`relabel`: prompts -> labels,
        for a router over other classes than the library's experts)."""
        train = self.split("train", seed)
        return RouterTraining(
            experts=list(self.experts),
            train=[p.request() for p in train],
            labels=relabel(train) if relabel else self.labels(train),
            calibration=[p.request() for p in self.split("calibration", seed)],
            model=self.model,
            tokenizer=self.tokenizer,
            features=self.queries,
        )

    def queries(self, prompts: list, layer: int | None = None) -> torch.Tensor:
        """The prompts' (or requests') queries at `layer` (default: router.layer), each computed once."""
        layer = self.cfg.router.layer if layer is None else layer
        missing = list({tuple(p.ids) for p in prompts if (layer, tuple(p.ids)) not in self._queries})
        if missing:
            computed = prompt_queries(self.model, self.tokenizer, [list(m) for m in missing], layer)
            self._queries.update(zip([(layer, m) for m in missing], computed))
        return torch.stack([self._queries[(layer, tuple(p.ids))] for p in prompts])

    def labels(self, prompts: list[Prompt]) -> torch.Tensor:
        index = {name: i for i, name in enumerate(self.experts)}
        return torch.tensor([index.get(p.label, len(self.experts)) for p in prompts])


def general_texts(cfg: RunConfig, domains: list[str]) -> list[str]:
    sources = cfg.router.general_sources
    texts = list(GENERAL_PROMPTS) if "builtin" in sources else []
    if "bigbench" in sources:
        from edgeadapt.data.bigbench import bigbench_tasks

        for task in bigbench_tasks(list(BIGBENCH_GENERAL)).values():
            texts += task_inputs(task, PER_BIGBENCH_TASK)
    if "mmlu" in sources:
        texts += general_mmlu(cfg.router.unknown_subjects, domains)
    if "rewrites" in sources:
        texts += rewrite_requests(PER_REWRITE_TASK)
    return texts


def general_mmlu(unknown: list[str], domains: list[str]) -> list[str]:
    """Four-choice questions from every MMLU subject that is neither a library domain's (a pack made from
    MMLU names its subjects) nor held out as an unknown domain: general requests in a domain-like form."""
    from edgeadapt.data.mmlu import mmlu_rows
    from edgeadapt.data.more_packs import meta, mmlu_prompt

    excluded = set(unknown) | {s for d in domains for s in meta(d).get("mmlu_subjects", [])}
    by_subject: dict[str, list[dict]] = {}
    for row in mmlu_rows():
        if row["topic"] not in excluded:
            by_subject.setdefault(row["topic"], []).append(row)
    return [mmlu_prompt(r, "Question: ") for rows in by_subject.values() for r in rows[:PER_MMLU_SUBJECT]]


def unknown_questions(subjects: list[str]) -> list[str]:
    """Questions from MMLU subjects without an expert, in the multiple-choice form the psychology pack uses."""
    if not subjects:
        return []
    from edgeadapt.data.mmlu import mmlu_rows
    from edgeadapt.data.more_packs import mmlu_prompt

    rows = mmlu_rows()
    known = {r["topic"] for r in rows}
    missing = [s for s in subjects if s not in known]
    if missing:
        from edgeadapt.core.errors import UserError, did_you_mean

        raise UserError(
            f"router.unknown_subjects: no MMLU subject '{missing[0]}'.{did_you_mean(missing[0], known)}"
        )
    return [
        mmlu_prompt(r, "Question: ")
        for subject in subjects
        for r in [r for r in rows if r["topic"] == subject][:PER_UNKNOWN_SUBJECT]
    ]
