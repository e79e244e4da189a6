"""An adapter library: several LoRA-family adapters trained on one base model, each an expert for a domain,
kept apart so a router can apply them per request (or none of them).

    LIB/library.json        format, base model (name, fingerprint), experts, the router's files
    LIB/experts/NAME/       adapter_config.json + adapter_model.safetensors (a plain PEFT adapter)
    LIB/router.*            the router (written by `edgeadapt.routing`), when one was trained

library.json's `experts` maps a name to {domain, description, method, rank, train}; `train` records how
the expert was trained (steps, lr, options, its config). Loaded on a base model, every expert becomes a
named adapter of one `PeftModel`, never merged into the shared base.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeadapt.core.errors import UserError
from edgeadapt.core.files import write_json_atomic
from edgeadapt.core.paths import ROUTER_FILE
from edgeadapt.models.fingerprint import fingerprint
from edgeadapt.updates.registry import get

if TYPE_CHECKING:  # torch is imported where a model runs: a device's commands read this without it
    from torch import nn

LIBRARY_FILE = "library.json"
FORMAT = "edgeadapt-library"
FORMAT_VERSION = 1
EXPERT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a PEFT adapter name: no dots
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
GGUF_FILES = ("adapter.gguf",)  # an expert of a library shipped to a llama.cpp device


@dataclass
class Expert:
    domain: str
    description: str
    method: str
    rank: int | None
    train: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, spec: Any, name: str) -> Expert:
        """One library.json entry, every field's type checked (the file may come from a package)."""
        if not EXPERT_NAME.fullmatch(str(name)):
            raise ValueError(
                f"expert name {str(name)[:40]!r} is not a plain name (letters, digits, '_', '-')"
            )
        if not isinstance(spec, dict) or set(spec) - {"domain", "description", "method", "rank", "train"}:
            raise ValueError(f"expert '{name}': fields domain, description, method, rank, train")
        expert = cls(**spec)
        rank_ok = expert.rank is None or (isinstance(expert.rank, int) and not isinstance(expert.rank, bool))
        texts = (expert.domain, expert.description, expert.method)
        if not all(isinstance(t, str) for t in texts) or not rank_ok or not isinstance(expert.train, dict):
            raise ValueError(f"expert '{name}': domain, description and method are strings, rank an integer")
        return expert


@dataclass
class Library:
    folder: Path
    base_name: str
    base_fingerprint: str
    experts: dict[str, Expert] = field(default_factory=dict)
    router: list[str] = field(default_factory=list)
    """The router's files in the folder (empty: no router yet)."""
    expert_files: list[str] = field(default_factory=lambda: list(ADAPTER_FILES))
    """What each expert folder holds: a PEFT adapter, or (a library for a llama.cpp device) adapter.gguf."""
    router_id: str = ""
    """What makes the router's keys comparable (kind and query normalization): an expert package carries it,
    and joins only a library whose router has the same."""

    @classmethod
    def create(cls, folder: Path, base_name: str, base_dir: Path) -> Library:
        library = cls(Path(folder), base_name, fingerprint(base_dir))
        (library.folder / "experts").mkdir(parents=True, exist_ok=True)
        library.save()
        return library

    @classmethod
    def read(cls, folder: Path) -> Library:
        path = Path(folder) / LIBRARY_FILE
        if not path.is_file():
            raise UserError(
                f"{folder}: not an adapter library (no {LIBRARY_FILE}); build one with `edgeadapt library build CONFIG`."
            )
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format {data.get('format')!r} v{data.get('format_version')}")
            experts = {name: Expert.read(spec, name) for name, spec in data["experts"].items()}
            library = cls(
                Path(folder),
                data["base_model"]["name"],
                data["base_model"]["fingerprint"],
                experts,
                data.get("router", []),
                data.get("expert_files", list(ADAPTER_FILES)),
                data.get("router_id", ""),
            )
            if library.expert_files not in (list(ADAPTER_FILES), list(GGUF_FILES)):
                raise ValueError(f"expert_files: {list(ADAPTER_FILES)} or {list(GGUF_FILES)}")
            if not all(isinstance(f, str) and ROUTER_FILE.fullmatch(f) for f in library.router):
                raise ValueError("router: a list of the router's file names")
            if not all(
                isinstance(v, str) for v in (library.base_name, library.base_fingerprint, library.router_id)
            ):
                raise TypeError("base_model name and fingerprint, router_id: strings")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise UserError(f"{path}: not a valid {FORMAT} v{FORMAT_VERSION} file ({exc})") from None
        for name in library.experts:
            library.check_expert_files(name)
        return library

    def save(self) -> None:
        write_json_atomic(
            self.folder / LIBRARY_FILE,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "base_model": {"name": self.base_name, "fingerprint": self.base_fingerprint},
                "experts": {name: asdict(e) for name, e in self.experts.items()},
                "router": self.router,
                "expert_files": self.expert_files,
                "router_id": self.router_id,
            },
        )

    def expert_dir(self, name: str) -> Path:
        if not EXPERT_NAME.fullmatch(name):  # never a path: `experts/` joined with it stays in the library
            raise UserError(f"expert name {name[:40]!r} is not a plain name (letters, digits, '_', '-')")
        return self.folder / "experts" / name

    def check_expert_files(self, name: str) -> None:
        missing = [f for f in self.expert_files if not (self.expert_dir(name) / f).is_file()]
        if missing:
            raise UserError(f"{self.expert_dir(name)}: missing {', '.join(missing)} (an expert's adapter)")

    def add(self, name: str, expert: Expert, adapter_dir: Path) -> None:
        """Copy a saved LoRA-family adapter into the library as expert `name` (replacing one of that name)."""
        if not EXPERT_NAME.fullmatch(name):
            raise UserError(
                f"Expert name '{name}': letters, digits, '_' or '-', at most 64 (a PEFT adapter name)."
            )
        if not get(expert.method).capabilities.lora_family:
            raise UserError(
                f"Expert '{name}': method {expert.method} is not a LoRA-family adapter; a library holds adapters."
            )
        target = self.expert_dir(name)
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for file in ADAPTER_FILES:
            shutil.copyfile(Path(adapter_dir) / file, tmp / file)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        self.experts[name] = expert
        self.save()

    def check_base(self, base_dir: Path | None, have: str | None = None) -> None:
        """Refuse a base model other than the one the experts were trained on (its folder, or its recorded
        fingerprint `have`: a llama.cpp device holds a GGUF, not the checkpoint)."""
        have = have or fingerprint(base_dir)
        if have != self.base_fingerprint:
            raise UserError(
                f"{self.folder}: the library was trained on base '{self.base_name}' ({self.base_fingerprint[:19]}...), "
                f"not on {base_dir} ({have[:19]}...): its adapters would apply to other weights."
            )

    def load(self, base: nn.Module, names: list[str] | None = None) -> nn.Module:
        """A PeftModel with every expert (or `names`) loaded as a named adapter, none merged."""
        from peft import PeftModel

        names = list(names or self.experts)
        if not names:
            raise UserError(f"{self.folder}: the library holds no experts yet.")
        model = PeftModel.from_pretrained(base, str(self.expert_dir(names[0])), adapter_name=names[0])
        for name in names[1:]:
            model.load_adapter(str(self.expert_dir(name)), adapter_name=name)
        return model.eval()


def expert_name(domain: str) -> str:
    """A domain's expert name (a PEFT adapter name: no dots or slashes)."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in Path(domain).name)
