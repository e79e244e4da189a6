"""Config sections of the studies that run after training (`recovery`, `analysis`, `edge`, `sweep`,
`transfer`, `library`, `router`). Kept apart from `config` only for size; `config.RunConfig` holds them like
any section."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgeadapt.core.checks import number_list, positive
from edgeadapt.core.errors import did_you_mean


@dataclass
class RecoveryConfig:
    enabled: bool = False
    """Run the capability-recovery sweep after `compare` (or run `edgeadapt recover RUN_DIR`)."""
    scales: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    """Shares s of each update to apply: adapter scaling s, or base + s·(tuned − base) for SFT."""
    budget_pct: float = 5.0
    """Forgetting budget: s_star is the largest s whose general degradation stays within it."""

    def check(self, where: str = "recovery") -> list[str]:
        return number_list(f"{where}.scales", self.scales, lambda s: 0 <= s <= 1, "numbers in [0, 1]")


@dataclass
class AnalysisConfig:
    enabled: bool = False
    """After `compare`, analyse every update (or run `edgeadapt analyze RUN_DIR`): spectra of the weight
    updates, attention entropy and divergence, hidden-state CKA against the base."""
    top_k: int = 8
    """Singular directions compared between an update and its base weight (subspace overlap)."""
    chunks: int = 8
    """General text chunks (of eval.chunk_tokens) read for attention and CKA."""
    budget_pct: float = 5.0
    """Forgetting budget of the rank recommendation: the best domain accuracy among LoRA variants within it."""

    def check(self, where: str = "analysis") -> list[str]:
        return positive(where, {"top_k": self.top_k, "chunks": self.chunks})


PROFILE_KEYS = ("max_params", "max_memory_mb", "max_ms_per_token")


def default_profiles() -> dict[str, dict[str, float]]:
    return {"default": {"max_params": 1_000_000_000, "max_memory_mb": 2048, "max_ms_per_token": 100}}


@dataclass
class EdgeConfig:
    profile: str = "default"
    """`edgeadapt edge-check`: the profile in `profiles` the models are checked against."""
    profiles: dict[str, dict[str, float]] = field(default_factory=default_profiles)
    """Name -> max_params, max_memory_mb (peak resident memory while generating), max_ms_per_token."""
    new_tokens: int = 32
    """Tokens generated (greedy, batch 1) for the timing, after a warm-up of the same prompt."""
    threads: int = 0
    """CPU threads for the timing (0: all cores; an edge device has few)."""
    prompt: str = "Explain in two sentences what a fever is."
    llamacpp_threads: list[int] = field(default_factory=lambda: [1, 2, 4])
    """Thread counts llama.cpp is also timed at (what a phone or a Raspberry Pi gives an app)."""

    def check(self, where: str = "edge") -> list[str]:
        profiles = self.profiles if isinstance(self.profiles, dict) else {}
        if self.profile not in profiles:
            return [
                f"{where}.profile: '{self.profile}' is not in {where}.profiles."
                f"{did_you_mean(self.profile, profiles)} Profiles: {', '.join(profiles) or 'none'}."
            ]
        problems = []
        for name, limits in profiles.items():
            if not isinstance(limits, dict) or sorted(limits) != sorted(PROFILE_KEYS):
                problems.append(
                    f"{where}.profiles.{name}: give exactly {', '.join(PROFILE_KEYS)}, got {limits!r}"
                )
            elif not all(isinstance(v, (int, float)) and v > 0 for v in limits.values()):
                problems.append(f"{where}.profiles.{name}: limits must be numbers > 0, got {limits!r}")
        if self.new_tokens < 2:
            problems.append(f"{where}.new_tokens: at least 2, got {self.new_tokens}")
        return problems + number_list(
            f"{where}.llamacpp_threads",
            self.llamacpp_threads,
            lambda n: isinstance(n, int) and n > 0,
            "thread counts > 0",
            allow_empty=True,
        )


@dataclass
class SweepConfig:
    lr_factors: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0])
    """`edgeadapt sweep`: each method trains at its configured lr times each factor (a log grid)."""
    steps: list[int] = field(default_factory=list)
    """Step budgets to sweep (empty: train.steps only)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds; with several, each point shows the spread across them."""
    targets: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    """Forgetting at matched skill: target accuracies as shares of the best domain accuracy reached."""
    grid: dict[str, list] = field(default_factory=dict)
    """Any other config keys to sweep, key -> values (e.g. `data.train_rows: [50, 200, 800, 3200]`): one
    run per combination (and steps and seed); sweep.json adds each method's curve against the key."""
    settings: dict[str, dict] = field(default_factory=dict)
    """Named sets of config values, each a grid point of its own (e.g. `kl: {train.kl_to_base.weight: 1}`,
    `as-is: {}`): every method trains under each, and each method under each non-empty setting is a frontier
    of its own (`sft+kl`) on the matched-skill table, beside the method as it is."""

    def check(self, where: str = "sweep") -> list[str]:
        problems = number_list(f"{where}.lr_factors", self.lr_factors, lambda f: f > 0, "numbers > 0")
        problems += number_list(f"{where}.seeds", self.seeds, lambda s: True, "integers")
        problems += number_list(f"{where}.targets", self.targets, lambda t: 0 < t <= 1, "shares in (0, 1]")
        if not isinstance(self.steps, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in self.steps
        ):
            problems.append(f"{where}.steps: a list of step counts > 0 (or empty), got {self.steps!r}")
        for key, values in (self.grid or {}).items() if isinstance(self.grid, dict) else ():
            if not isinstance(values, list) or not values:
                problems.append(f"{where}.grid.{key}: a non-empty list of values, got {values!r}")
            elif key.split(".")[0] in ("methods", "sweep", "name", "out_dir"):
                problems.append(
                    f"{where}.grid.{key}: sweep a run setting (data.*, train.*, eval.*), not {key}"
                )
        return problems + self.settings_problems(where)

    def settings_problems(self, where: str) -> list[str]:
        if not isinstance(self.settings, dict):
            return [f"{where}.settings: name -> {{config key: value}}, got {self.settings!r}"]
        problems = []
        for name, values in self.settings.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", str(name)):
                problems.append(
                    f"{where}.settings.{name}: a short lower-case name (letters, digits, _ and -)"
                )
            elif not isinstance(values, dict):
                problems.append(f"{where}.settings.{name}: config key -> value, got {values!r}")
            else:
                problems += [
                    f"{where}.settings.{name}.{key}: set a run setting (data.*, train.*, eval.*), not {key}"
                    for key in values
                    if str(key).split(".")[0] in ("methods", "sweep", "name", "out_dir")
                ]
        return problems


@dataclass
class TransferConfig:
    domains: list[str] = field(default_factory=lambda: ["medical", "legal", "math"])
    """Domain packs (or folders) for `edgeadapt transfer`: every method trains on each, every model is
    evaluated on each domain's test set and on general text."""

    def check(self, where: str = "transfer") -> list[str]:
        domains = self.domains if isinstance(self.domains, list) else []
        if len(domains) < 2 or len(set(domains)) != len(domains):
            return [f"{where}.domains: list at least two different domains, got {self.domains!r}"]
        return []


@dataclass
class LibraryConfig:
    domains: list[str] = field(default_factory=lambda: ["medical", "legal", "math"])
    """`edgeadapt library build`: one expert per domain (a pack or a folder), trained on the domain's data."""
    expert: str = "lora"
    """The variant of `methods:` every expert trains with (a LoRA-family method)."""
    descriptions: dict[str, str] = field(default_factory=dict)
    """Domain -> one-line description of its expert (default: the pack's own)."""
    multitask: bool = True
    """Also train the baseline of one multi-task adapter on every domain's training rows."""
    multitask_steps: int = 0
    """Its steps (0: train.steps × the number of domains, the library's total)."""
    general_adapter: bool = True
    """Also train an adapter on general text (the replay half of the general pack), for GenKnowSub."""
    expert_steps: dict[str, int] = field(default_factory=dict)
    """Domain -> training steps of its expert, for a domain that needs longer than train.steps."""

    def check(self, where: str = "library") -> list[str]:
        domains = self.domains if isinstance(self.domains, list) else []
        problems = []
        if len(domains) < 2 or len(set(domains)) != len(domains):
            problems.append(f"{where}.domains: list at least two different domains, got {self.domains!r}")
        for domain, steps in (self.expert_steps or {}).items():
            if domain not in domains:
                problems.append(
                    f"{where}.expert_steps: '{domain}' is not in library.domains.{did_you_mean(domain, domains)}"
                )
            if not isinstance(steps, int) or steps < 1:
                problems.append(f"{where}.expert_steps.{domain}: a number of steps >= 1, got {steps!r}")
        if self.multitask_steps < 0:
            problems.append(f"{where}.multitask_steps: must be >= 0, got {self.multitask_steps}")
        return problems


GENERAL_SOURCES = ("builtin", "bigbench", "mmlu", "prose", "rewrites")


DEFAULT_BASELINES = (
    "base",
    "oracle",
    "classifier",
    "merged_mean",
    "merged_svd",
    "multitask",
    "arrow",
    "arrow_gks",
)


@dataclass
class RouterConfig:
    kind: str = "scar"
    """The router a library trains and ships: a registered router kind (`scar`, `classifier`, ...)."""
    layer: int = 1
    """Decoder layer whose mean hidden state of the prompt is the query (0: the token embeddings); 1, what
    the router study chose (docs/RESULTS.md: routing as good as at later layers, at a fraction of the cost)."""
    top_k: int = 2
    """At most this many experts per request (1 or 2)."""
    temperature: float = 0.05
    """Softmax temperature on the cosine between query and keys."""
    max_general_rate: float = 0.05
    """The threshold is calibrated so that at most this share of held-out general prompts reach an adapter."""
    min_threshold: float = 0.2
    """The threshold never goes below this probability."""
    rule: str = "null_competes"
    """How a route follows from the probabilities: null_competes (the base answers whenever the null class is
    the most probable; tau applies on top, to the experts) or threshold (tau alone decides: an expert over tau
    took a request even when null was more probable)."""
    steps: int = 200
    """Full-batch Adam steps training the keys (and the classifier baseline)."""
    lr: float = 0.05
    prompts_per_domain: int = 200
    """Training prompts per expert (from its domain's training rows)."""
    general_sources: list[str] = field(default_factory=lambda: ["builtin"])
    """Null-class prompts: builtin (the project's general requests), bigbench (commonsense questions), mmlu
    (four-choice questions of subjects that are neither a library domain's nor in unknown_subjects), prose
    (text from the half of the general pack no evaluation reads, as a text row is routed), rewrites (requests
    to change a quoted sentence: into a question, negated, with pronouns, gender-inclusive German)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """`route eval` trains one router per seed (prompt sampling and splits) and reports the spread."""
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    """Systems evaluated beside the router: other router kinds (trained per seed), or single models made
    from the library (merged_mean, merged_svd, merged_linear, multitask, arrow, arrow_gks); `route eval`
    checks the names against what is registered."""
    arrow_top_k: int = 2
    arrow_temperature: float = 1.0
    scale_copies: int = 4
    """The scale point: a library of every expert this many times (6 experts -> 24), routed again."""
    unknown_subjects: list[str] = field(default_factory=list)
    """MMLU subjects asked as prompts from domains the library has no expert for (they belong on the base)."""
    sweep: str = ""
    """A sweep.json whose single-model points the report draws beside the routed system (on its domain)."""
    compare_layers: list[int] = field(default_factory=list)
    """`route eval` also trains a router (first seed) on each of these layers: routing quality and latency."""

    def check(self, where: str = "router") -> list[str]:
        problems = positive(where, {"steps": self.steps, "prompts_per_domain": self.prompts_per_domain})
        if self.top_k not in (1, 2):
            problems.append(f"{where}.top_k: 1 or 2, got {self.top_k}")
        if self.layer < 0:
            problems.append(f"{where}.layer: must be >= 0, got {self.layer}")
        if not 0 <= self.max_general_rate < 1 or not 0 < self.min_threshold < 1 or self.temperature <= 0:
            problems.append(f"{where}: max_general_rate in [0, 1), min_threshold in (0, 1), temperature > 0")
        unknown = sorted(set(self.general_sources) - set(GENERAL_SOURCES))
        if unknown or not self.general_sources:
            hint = did_you_mean(unknown[0], GENERAL_SOURCES) if unknown else ""
            problems.append(
                f"{where}.general_sources: any of {', '.join(GENERAL_SOURCES)}, got {self.general_sources!r}.{hint}"
            )
        if not all(isinstance(x, int) and x >= 0 for x in self.compare_layers):
            problems.append(f"{where}.compare_layers: layer numbers >= 0, got {self.compare_layers!r}")
        if not isinstance(self.baselines, list) or not all(isinstance(b, str) for b in self.baselines):
            problems.append(f"{where}.baselines: a list of names, got {self.baselines!r}")
        if not self.seeds or self.scale_copies < 1:
            problems.append(f"{where}: list at least one seed, and scale_copies >= 1")
        return problems
