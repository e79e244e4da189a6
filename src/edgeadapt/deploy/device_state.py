"""A device folder's state: which update is active and which is kept for rollback, the channel the device
follows, the highest version it accepted per channel and a history; read by one reader that checks every
field's type before anything acts on it, written atomically (the rename is the switch), under one lock.
And what `device status` reports of it: each installed update re-hashed against its record, expiry of the
updates and the key list, and a damaged update reported (with what it means for a rollback).

    DIR/state.json               {"channel", "active", "previous", "highest": {channel: version}, "history"}
    DIR/.lock                    held by the one apply, trust or rollback running
    DIR/updates/ID/.installed.json   an update's manifest and every file's hash, as it was installed
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from edgeadapt.core.files import atomic_write
from edgeadapt.deploy import build
from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.manifest import CHANNEL
from edgeadapt.deploy.runtime import UNNAMED_RUNTIME
from edgeadapt.deploy.trust import TrustStore, iso, now, parse_time

STATE = "state.json"
INSTALLED = ".installed.json"
LOCK = ".lock"
HISTORY = 50
DEFAULT_CHANNEL = "default"
UPDATE_ID = re.compile(r"[0-9a-f]{16}")
crash_point = build.crash_point


def empty_state(channel: str = DEFAULT_CHANNEL) -> dict[str, Any]:
    return {"channel": channel, "active": None, "previous": None, "highest": {}, "history": []}


def state_problem(state: Any) -> str | None:
    """What is wrong with a state.json's content, or None."""
    if not isinstance(state, dict) or not {"active", "previous"} <= set(state):
        return "not a device state"
    for key in ("active", "previous"):
        if state[key] is not None and not (isinstance(state[key], str) and UPDATE_ID.fullmatch(state[key])):
            return f"'{key}' is not an update id"
    highest = state.get("highest", {})
    if not isinstance(highest, dict) or not all(
        isinstance(c, str) and isinstance(v, int) and not isinstance(v, bool) for c, v in highest.items()
    ):
        return "'highest' is not a mapping of channel to version"
    if not isinstance(state.get("history", []), list):
        return "'history' is not a list"
    channel = state.get("channel", DEFAULT_CHANNEL)
    if not isinstance(channel, str) or not CHANNEL.fullmatch(channel):
        return "'channel' is not a channel name"
    return None


def read_state(device_dir: Path) -> dict[str, Any]:
    if not (Path(device_dir) / "base").is_dir():
        raise PackageError(f"{device_dir}: not a device folder (run `edgeadapt device init` first)")
    path = Path(device_dir) / STATE
    if not path.exists():
        return empty_state()
    try:
        state = json.loads(path.read_text())
        problem = state_problem(state)
        if problem:
            raise ValueError(problem)
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)  # never through a planted link
    with os.fdopen(fd, "r+") as handle:
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
    """The device's own channel only (no release from another channel, whatever its version), and no
    downgrade or replay: the version must be above every one accepted on that channel."""
    channel = state.get("channel", DEFAULT_CHANNEL)
    if manifest["channel"] != channel:
        raise PackageError(
            f"{label}: a release on channel '{manifest['channel']}'; this device follows '{channel}' "
            "(set at `edgeadapt device init --channel`)"
        )
    highest = state["highest"].get(channel)
    if highest is not None and manifest["version"] <= highest:
        kind = "replay of an accepted release" if manifest["version"] == highest else "downgrade"
        raise PackageError(
            f"{label}: version {manifest['version']} on channel '{channel}' is not above {highest}, "
            f"the highest this device accepted ({kind}); `edgeadapt device rollback` is how an operator goes back"
        )


def check_update(device_dir: Path, update_id: str, rehash: bool = True) -> dict[str, Any]:
    """The installed record of an update after re-hashing its files; PackageError if anything differs."""
    folder = Path(device_dir) / "updates" / update_id
    if not (folder / INSTALLED).is_file():
        raise PackageError(f"{folder}: update is missing or incomplete")
    try:
        installed = json.loads((folder / INSTALLED).read_text())
        files, manifest = installed["files"], installed["manifest"]
        if not isinstance(files, dict) or not isinstance(manifest, dict):
            raise TypeError("files and manifest must be objects")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise PackageError(
            f"{folder / INSTALLED}: unreadable ({exc}); `edgeadapt device rollback` or apply again"
        ) from None
    for name, digest in files.items() if rehash else ():
        path = folder / name
        if ".." in Path(name).parts or not path.is_file() or build.file_entry(path, name)["sha256"] != digest:
            raise PackageError(f"{path}: does not match the hash recorded when it was installed")
    return installed


def describe(device_dir: Path, update_id: str | None, rehash: bool = True) -> dict[str, Any] | None:
    """What an installed update is, re-hashed (unless the caller just did); a damaged one says so instead
    of raising."""
    if update_id is None:
        return None
    try:
        installed = check_update(device_dir, update_id, rehash)
    except PackageError as exc:
        return {"id": update_id, "verified": False, "problem": str(exc)}
    manifest = installed["manifest"]
    described = {
        "id": update_id,
        "kind": manifest.get("kind", "update"),
        "variant": manifest.get("variant"),
        "method": manifest.get("method"),
        "dtype": manifest.get("dtype"),
        "version": manifest.get("version"),
        "channel": manifest.get("channel"),
        "expires": manifest.get("expires"),
        "expired": parse_time(manifest["expires"], "expires") <= now() if "expires" in manifest else None,
        "signed": installed.get("signed", False),
        "scale": installed.get("scale", 1.0),
        "runtime": manifest.get("runtime", UNNAMED_RUNTIME),
        "verified": True,
    }
    if described["kind"] != "update":
        from edgeadapt.updates.library import Library

        described["experts"] = list(Library.read(Path(device_dir) / "updates" / update_id).experts)
    return described


def status(device_dir: Path, strict: bool = True) -> dict[str, Any]:
    """The device's updates, re-hashed. `strict`: a damaged active update is an error (a damaged previous is
    reported, with what it means for a rollback)."""
    state = read_state(device_dir)
    updates = Path(device_dir) / "updates"
    leftovers = sorted(p.name for p in updates.glob(".staging-*")) if updates.is_dir() else []
    trust = TrustStore(device_dir)
    keylist = trust.data.get("keylist") if trust.configured else None
    active = describe(device_dir, state["active"])
    if strict and active and not active["verified"]:
        raise PackageError(active["problem"])
    return {
        "channel": state["channel"],
        "active": active,
        "previous": describe(device_dir, state["previous"]),
        "highest": state["highest"],
        "trust": {
            "roots": len(trust.roots),
            "threshold": trust.threshold,
            "keylist_version": keylist["signed"]["version"] if keylist else None,
            "keylist_expires": keylist["signed"]["expires"] if keylist else None,
            "keylist_expired": parse_time(keylist["signed"]["expires"], "expires") <= now()
            if keylist
            else None,
        }
        if trust.configured
        else None,
        "incomplete_staging": leftovers,
    }


def warnings_of(described: dict[str, Any]) -> list[str]:
    """What an operator must hear about the device's state: expired updates and key lists, a damaged
    previous update (rollback would refuse it)."""
    out = []
    active, previous, trust = described.get("active"), described.get("previous"), described.get("trust")
    if active and active.get("expired"):
        out.append(
            f"the active update expired on {active['expires']}: it is still served; apply a new release"
        )
    if previous and not previous.get("verified", True):
        out.append(f"the previous update is damaged, rollback will refuse it ({previous['problem']})")
    if trust and trust.get("keylist_expired"):
        out.append(f"the key list expired on {trust['keylist_expires']}: the root must sign a new one")
    return out
