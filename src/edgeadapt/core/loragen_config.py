"""Config sections of the task collection (`tasks:`) and the description-to-adapter generator (`loragen:`).
Kept apart from `config` only for size; `config.RunConfig` holds them like any section."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeadapt.core.checks import choice, positive

ANSWER_PRECISIONS = ("fp32", "bf16")


@dataclass
class TasksConfig:
    collection: str = "builtin"
    """`builtin` (BIG-bench, built once into the cache by `edgeadapt tasks build`), `builtin-large` (the same
    and 181 more list functions: 256 training tasks), or a folder holding a
    collection in the same layout (collection.json, NAME/train.jsonl, NAME/test.jsonl)."""
    test_rows: int = 32
    """Test rows per task (choice tasks: balanced across their answers)."""
    train_rows: int = 128
    """Training rows per task, at most."""
    max_prompt_chars: int = 400
    """Longer examples are left out: short rows are what lets a generator train on two cores."""
    seed: int = 0

    def check(self, where: str = "tasks") -> list[str]:
        return positive(where, {"test_rows": self.test_rows, "train_rows": self.train_rows})


@dataclass
class LoraGenConfig:
    kind: str = "hypernet"
    """The generator's design (`loragen.registry`): `hypernet` (Text-to-LoRA's MLP from a sentence
    embedding) or `pool` (LoRA-Gen's reader, meta tokens and gated pool of LoRA experts)."""
    encoder: str = "minilm"
    """Description encoder: `minilm` (all-MiniLM-L6-v2), `minilm-tokens` (its token states, which the pool's
    learned queries attend over), or `model:NAME` (a model's mean hidden state; the pool's reader).
    `KIND:ENCODER` (e.g. `pool:model:gemma3-270m`) names a design other than `kind`."""
    compare_encoders: list[str] = field(default_factory=list)
    """`loragen eval` also trains and evaluates a generator with each of these (same forms as `encoder`)."""
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    rank: int = 4
    """The LoRA's rank; for the pool, each expert's (the generated adapter has rank rank x top_k)."""
    experts: int = 8
    """The pool: LoRA experts per target module and layer."""
    top_k: int = 2
    """The pool: experts each layer's gate keeps."""
    meta_tokens: int = 0
    """The pool: meta tokens after the description (0: one per edge layer)."""
    balance_weight: float = 0.01
    """The pool: weight of the load-balancing term (0: none)."""
    alpha: float = 8.0
    hidden: int = 256
    dropout: float = 0.05
    steps: int = 600
    batch_size: int = 16
    lr: float = 1.0e-3
    warmup_steps: int = 30
    eval_every: int = 100
    train_paraphrases: int = 1
    """How many of each training task's paraphrases the generator trains on (beside the description); the
    rest are the unseen paraphrases of the evaluation."""
    other_paraphrases: int | None = None
    """How many paraphrases a training task outside the evaluation's seen sample (`seen_tasks`) trains on;
    None: `train_paraphrases`, like every task. Every paraphrase there shows the reader every phrasing of the
    collection while the seen tasks' untrained paraphrases stay unread."""
    multitask: str = "lora"
    """The variant of `methods:` for the one-adapter-for-everything baseline (trained for `steps`) and the
    per-task upper bound."""
    per_task: list[str] = field(default_factory=list)
    """Training tasks that also get a LoRA of their own (every held-out task gets one)."""
    per_task_steps: int = 64
    seen_tasks: int = 0
    """Seen (training) tasks the evaluation covers: 0 for all, else this many, spread over their sources
    (every task of `per_task` included)."""
    eval_rows: int = 32
    """Test rows per task, at most, in every evaluation row."""
    shots: int = 3
    latency_requests: int = 4
    """Requests per task timed one by one (batch 1) for the prefill and total latency."""
    forgetting_tasks: int = 4
    """Held-out tasks whose generated adapter gets the whole general evaluation (perplexity, topics, facts)."""
    generation_repeats: int = 20
    answer_precision: str = "fp32"
    """fp32 | bf16: the edge model's matrix products while `loragen eval` scores, times and measures forgetting
    (bf16: autocast, the weights stay fp32; adapters are generated and merged in fp32 either way). On this
    project's CPU bf16 answers 2.8x faster with seen-task scores within a point (docs/RESULTS.md); every
    result before it is fp32, and parts measured in one precision are measured again in the other."""

    def check(self, where: str = "loragen") -> list[str]:
        problems = positive(
            where,
            {
                "rank": self.rank,
                "hidden": self.hidden,
                "steps": self.steps,
                "batch_size": self.batch_size,
                "eval_every": self.eval_every,
                "per_task_steps": self.per_task_steps,
                "eval_rows": self.eval_rows,
                "latency_requests": self.latency_requests,
                "generation_repeats": self.generation_repeats,
                "experts": self.experts,
                "top_k": self.top_k,
            },
        )
        if self.top_k > self.experts:
            problems.append(f"{where}.top_k: {self.top_k} is more than loragen.experts ({self.experts})")
        if self.meta_tokens < 0 or self.balance_weight < 0:
            problems.append(f"{where}: meta_tokens and balance_weight must be >= 0")
        if not self.targets or not all(isinstance(t, str) for t in self.targets):
            problems.append(f"{where}.targets: a non-empty list of module names, got {self.targets!r}")
        if (self.other_paraphrases or 0) < 0:
            problems.append(f"{where}.other_paraphrases: >= 0, or null for train_paraphrases")
        if self.train_paraphrases < 0 or self.shots < 0 or self.forgetting_tasks < 0 or self.seen_tasks < 0:
            problems.append(
                f"{where}: train_paraphrases, shots, forgetting_tasks and seen_tasks must be >= 0"
            )
        problems += choice(f"{where}.answer_precision", self.answer_precision, ANSWER_PRECISIONS)
        for spec in [self.encoder, *self.compare_encoders]:
            if not encoder_spec_ok(spec):
                problems.append(
                    f"{where}.encoder: '{spec}' is not minilm, minilm-tokens, model:NAME or KIND:one"
                )
        return problems


def encoder_spec_ok(spec: object) -> bool:
    """`minilm`, `minilm-tokens`, `model:NAME`, or one after a design's name (`pool:model:NAME`); the design's
    name is checked against the generator registry when training starts."""
    if not isinstance(spec, str):
        return False
    if spec in ("minilm", "minilm-tokens") or (spec.startswith("model:") and len(spec) > len("model:")):
        return True
    head, _, rest = spec.partition(":")
    return bool(head) and head != "model" and encoder_spec_ok(rest)
