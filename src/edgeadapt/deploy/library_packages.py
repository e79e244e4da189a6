"""Packages of an adapter library: the whole library with its router (`kind: library`), or one expert that
joins a library a device already holds (`kind: expert`: its adapter and its router key). Signed, verified,
bound to the base model and applied atomically like any update package.

    edgeadapt package export LIB --library [--sign KEY] [--compress] --out lib.eaupd
    edgeadapt package export LIB --expert NAME [--sign KEY] --out NAME.eaupd
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgeadapt import __version__
from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.deploy import build
from edgeadapt.deploy.gguf_packages import with_tmp
from edgeadapt.deploy.runtime import DEFAULT_RUNTIME, check_package_dtype, get_runtime
from edgeadapt.routing import get_router, load_router
from edgeadapt.updates.library import ADAPTER_FILES, LIBRARY_FILE, Library

ROUTER_KEY = "router_key.safetensors"


def library_folder(path: Path) -> Path:
    """A library folder, or the library inside a run folder of `edgeadapt library build`."""
    path = Path(path)
    return (
        path / "library"
        if not (path / LIBRARY_FILE).is_file() and (path / "library" / LIBRARY_FILE).is_file()
        else path
    )


def fields(library: Library, kind: str, experts: list[str]) -> dict[str, Any]:
    first = library.experts[experts[0]]
    return {
        "edgeadapt_version": __version__,
        "kind": kind,
        "method": first.method,
        "variant": kind if kind == "library" else experts[0],
        "loader": "peft",
        "rank": first.rank,
        "base_model": {"name": library.base_name, "fingerprint": library.base_fingerprint},
        "metrics": {},
        "experts": [
            {
                "name": n,
                "domain": library.experts[n].domain,
                "description": library.experts[n].description[:200],
            }
            for n in experts
        ],
    }


def expert_sources(library: Library, name: str) -> list[tuple[str, Path]]:
    return [(f"library/experts/{name}/{f}", library.expert_dir(name) / f) for f in ADAPTER_FILES]


def export_library(
    path: Path,
    out: Path,
    dtype: str = "fp32",
    sign_key: Path | None = None,
    compress: bool = False,
    release: dict | None = None,
    runtime: str = DEFAULT_RUNTIME,
) -> dict:
    library = Library.read(library_folder(path))
    if not library.router:
        raise UserError(f"{library.folder}: no router yet; `edgeadapt library build` trains one.")
    spec = fields(library, "library", list(library.experts)) | (release or {})
    engine = get_runtime(runtime)
    if engine.library_sources is not None:  # the runtime's own files (GGUF LoRAs), made first
        check_package_dtype(dtype, runtime, "library")
        return with_tmp(
            lambda tmp: build.build_members(
                engine.library_sources(library, tmp),
                Path(out),
                spec | {"runtime": runtime},
                "fp32",
                sign_key,
                compress,
            )
        )
    sources = [(f"library/{LIBRARY_FILE}", library.folder / LIBRARY_FILE)]
    sources += [(f"library/{f}", library.folder / f) for f in library.router]
    for name in library.experts:
        sources += expert_sources(library, name)
    return build.build_members(sources, Path(out), spec, dtype, sign_key, compress)


def export_expert(
    path: Path,
    name: str,
    out: Path,
    dtype: str = "fp32",
    sign_key: Path | None = None,
    compress: bool = False,
    release: dict | None = None,
    runtime: str = DEFAULT_RUNTIME,
) -> dict:
    """One expert and its router key, to join a library a device already holds (for a llama.cpp device the
    expert travels as a GGUF LoRA, as in a library package for it)."""
    from safetensors.torch import save_file

    library = Library.read(library_folder(path))
    if name not in library.experts:
        raise UserError(
            f"No expert '{name}' in {library.folder}.{did_you_mean(name, library.experts)} Experts: {', '.join(library.experts)}."
        )
    router = load_router(library.folder)
    if not get_router(router.kind).capabilities.joins:
        raise UserError(
            f"{library.folder}: its '{router.kind}' router takes no expert without retraining; export the whole --library"
        )
    engine = get_runtime(runtime)
    if engine.library_sources is not None:
        check_package_dtype(dtype, runtime, "expert")
    with tempfile.TemporaryDirectory(prefix="edgeadapt-expert-") as tmp:
        key = Path(tmp) / ROUTER_KEY
        save_file({"key": router.key_of(name).contiguous()}, str(key))
        spec = fields(library, "expert", [name]) | {"router_id": router.identity()} | (release or {})
        if engine.library_sources is not None:  # the runtime's own files (a GGUF LoRA), as for a library
            sources = engine.library_sources(library, Path(tmp), [name])
            spec["runtime"] = runtime
        else:
            sources = expert_sources(library, name)
        return build.build_members(
            sources + [(f"library/{ROUTER_KEY}", key)], Path(out), spec, dtype, sign_key, compress
        )


def join_library(staging: Path, active: Path, manifest: dict[str, Any]) -> None:
    """Device side of an expert package: the active library, copied, with the new expert and its key."""
    import shutil

    from safetensors.torch import load_file

    from edgeadapt.updates.library import Expert

    if not (active / LIBRARY_FILE).is_file():
        raise build.PackageError(
            "an expert package joins an installed adapter library; this device has none active"
        )
    keep = {LIBRARY_FILE, "experts", *Library.read(active).router}
    for item in active.iterdir():
        if item.name in keep:
            target = staging / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(item, target)
    library = Library.read(staging)
    spec = manifest["experts"][0]
    if spec["name"] in library.experts:
        raise build.PackageError(f"the installed library already has an expert named '{spec['name']}'")
    library.experts[spec["name"]] = Expert(
        spec["domain"], spec["description"], manifest["method"], manifest["rank"]
    )
    library.save()
    router = load_router(staging)
    if not get_router(router.kind).capabilities.joins:
        raise build.PackageError(f"the installed library's '{router.kind}' router takes no new expert")
    if manifest.get("router_id") != router.identity():
        raise build.PackageError(
            f"expert '{spec['name']}' was made for another router (its key means nothing to the installed "
            "library's): export it from the library the device runs, or ship the whole library"
        )
    from safetensors import SafetensorError

    try:
        key = load_file(str(staging / ROUTER_KEY))["key"].float()
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as exc:
        raise build.PackageError(f"{ROUTER_KEY}: not a readable router key ({str(exc)[:120]})") from None
    router.add_key(spec["name"], key)
    router.save(staging)
    (staging / ROUTER_KEY).unlink()
