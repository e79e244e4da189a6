"""Device runtimes: what runs the model on a device. One interface, registered implementations (as methods
and routers are): `transformers` (the checkpoint in PyTorch) and `llamacpp` (GGUF files in llama.cpp).
Nothing else branches on a runtime's name: the device folder records its runtime at `device init`
(DIR/device.json) and every step that depends on it (the base it holds, which packages it takes, how an
update is checked, how a request is answered) goes through the registered runtime.

A runtime provides:

- `init_base(base_dir, model_dir, options) -> dict`: write the base the device holds into `base_dir`
  (a fresh folder), returning what device.json records beside the runtime's name (the base model's
  fingerprint: a package is bound to it);
- `check(folder, manifest, device_dir)`: PackageError unless an extracted update may become active
  (every file against the base, then a health check of the update loaded as the runtime will run it);
- `serve(device_dir, folder, manifest, scale) -> Server`: the active model (folder None: the bare base),
  answering `generate(prompt, max_new_tokens) -> (answer, route or None)`;
- optionally, how a package for it is made when its files are not the PyTorch ones: `run_sources(run,
  variant, tmp, options)`, `library_sources(library, tmp, names=None)` (with `names`, those experts
  alone: an expert package), `adapter_sources(folder, method, base_dir,
  tmp)`, each giving (member path, file) pairs written into `tmp` (and for an update, manifest fields).

A package names the runtime it was built for (manifest `runtime`; a PyTorch package names none, so devices
of earlier versions keep taking it); a device refuses a package for another runtime before anything is
extracted. `device init` and `package export` default to llama.cpp (DEFAULT_RUNTIME): it is what devices
run, at 5x transformers' tokens/s on two threads (README, "Run it on a device").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError, unknown
from edgeadapt.core.files import tree_sha256, write_json_atomic
from edgeadapt.deploy.archive import PackageError

DEVICE_FILE = "device.json"
# What `device init` and `package export` use when no runtime is named.
DEFAULT_RUNTIME = "llamacpp"
# The runtime of a package or device folder that names none: transformers was the only runtime before
# llama.cpp's, and its packages still name none.
UNNAMED_RUNTIME = "transformers"


@dataclass(frozen=True)
class DeviceRuntime:
    name: str
    description: str
    init_base: Callable[[Path, Path, dict[str, Any]], dict[str, Any]]
    check: Callable[[Path, dict[str, Any], Path], None]
    serve: Callable[..., Any]
    run_sources: Callable[..., Any] | None = None
    library_sources: Callable[..., Any] | None = None
    adapter_sources: Callable[..., Any] | None = None


RUNTIMES: dict[str, DeviceRuntime] = {}


def register_runtime(**fields: Any) -> DeviceRuntime:
    runtime = DeviceRuntime(**fields)
    if runtime.name in RUNTIMES:
        raise ValueError(f"device runtime '{runtime.name}' is registered twice")
    RUNTIMES[runtime.name] = runtime
    return runtime


def get_runtime(name: str) -> DeviceRuntime:
    import edgeadapt.deploy.runtimes  # noqa: F401  (registers the built-in runtimes)

    if name not in RUNTIMES:
        raise unknown("device runtime", name, RUNTIMES)
    return RUNTIMES[name]


def check_package_dtype(dtype: str, runtime: str, what: str) -> None:
    """--dtype (bf16, int8) shapes PyTorch files; a runtime with files of its own (GGUF) takes them as written."""
    if dtype != "fp32":
        raise UserError(
            f"--dtype {dtype} is for PyTorch packages; a {runtime} {what} travels as GGUF "
            "(for a PyTorch package: --runtime transformers)"
        )


def write_device_info(device_dir: Path, info: dict[str, Any]) -> None:
    write_json_atomic(Path(device_dir) / DEVICE_FILE, info, indent=1)


def device_info(device_dir: Path) -> dict[str, Any]:
    """What device.json records: the runtime and the base's fingerprint. A folder set up before device.json
    existed runs transformers on the checkpoint in base/ (its fingerprint is computed from it)."""
    path = Path(device_dir) / DEVICE_FILE
    if not path.exists():
        from edgeadapt.models.fingerprint import fingerprint

        return {"runtime": UNNAMED_RUNTIME, "base_fingerprint": fingerprint(Path(device_dir) / "base")}
    try:
        info = json.loads(path.read_text())
        if not isinstance(info, dict) or not all(
            isinstance(info.get(k), str) for k in ("runtime", "base_fingerprint")
        ):
            raise ValueError("runtime and base_fingerprint must be strings")
    except (OSError, ValueError, RecursionError) as exc:
        raise PackageError(
            f"{path} is corrupt ({exc}): set the device up again with `edgeadapt device init`"
        ) from None
    return info


def checked_base_fingerprint(device_dir: Path) -> str:
    """The fingerprint updates are bound to, once the base files are the ones `device init` wrote: a config,
    tokenizer or weights file changed since makes every update's binding meaningless."""
    info = device_info(device_dir)
    recorded = info.get("base_files")  # SHA-256 of every base file, recorded at `device init`
    if isinstance(recorded, dict):
        have = tree_sha256(Path(device_dir) / "base")
        changed = sorted(set(recorded) ^ set(have) | {k for k in recorded if have.get(k) != recorded[k]})
        if changed:
            raise PackageError(
                f"{Path(device_dir) / 'base' / changed[0]} changed since `device init`: the base is not the one "
                "updates are built for (set the device up again with `edgeadapt device init`)"
            )
    return info["base_fingerprint"]


def runtime_of(device_dir: Path) -> DeviceRuntime:
    return get_runtime(device_info(device_dir)["runtime"])


def check_runtime(manifest: dict[str, Any], device_dir: Path, label: str) -> None:
    """A package built for another runtime is refused with one line that says which."""
    wanted, have = manifest.get("runtime", UNNAMED_RUNTIME), device_info(device_dir)["runtime"]
    if wanted != have:
        raise PackageError(
            f"{label}: a package for the {wanted} runtime; this device runs {have} "
            f"(export it with `package export ... --runtime {have}`)"
        )
