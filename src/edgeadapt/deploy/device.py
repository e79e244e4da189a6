"""A device folder: the base model and the active update, switched atomically, with one update kept for
rollback. This is the device side of an over-the-air update, runnable on any machine.

    DIR/base/                  the base checkpoint (`edgeadapt device init`)
    DIR/trust.json             root public keys, threshold and the current key list (`deploy.trust`), if any
    DIR/updates/ID/            verified, extracted updates (ID: the manifest's hash)
    DIR/updates/ID/.installed.json   the manifest and every on-device file's hash, written before the folder
                               gets its final name (a package's files cannot be named so)
    DIR/state.json             {"active", "previous", "highest": {channel: version}, "history"}: the one
                               file the switch replaces
    DIR/.lock                  held by the one apply, trust or rollback running

Apply, under the lock: verify the package (signature, hashes, base, expiry) and its release (a version
above the highest accepted on its channel: no downgrade, no replay); make room (the update rollback no
longer needs goes first when the disk is short); extract into updates/.staging-ID, check every tensor
against the base, load the update and run a health check (finite logits, a non-empty answer), fsync,
rename to updates/ID, then write state.json.tmp, fsync and rename it over state.json. A crash before the
last rename leaves the old update active, complete; after it, the new one. A failed apply removes its
staging folder. `rollback` is the operator's: it switches back without lowering the highest version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from edgeadapt.core.files import atomic_write
from edgeadapt.deploy import build
from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.trust import TrustStore, iso, now

STATE = "state.json"
INSTALLED = ".installed.json"
LOCK = ".lock"
HISTORY = 50
CRASH_POINTS = (
    "start",
    "verified",
    "mid-file",
    "extracted",
    "checked",
    "written",
    "renamed",
    "before_switch",
    "switched",
)
crash_point = build.crash_point
fsync_dir = build.fsync_path


def init(device_dir: Path, model_dir: Path, root_pubkeys: list[Path] = (), root_threshold: int = 1) -> Path:
    """Put a copy of the base checkpoint into DIR/base (a device ships with its base model), and the root
    keys it will trust, if any."""
    device_dir = Path(device_dir)
    if device_dir.exists() and not device_dir.is_dir():
        raise PackageError(f"{device_dir} is a file: --device-dir names a folder")
    base = device_dir / "base"
    if base.exists():
        raise PackageError(f"{base} exists: this device folder is already set up")
    device_dir.mkdir(parents=True, exist_ok=True)
    if root_pubkeys:
        TrustStore.create(device_dir, list(root_pubkeys), root_threshold)
    tmp = device_dir / ".base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp)
    fsync_dir(tmp)
    tmp.rename(base)
    write_state(device_dir, empty_state())
    return base


def empty_state() -> dict[str, Any]:
    return {"active": None, "previous": None, "highest": {}, "history": []}


def read_state(device_dir: Path) -> dict[str, Any]:
    if not (Path(device_dir) / "base").is_dir():
        raise PackageError(f"{device_dir}: not a device folder (run `edgeadapt device init` first)")
    path = Path(device_dir) / STATE
    if not path.is_file():
        return empty_state()
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or not {"active", "previous"} <= set(state):
            raise ValueError("not a device state")
    except (OSError, ValueError, RecursionError) as exc:
        raise PackageError(
            f"{path} is corrupt ({exc}). The base model is intact: move the file away to run the bare base model, "
            "then apply the update again (versions it had accepted are forgotten with it)"
        ) from None
    return {**empty_state(), **state}


def write_state(device_dir: Path, state: dict[str, Any]) -> None:
    with atomic_write(Path(device_dir) / STATE) as handle:
        handle.write(json.dumps(state).encode())
        handle.flush()
        os.fsync(handle.fileno())
        crash_point("before_switch")


@contextlib.contextmanager
def locked(device_dir: Path, timeout_s: float = 600.0):
    """One apply, trust or rollback at a time: a second one waits for the first (up to `timeout_s`)."""
    path = Path(device_dir) / LOCK
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PackageError(
                        f"{device_dir}: another apply has held the device for over {timeout_s:.0f} s; try again"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def event(state: dict[str, Any], kind: str, **fields: Any) -> list[dict[str, Any]]:
    return (state.get("history", []) + [{"at": iso(now()), "event": kind, **fields}])[-HISTORY:]


def check_release(manifest: dict[str, Any], state: dict[str, Any], label: str) -> None:
    """No downgrade and no replay: the version must be above every one accepted on its channel."""
    highest = state["highest"].get(manifest["channel"])
    if highest is not None and manifest["version"] <= highest:
        kind = "replay of an accepted release" if manifest["version"] == highest else "downgrade"
        raise PackageError(
            f"{label}: version {manifest['version']} on channel '{manifest['channel']}' is not above {highest}, "
            f"the highest this device accepted ({kind}); `edgeadapt device rollback` is how an operator goes back"
        )


def apply(
    package: Path,
    device_dir: Path,
    pubkey: Path | None,
    allow_unsigned: bool = False,
    max_bytes: int = build.DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Verify, check, install and switch to the update in `package`; the previous update stays for rollback."""
    device_dir = Path(device_dir)
    read_state(device_dir)  # a device folder, with a readable state
    with locked(device_dir):
        state = read_state(device_dir)
        crash_point("start")
        trust = TrustStore(device_dir)
        if trust.configured and pubkey is not None:
            raise PackageError(
                "this device trusts its root keys and key list: --pubkey is not used, leave it out"
            )
        verified = build.verify(package, pubkey, device_dir / "base", allow_unsigned, max_bytes, trust)
        try:
            check_release(verified.manifest, state, str(package))
            update_id = hashlib.sha256(json.dumps(verified.manifest, sort_keys=True).encode()).hexdigest()[
                :16
            ]
            state = make_room(device_dir, state, verified)
            final = device_dir / "updates" / update_id
            if final.is_dir():
                shutil.rmtree(final)  # an earlier copy of this very release, left by a rollback: reinstall it
            install(device_dir, verified, update_id, state)
            if verified.keylist is not None:
                trust.install(verified.keylist, f"{package}: its key list")
            manifest = verified.manifest
            highest = {**state["highest"], manifest["channel"]: manifest["version"]}
            history = event(
                state, "apply", id=update_id, version=manifest["version"], channel=manifest["channel"]
            )
            write_state(
                device_dir,
                {"active": update_id, "previous": state["active"], "highest": highest, "history": history},
            )
            crash_point("switched")
        finally:
            verified.opened.close()
        clean(device_dir, keep={update_id, state["active"]})
    return {**status(device_dir), "changed": True}


def room_needed(manifest: dict[str, Any]) -> int:
    """Free disk an update needs: its files twice (int8 expands to fp32) and room to load it."""
    return sum(f["size"] for f in manifest["files"]) * 2 + (64 << 20)


def make_room(device_dir: Path, state: dict[str, Any], verified: build.Verified) -> dict[str, Any]:
    """Enough free disk for the new update, dropping the update rollback will no longer need if that is what
    it takes (and only if that is enough); a clear error otherwise, with nothing changed."""
    needed = room_needed(verified.manifest)
    updates = device_dir / "updates"
    updates.mkdir(parents=True, exist_ok=True)
    for leftover in updates.glob(".staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    free = shutil.disk_usage(updates).free
    if free >= needed:
        return state
    previous = updates / str(state["previous"])
    held = sum(p.stat().st_size for p in previous.rglob("*") if p.is_file()) if state["previous"] else 0
    if free + held < needed:
        raise PackageError(
            f"{device_dir}: the update needs about {needed:,} bytes free, {free:,} are; nothing was changed"
        )
    # Once the new update is active, the previous one is no longer reachable by rollback: it goes first.
    state = {
        **state,
        "previous": None,
        "history": event(state, "dropped", id=state["previous"], reason="disk space"),
    }
    write_state(device_dir, state)
    clean(device_dir, keep={state["active"]})
    return state


def install(device_dir: Path, verified: build.Verified, update_id: str, state: dict[str, Any]) -> None:
    """Extract, check against the base, health-check and move into updates/ID (crash-safe)."""
    from edgeadapt.deploy.health import check_installed

    updates = device_dir / "updates"
    staging = updates / f".staging-{update_id}"
    staging.mkdir(parents=True)
    try:
        crash_point("verified")
        build.extract(verified, staging)
        if verified.manifest.get("kind") == "expert":  # joins the library the device runs now
            from edgeadapt.deploy.library_packages import join_library

            join_library(staging, updates / str(state["active"]), verified.manifest)
        crash_point("extracted")
        check_installed(staging, verified.manifest, device_dir / "base")
        crash_point("checked")
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        installed = {
            "manifest": verified.manifest,
            "signed": verified.signed,
            "files": {str(p.relative_to(staging)): build.file_entry(p, p.name)["sha256"] for p in files},
        }
        (staging / INSTALLED).write_text(json.dumps(installed, indent=1))
        build.fsync_path(staging / INSTALLED)
        fsync_dir(staging)
        crash_point("written")
        staging.rename(updates / update_id)
        fsync_dir(updates)
        crash_point("renamed")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a failed apply leaves the disk as it found it
        raise


def clean(device_dir: Path, keep: set) -> None:
    updates = device_dir / "updates"
    for folder in updates.iterdir() if updates.is_dir() else ():
        if folder.name not in keep and not folder.name.startswith(".staging-"):
            shutil.rmtree(folder, ignore_errors=True)


def check_update(device_dir: Path, update_id: str) -> dict[str, Any]:
    """The installed record of an update after re-hashing its files; PackageError if anything differs."""
    folder = Path(device_dir) / "updates" / update_id
    if not (folder / INSTALLED).is_file():
        raise PackageError(f"{folder}: update is missing or incomplete")
    try:
        installed = json.loads((folder / INSTALLED).read_text())
        files = installed["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackageError(
            f"{folder / INSTALLED}: unreadable ({exc}); `edgeadapt device rollback` or apply again"
        ) from None
    for name, digest in files.items():
        path = folder / name
        if not path.is_file() or build.file_entry(path, name)["sha256"] != digest:
            raise PackageError(f"{path}: does not match the hash recorded when it was installed")
    return installed


def describe(device_dir: Path, update_id: str | None) -> dict[str, Any] | None:
    if update_id is None:
        return None
    installed = check_update(device_dir, update_id)
    manifest = installed["manifest"]
    described = {
        "id": update_id,
        "kind": manifest.get("kind", "update"),
        "variant": manifest["variant"],
        "method": manifest["method"],
        "dtype": manifest["dtype"],
        "version": manifest.get("version"),
        "channel": manifest.get("channel"),
        "expires": manifest.get("expires"),
        "signed": installed.get("signed", False),
        "verified": True,
    }
    if described["kind"] != "update":
        from edgeadapt.updates.library import Library

        described["experts"] = list(Library.read(Path(device_dir) / "updates" / update_id).experts)
    return described


def status(device_dir: Path) -> dict[str, Any]:
    state = read_state(device_dir)
    updates = Path(device_dir) / "updates"
    leftovers = sorted(p.name for p in updates.glob(".staging-*")) if updates.is_dir() else []
    trust = TrustStore(device_dir)
    keylist = trust.data.get("keylist") if trust.configured else None
    return {
        "active": describe(device_dir, state["active"]),
        "previous": describe(device_dir, state["previous"]),
        "highest": state["highest"],
        "trust": {
            "roots": len(trust.roots),
            "threshold": trust.threshold,
            "keylist_version": keylist["signed"]["version"] if keylist else None,
        }
        if trust.configured
        else None,
        "incomplete_staging": leftovers,
    }


def rollback(device_dir: Path) -> dict[str, Any]:
    """The operator switches back to the previous update (or the bare base model); the current one becomes
    previous. The highest accepted versions stay: no package can follow the rollback down."""
    device_dir = Path(device_dir)
    read_state(device_dir)
    with locked(device_dir):
        state = read_state(device_dir)
        if state["active"] is None and state["previous"] is None:
            raise PackageError(f"{device_dir}: nothing to roll back (no update was applied)")
        if state["previous"] is not None:
            check_update(device_dir, state["previous"])
        history = event(state, "rollback", **{"from": state["active"], "to": state["previous"]})
        write_state(
            device_dir,
            {**state, "active": state["previous"], "previous": state["active"], "history": history},
        )
    return status(device_dir)


def trust_keylist(device_dir: Path, keylist_file: Path) -> dict[str, Any]:
    """`device trust FILE`: take a root-signed key list newer than the one the device holds."""
    device_dir = Path(device_dir)
    read_state(device_dir)
    with locked(device_dir):
        trust = TrustStore(device_dir)
        if not trust.configured:
            raise PackageError(
                f"{device_dir}: this device trusts no root key (set it up with `device init --root-pubkey`)"
            )
        try:
            document = json.loads(Path(keylist_file).read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise PackageError(f"{keylist_file}: not a readable key list ({exc})") from None
        signed = trust.install(document, str(keylist_file))
    return {
        "keylist_version": signed["version"],
        "keys": [k["id"] for k in signed["keys"]],
        "expires": signed["expires"],
    }


def load_active(device_dir: Path):
    """The model the device runs now: the base with the active update, checked first, loaded by the loader
    its manifest names; an adapter library runs routed (every expert loaded, none merged)."""
    from edgeadapt import models

    state = read_state(device_dir)
    base, tokenizer = models.load(Path(device_dir) / "base", device=models.pick_device())
    if state["active"] is None:
        from edgeadapt.inference.predictor import ModelPredictor

        return ModelPredictor(base, tokenizer)
    from edgeadapt.deploy.health import predictor_for

    folder = Path(device_dir) / "updates" / state["active"]
    return predictor_for(check_update(device_dir, state["active"])["manifest"], folder, base, tokenizer)


def generate(device_dir: Path, prompt: str, max_new_tokens: int = 48) -> tuple[str, Any]:
    """The active model's greedy answer, and the route it took (None unless a library is active)."""
    from edgeadapt.data.format import prompt_ids

    predictor = load_active(device_dir)
    ids = prompt_ids(predictor.tokenizer, [{"role": "user", "content": prompt}])
    answer = predictor.generate([ids], max_new_tokens, 1, desc="device")[0]
    return answer, predictor.log[-1][1] if hasattr(predictor, "log") else None
