"""Typed results: the files studies write and later commands reopen (results.json, routing.json, loragen.json)
as dataclasses with a schema version, read by one reader that checks every field's type before anything
acts on it (as python-tuf reads its metadata).

- `RunResults` (results.json): the run's header, the base model's and each method's metrics (each a mapping
  of registered metric names, see `evaluation.registry`, to values, checked here) and the optional sections
  later commands add (`recovery`, `analysis`, `packages`, `edge`).
- `RoutingResults` (routing.json) and `LoragenResults` (loragen.json): the two studies' top-level sections.

Version 1 files (written before schema_version existed) hold the same layout and are read as version 2.
The classes also answer `results["methods"]`, `results.get("edge")` and `"recovery" in results` (an absent
section is None), so a reader may index them as it indexes the JSON it came from.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgeadapt.core.config import from_dict
from edgeadapt.core.errors import UserError

SCHEMA_VERSION = 2
READABLE = (1, 2)


class Record:
    """A dataclass read from JSON with its types checked, indexable like the mapping it was written as."""

    KIND: ClassVar[str] = "results"

    @classmethod
    def from_json(cls, data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise UserError(f"{where}: not a {cls.KIND} object")
        version = data.get("schema_version", 1)
        if version not in READABLE:
            raise UserError(
                f"{where}: schema_version {version!r} is not one this edgeadapt reads ({', '.join(map(str, READABLE))}); "
                "a newer edgeadapt wrote it"
            )
        problems: list[str] = []
        record = from_dict(cls, {**data, "schema_version": SCHEMA_VERSION}, "", problems)
        problems += record.check()
        if problems:
            raise UserError(f"{where}: not a valid {cls.KIND} file ({'; '.join(problems[:3])})")
        return record

    def check(self) -> list[str]:
        return []

    def to_json(self) -> dict[str, Any]:
        """The JSON object, absent sections left out."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(f"{type(self).__name__} has no section '{key}'")
        setattr(self, key, value)

    def __contains__(self, key: str) -> bool:
        return key in {f.name for f in dataclasses.fields(self)} and getattr(self, key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def keys(self) -> list[str]:
        return list(self.to_json())


def metric_problems(where: str, metrics: Any) -> list[str]:
    """A model's metrics: a mapping in which every registered metric it holds has its registered kind of value
    (a number, or a mapping for a structured one such as MMLU)."""
    from edgeadapt.evaluation.registry import METRICS

    if not isinstance(metrics, dict):
        return [f"{where}: expected a mapping of metrics, got {type(metrics).__name__}"]
    problems = []
    for name, value in metrics.items():
        metric = METRICS.get(name)
        if metric is None or value is None:
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not (numeric or (metric.render is not None and isinstance(value, dict))):
            problems.append(f"{where}.{name}: expected a number, got {value!r}"[:160])
    return problems


@dataclass
class DataInfo:
    domain: str = ""
    sources: Any = None
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class RunResults(Record):
    """results.json."""

    KIND: ClassVar[str] = "results.json"
    schema_version: int = SCHEMA_VERSION
    edgeadapt_version: str = ""
    created: str = ""
    device: str = ""
    torch_threads: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)
    data: DataInfo = field(default_factory=DataInfo)
    config: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    recovery: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    packages: dict[str, Any] | None = None
    edge: dict[str, Any] | None = None

    def check(self) -> list[str]:
        problems = metric_problems("base", self.base)
        for name, metrics in self.methods.items() if isinstance(self.methods, dict) else ():
            problems += metric_problems(f"methods.{name}", metrics)
        if not isinstance(self.config, dict) or "name" not in self.config:
            problems.append("config: the run's config, with its name")
        return problems

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.data is not None:
            out["data"] = dataclasses.asdict(self.data)
        return out

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return dataclasses.asdict(value) if key == "data" else value


@dataclass
class RoutingResults(Record):
    """routing.json: the routed library against every single model (`edgeadapt route eval`)."""

    KIND: ClassVar[str] = "routing.json"
    schema_version: int = SCHEMA_VERSION
    edgeadapt_version: str = ""
    created: str = ""
    device: str = ""
    torch_threads: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    library: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    routing: dict[str, Any] = field(default_factory=dict)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    scale: dict[str, Any] = field(default_factory=dict)
    new_expert: dict[str, Any] | None = None
    transfer: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    package: dict[str, Any] | None = None

    def check(self) -> list[str]:
        problems = []
        for name, metrics in self.systems.items() if isinstance(self.systems, dict) else ():
            problems += metric_problems(f"systems.{name}", metrics)
        return problems


@dataclass
class LoragenResults(Record):
    """loragen.json: the description-to-adapter study (`edgeadapt loragen eval`)."""

    KIND: ClassVar[str] = "loragen.json"
    schema_version: int = SCHEMA_VERSION
    prompting: dict[str, Any] = field(default_factory=dict)
    generated: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] = field(default_factory=dict)
    forgetting: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, Any] = field(default_factory=dict)
    task_info: dict[str, Any] = field(default_factory=dict)
    seconds: Any = None
    summary: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    """What the study trained with (generator and multi-task steps and batch, the generator's lr, per-task
    steps; the seed from 2026-12-06); empty in files measured before 2026-12-05."""
    answer_precision: str = "fp32"
    """The edge model's precision while answering (`loragen.answer_precision`); fp32 in files before it."""


def read(path: Path, kind: type[Record]) -> Any:
    """A results file of `kind`, read and checked; a clear error when it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found.")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc}).") from None
    return kind.from_json(data, str(path))


def write(path: Path, data: Any, kind: type[Record]) -> Any:
    """A results file of `kind`, checked as it will be read back, written atomically."""
    from edgeadapt.core.files import write_json_atomic

    record = data if isinstance(data, kind) else kind.from_json(data, str(path))
    write_json_atomic(Path(path), record.to_json())
    return record


def typed_fields(kind: type[Record]) -> dict[str, Any]:
    """Field name -> annotation of a record (for the docs' schema check)."""
    return typing.get_type_hints(kind)
