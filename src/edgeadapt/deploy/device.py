"""A device folder: the base model and the active update, switched atomically, with one update kept for
rollback. This is the device side of an over-the-air update, runnable on any machine.

    DIR/base/            the base checkpoint (`edgeadapt device init`)
    DIR/updates/ID/      verified, extracted updates (ID: the manifest's hash); installed.json lists the
                         on-device files' hashes, written before the folder gets its final name
    DIR/state.json       {"active": ID or null, "previous": ID or null}: the one file the switch replaces

Apply: verify the package against DIR/base, extract into updates/.staging-ID, fsync, rename to updates/ID,
then write state.json.tmp, fsync and rename it over state.json. A crash before the last rename leaves the
old state.json (old update active, complete); after it, the new one. Leftover staging folders are never
read and are removed by the next apply.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from edgeadapt.deploy import build
from edgeadapt.deploy.archive import PackageError

STATE = "state.json"
INSTALLED = "installed.json"
CRASH_POINTS = (
    "start",
    "verified",
    "mid-file",
    "extracted",
    "written",
    "renamed",
    "before_switch",
    "switched",
)
crash_point = build.crash_point
fsync_dir = build.fsync_path


def init(device_dir: Path, model_dir: Path) -> Path:
    """Put a copy of the base checkpoint into DIR/base (a device ships with its base model)."""
    base = device_dir / "base"
    if base.exists():
        raise PackageError(f"{base} exists: this device folder is already set up")
    tmp = device_dir / ".base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp)
    fsync_dir(tmp)
    tmp.rename(base)
    write_state(device_dir, {"active": None, "previous": None})
    return base


def read_state(device_dir: Path) -> dict[str, Any]:
    if not (device_dir / "base").is_dir():
        raise PackageError(f"{device_dir}: not a device folder (run `edgeadapt device init` first)")
    path = device_dir / STATE
    return json.loads(path.read_text()) if path.is_file() else {"active": None, "previous": None}


def write_state(device_dir: Path, state: dict[str, Any]) -> None:
    tmp = device_dir / (STATE + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    crash_point("before_switch")
    os.replace(tmp, device_dir / STATE)
    fsync_dir(device_dir)


def apply(
    package: Path, device_dir: Path, pubkey: Path | None, allow_unsigned: bool = False
) -> dict[str, Any]:
    """Verify, install and switch to the update in `package`; the previous update stays for rollback."""
    state = read_state(device_dir)
    crash_point("start")
    verified = build.verify(package, pubkey, device_dir / "base", allow_unsigned)
    try:
        update_id = hashlib.sha256(json.dumps(verified.manifest, sort_keys=True).encode()).hexdigest()[:16]
        if update_id == state["active"]:
            return {**status(device_dir), "changed": False}
        updates = device_dir / "updates"
        final = updates / update_id
        if final.is_dir() and not _intact(device_dir, update_id):
            shutil.rmtree(final)
        if not final.is_dir():
            staging = updates / f".staging-{update_id}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            crash_point("verified")
            files = build.extract(verified, staging)
            crash_point("extracted")
            installed = {
                "manifest": verified.manifest,
                "signed": verified.signed,
                "files": {p.name: build.file_entry(p, p.name)["sha256"] for p in files},
            }
            (staging / INSTALLED).write_text(json.dumps(installed, indent=1))
            build.fsync_path(staging / INSTALLED)
            fsync_dir(staging)
            crash_point("written")
            staging.rename(final)
            fsync_dir(updates)
        crash_point("renamed")
        write_state(device_dir, {"active": update_id, "previous": state["active"]})
        crash_point("switched")
    finally:
        verified.opened.close()
    _clean(device_dir, keep={update_id, state["active"]})
    return {**status(device_dir), "changed": True}


def _clean(device_dir: Path, keep: set) -> None:
    for folder in (device_dir / "updates").iterdir():
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _intact(device_dir: Path, update_id: str) -> bool:
    try:
        check_update(device_dir, update_id)
        return True
    except PackageError:
        return False


def check_update(device_dir: Path, update_id: str) -> dict[str, Any]:
    """The installed record of an update after re-hashing its files; PackageError if anything differs."""
    folder = device_dir / "updates" / update_id
    if not (folder / INSTALLED).is_file():
        raise PackageError(f"{folder}: update is missing or incomplete")
    installed = json.loads((folder / INSTALLED).read_text())
    for name, digest in installed["files"].items():
        path = folder / name
        if not path.is_file() or build.file_entry(path, name)["sha256"] != digest:
            raise PackageError(f"{path}: does not match the hash recorded when it was installed")
    return installed


def describe(device_dir: Path, update_id: str | None) -> dict[str, Any] | None:
    if update_id is None:
        return None
    manifest = check_update(device_dir, update_id)["manifest"]
    return {
        "id": update_id,
        "variant": manifest["variant"],
        "method": manifest["method"],
        "dtype": manifest["dtype"],
        "verified": True,
    }


def status(device_dir: Path) -> dict[str, Any]:
    state = read_state(device_dir)
    updates = device_dir / "updates"
    leftovers = sorted(p.name for p in updates.glob(".staging-*")) if updates.is_dir() else []
    return {
        "active": describe(device_dir, state["active"]),
        "previous": describe(device_dir, state["previous"]),
        "incomplete_staging": leftovers,
    }


def rollback(device_dir: Path) -> dict[str, Any]:
    """Switch back to the previous update (or to the bare base model); the current one becomes previous."""
    state = read_state(device_dir)
    if state["active"] is None and state["previous"] is None:
        raise PackageError(f"{device_dir}: nothing to roll back (no update was applied)")
    if state["previous"] is not None:
        check_update(device_dir, state["previous"])
    write_state(device_dir, {"active": state["previous"], "previous": state["active"]})
    return status(device_dir)


def load_active(device_dir: Path):
    """The model the device runs now: the base with the active update, checked first, loaded by the loader
    its manifest names."""
    from edgeadapt import models, updates
    from edgeadapt.inference.predictor import ModelPredictor

    state = read_state(device_dir)
    base, tokenizer = models.load(device_dir / "base", device=models.pick_device())
    if state["active"] is None:
        return ModelPredictor(base, tokenizer)
    manifest = check_update(device_dir, state["active"])["manifest"]
    model = updates.loader(manifest["loader"])(base, device_dir / "updates" / state["active"])
    return ModelPredictor(model, tokenizer)


def generate(device_dir: Path, prompt: str, max_new_tokens: int = 48) -> str:
    from edgeadapt.data.format import prompt_ids

    predictor = load_active(device_dir)
    ids = prompt_ids(predictor.tokenizer, [{"role": "user", "content": prompt}])
    return predictor.generate([ids], max_new_tokens, 1, desc="device")[0]
