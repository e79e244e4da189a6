"""The package manifest: what the update is, for which base model, which release it is (version on a
channel, created, expires) and every file's hash.

A signed package carries `manifest.sig` (Ed25519 over the exact bytes of manifest.json, see `keys`); an
unsigned one carries `manifest.sha256`, which catches corruption but not tampering. The files' hashes and
sizes are in the manifest, so one check on the manifest covers every byte of the update and bounds how much
a reader may decompress. A device refuses a version at or below the highest it accepted on the channel
(downgrade, replay) and an expired manifest (a freeze).
"""

from __future__ import annotations

import json
import re
from typing import Any

from edgeadapt import updates
from edgeadapt.deploy.archive import PackageError

FORMAT = "edgeadapt-update"
FORMAT_VERSION = 2  # 2: version, channel, created and expires are required; the base fingerprint covers config and tokenizer
DTYPES = ("fp32", "bf16", "int8")
MAX_STRING = 512  # no field of a manifest we write is longer; a longer one is an attack or corruption
MAX_DESCRIPTION = 4096  # a generated adapter's task description (the encoders read at most 512 tokens)
CHANNEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def encode(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


# key: (type, required)
SCHEMA: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "format": (str, True),
    "format_version": (int, True),
    "edgeadapt_version": (str, True),
    "method": (str, True),
    "variant": (str, True),
    "loader": (str, True),
    "rank": ((int, type(None)), True),
    "dtype": (str, True),
    "base_model": (dict, True),
    "files": (list, True),
    "metrics": (dict, True),
    "dtype_cost": ((dict, type(None)), False),
    "version": (int, True),
    "channel": (str, True),
    "created": (str, True),
    "expires": (str, True),
    "kind": (str, False),
    "keylist": (dict, False),
    "experts": (list, False),
    "description": (str, False),
    "health": (dict, False),
    "router_id": (str, False),
    "runtime": (str, False),
    "gguf": (dict, False),
    "scale": ((int, float), False),
}
KINDS = ("update", "library", "expert")  # one update; an adapter library with its router; one more expert


def parse(data: bytes, label: str) -> dict[str, Any]:
    """A manifest's bytes, checked against the schema; every problem is a PackageError."""
    try:
        manifest = json.loads(data)
    except (UnicodeError, ValueError) as exc:
        raise PackageError(f"{label}: manifest.json is not valid JSON ({exc})") from None
    except RecursionError:
        raise PackageError(f"{label}: manifest.json is nested too deeply") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"{label}: manifest.json must hold an object")
    for key, (kind, required) in SCHEMA.items():
        if key not in manifest and required:
            raise PackageError(f"{label}: manifest.json lacks '{key}'")
        if key in manifest and (not isinstance(manifest[key], kind) or isinstance(manifest[key], bool)):
            raise PackageError(f"{label}: manifest '{key}' has the wrong type")
    extra = sorted(set(manifest) - set(SCHEMA))
    if extra:
        raise PackageError(f"{label}: manifest has unknown key '{extra[0]}'")
    _check_strings({k: v for k, v in manifest.items() if k != "description"}, label)
    if len(manifest.get("description", "")) > MAX_DESCRIPTION:
        raise PackageError(f"{label}: manifest description is longer than {MAX_DESCRIPTION} characters")
    if manifest["format"] != FORMAT or manifest["format_version"] != FORMAT_VERSION:
        raise PackageError(
            f"{label}: format {manifest['format']!r} v{manifest['format_version']} is not "
            f"{FORMAT} v{FORMAT_VERSION} (a newer edgeadapt may read it)"
        )
    if manifest["dtype"] not in DTYPES or manifest["loader"] not in updates.LOADERS:
        raise PackageError(f"{label}: manifest dtype or loader is not one this version knows")
    method = updates.METHODS.get(manifest["method"])
    if method is None or method.loader != manifest["loader"]:
        raise PackageError(f"{label}: manifest method is not one this version knows, or not for its loader")
    if manifest.get("kind", "update") not in KINDS:
        raise PackageError(f"{label}: manifest kind must be one of {', '.join(KINDS)}")
    if manifest.get("kind", "update") != "update" and not method.capabilities.lora_family:
        raise PackageError(f"{label}: a library holds LoRA-family adapters, not {manifest['method']}")
    if manifest["version"] < 1 or not CHANNEL.fullmatch(manifest["channel"]):
        raise PackageError(f"{label}: manifest version must be >= 1 and channel a short lower-case name")
    from edgeadapt.deploy.trust import parse_time

    if parse_time(manifest["expires"], f"{label}: expires") <= parse_time(
        manifest["created"], f"{label}: created"
    ):
        raise PackageError(f"{label}: manifest expires before it was created")
    base = manifest["base_model"]
    if not isinstance(base.get("fingerprint"), str) or not isinstance(base.get("name"), str):
        raise PackageError(f"{label}: manifest base_model needs a name and a fingerprint")
    _check_experts(manifest, label)
    _check_health(manifest.get("health"), label)
    _check_runtime(manifest, label)
    for entry in manifest["files"]:
        ok = isinstance(entry, dict) and set(entry) == {"path", "sha256", "size"}
        if (
            not ok
            or not isinstance(entry["size"], int)
            or isinstance(entry["size"], bool)
            or entry["size"] < 0
        ):
            raise PackageError(f"{label}: manifest files entries need path, sha256 and a size >= 0")
    return manifest


EXPERT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # as a library names its experts folders
EXPERT_FIELDS = {"name": str, "domain": str, "description": str}
MAX_PPL_RATIO = 100.0


def _check_experts(manifest: dict[str, Any], label: str) -> None:
    """A library package lists its experts, an expert package exactly one; each a plain name (never a path)."""
    kind = manifest.get("kind", "update")
    experts = manifest.get("experts")
    if kind == "update":
        if experts is not None:
            raise PackageError(f"{label}: an update package lists no experts")
        return
    if not isinstance(experts, list) or not experts or (kind == "expert" and len(experts) != 1):
        raise PackageError(
            f"{label}: a {kind} package lists {'one expert' if kind == 'expert' else 'its experts'}"
        )
    for entry in experts:
        if not isinstance(entry, dict) or {k: type(v) for k, v in entry.items()} != EXPERT_FIELDS:
            raise PackageError(f"{label}: each expert needs a name, a domain and a description (strings)")
        if not EXPERT_NAME.fullmatch(entry["name"]):
            raise PackageError(f"{label}: expert name {entry['name'][:40]!r} is not a plain name")
    if kind == "expert" and not isinstance(manifest.get("router_id"), str):
        raise PackageError(f"{label}: an expert package names the router its key belongs to (router_id)")


def _check_health(health: Any, label: str) -> None:
    if health is None:
        return
    ratio = health.get("max_ppl_ratio")
    if set(health) != {"max_ppl_ratio"} or not isinstance(ratio, int | float) or isinstance(ratio, bool):
        raise PackageError(f"{label}: manifest health holds max_ppl_ratio, a number")
    if not 1.0 < ratio <= MAX_PPL_RATIO:
        raise PackageError(f"{label}: manifest health.max_ppl_ratio must be in (1, {MAX_PPL_RATIO:g}]")


GGUF_KINDS = ("adapter", "model")  # a GGUF LoRA adapter, or a whole model


def _check_runtime(manifest: dict[str, Any], label: str) -> None:
    """Which device runtime the package is for, what its GGUF files are, and the scale it recommends."""
    from edgeadapt.deploy.runtime import RUNTIMES, UNNAMED_RUNTIME, get_runtime

    runtime = manifest.get("runtime", UNNAMED_RUNTIME)
    get_runtime(UNNAMED_RUNTIME)  # the built-in runtimes registered
    if runtime not in RUNTIMES:
        raise PackageError(f"{label}: manifest runtime {runtime[:40]!r} is not one this version knows")
    gguf = manifest.get("gguf")
    if runtime != UNNAMED_RUNTIME and manifest.get("kind", "update") == "update":
        if (
            not isinstance(gguf, dict)
            or gguf.get("kind") not in GGUF_KINDS
            or not isinstance(gguf.get("type"), str)
        ):
            raise PackageError(
                f"{label}: a {runtime} update names its GGUF: kind lora or model, and its type"
            )
    scale = manifest.get("scale", 1.0)
    if not 0 <= scale <= 2:
        raise PackageError(f"{label}: manifest scale must be in [0, 2]")


def _check_strings(value: Any, label: str, depth: int = 0) -> None:
    if depth > 8:
        raise PackageError(f"{label}: manifest is nested too deeply")
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise PackageError(f"{label}: a manifest field is longer than {MAX_STRING} characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, label, depth + 1)
            _check_strings(item, label, depth + 1)
    if isinstance(value, list):
        if len(value) > 4096:
            raise PackageError(f"{label}: a manifest list is longer than 4096 entries")
        for item in value:
            _check_strings(item, label, depth + 1)
