"""A device folder: the base model and the active update, switched atomically, with one update kept for
rollback. This is the device side of an over-the-air update, runnable on any machine.

    DIR/base/                  the base checkpoint (`edgeadapt device init`)
    DIR/trust.json             root public keys, threshold and the current key list (`deploy.trust`), if any
    DIR/updates/ID/            verified, extracted updates (ID: the manifest's hash)
    DIR/updates/ID/.installed.json   the manifest and every on-device file's hash, written before the folder
                               gets its final name (a package's files cannot be named so)
    DIR/state.json             the one file the switch replaces (`device_state`)

Apply, under the lock: verify a private copy of the package (signature, hashes, base, expiry, a creation
time not in the future) and its release (the device's channel, a version above the highest accepted: no
downgrade, no replay); extract it into a temporary folder outside the device, every file compared with the
signed manifest; check every tensor against the base, load the update and run the health check. Only an
update that passed all of it may make room (the update rollback no longer needs goes first when the disk is
short) and is copied into updates/.staging-ID, each file compared again with what was checked, fsynced and
renamed to updates/ID; then state.json is replaced in one rename (the switch). A crash before that rename
leaves the old update active, complete; after it, the new one. `rollback` is the operator's: it switches
back without lowering the highest version.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from edgeadapt.core import scratch
from edgeadapt.core.files import fsync_dir, tree_sha256, write_json_atomic
from edgeadapt.deploy import build
from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.device_state import (  # noqa: F401  (status and its helpers are device.NAME too)
    DEFAULT_CHANNEL,
    INSTALLED,
    check_release,
    check_update,
    describe,
    empty_state,
    event,
    locked,
    read_state,
    status,
    warnings_of,
    write_state,
)
from edgeadapt.deploy.runtime import (
    DEFAULT_RUNTIME,
    check_runtime,
    checked_base_fingerprint,
    get_runtime,
    runtime_of,
    write_device_info,
)
from edgeadapt.deploy.trust import TrustStore

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


def init(
    device_dir: Path,
    model_dir: Path,
    root_pubkeys: list[Path] = (),
    root_threshold: int = 1,
    channel: str = DEFAULT_CHANNEL,
    runtime: str = DEFAULT_RUNTIME,
    options: dict[str, Any] | None = None,
) -> Path:
    """Put the base into DIR/base as the device's runtime holds it (a device ships with its base model: the
    checkpoint, or a GGUF file for llama.cpp), the root keys it will trust, if any, and the one channel it
    takes releases from; DIR/device.json records the runtime and the base's fingerprint."""
    from edgeadapt.deploy.manifest import CHANNEL

    engine = get_runtime(runtime)
    device_dir = Path(device_dir)
    if device_dir.exists() and not device_dir.is_dir():
        raise PackageError(f"{device_dir} is a file: --device-dir names a folder")
    if not CHANNEL.fullmatch(channel):
        raise PackageError(f"--channel: a short lower-case name (letters, digits, '_', '-'), got {channel!r}")
    base = device_dir / "base"
    if base.exists():
        raise PackageError(f"{base} exists: this device folder is already set up")
    device_dir.mkdir(parents=True, exist_ok=True)
    if root_pubkeys:
        TrustStore.create(device_dir, list(root_pubkeys), root_threshold)
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=device_dir))
    try:
        recorded = engine.init_base(tmp, Path(model_dir), dict(options or {}))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(tmp)
    write_device_info(device_dir, {"runtime": engine.name, **recorded, "base_files": tree_sha256(tmp)})
    tmp.rename(base)
    write_state(device_dir, empty_state(channel))
    return base


def apply(
    package: Path,
    device_dir: Path,
    pubkey: Path | None,
    allow_unsigned: bool = False,
    max_bytes: int = build.DEFAULT_MAX_BYTES,
    scale: float | None = None,
) -> dict[str, Any]:
    """Verify, check, install and switch to the update in `package`; the previous update stays for rollback.
    `scale`: the share of a LoRA update to apply (default: the package's recommended scale, or 1)."""
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
        verified = build.verify(
            package, pubkey, None, allow_unsigned, max_bytes, trust, checked_base_fingerprint(device_dir)
        )
        try:
            check_runtime(verified.manifest, device_dir, str(package))
            check_release(verified.manifest, state, str(package))
            scale = check_scale(verified.manifest if scale is None else {"scale": scale}, str(package))
            manifest = verified.manifest
            update_id = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
            with scratch.claimed("edgeadapt-check-") as tmp:  # one a killed apply left goes first
                checked = Path(tmp) / "update"
                hashes = check(device_dir, verified, state, checked, scale)
                state = make_room(device_dir, state, checked)  # only for an update that passed every check
                install(device_dir, checked, hashes, update_id, manifest, verified.signed, scale)
            if verified.keylist is not None:
                trust.install(verified.keylist, f"{package}: its key list")
            highest = {**state["highest"], manifest["channel"]: manifest["version"]}
            history = event(
                state, "apply", id=update_id, version=manifest["version"], channel=manifest["channel"]
            )
            write_state(
                device_dir,
                {
                    **state,
                    "active": update_id,
                    "previous": state["active"],
                    "highest": highest,
                    "history": history,
                },
            )
            crash_point("switched")
        finally:
            verified.opened.close()
        clean(device_dir, keep={update_id, state["active"]})
    return {**status(device_dir, strict=False), "changed": True}


def check_scale(fields: dict[str, Any], label: str) -> float:
    """The scale an update runs at: the package's recommended one (signed) or the operator's, in [0, 2]."""
    scale = fields.get("scale", 1.0)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0 <= scale <= 2:
        raise PackageError(f"{label}: a scale in [0, 2] (the share of the update applied), got {scale!r}")
    return float(scale)


def check(
    device_dir: Path, verified: build.Verified, state: dict[str, Any], checked: Path, scale: float = 1.0
) -> dict[str, str]:
    """Extract the verified package into `checked` (outside the device folder), join an expert to the active
    library, and run every check an update must pass, by the device's runtime; the checked files' hashes."""
    crash_point("verified")
    build.extract(verified, checked)
    if verified.manifest.get("kind") == "expert":  # joins the library the device runs now
        from edgeadapt.deploy.library_packages import join_library

        if state["active"] is None:
            raise PackageError(
                "an expert package joins an installed adapter library; this device has none active"
            )
        check_update(device_dir, state["active"])  # a damaged library is not copied into the new one
        join_library(checked, device_dir / "updates" / state["active"], verified.manifest)
    crash_point("extracted")
    runtime_of(device_dir).check(checked, {**verified.manifest, "scale": scale}, device_dir)
    crash_point("checked")
    return tree_sha256(checked)


ROOM_MARGIN = 16 << 20  # beside the update's files: its record, and what the file system needs to work


def make_room(device_dir: Path, state: dict[str, Any], checked: Path) -> dict[str, Any]:
    """Enough free disk for the checked update, dropping the update rollback will no longer need if that is
    what it takes (and only if that is enough); a clear error otherwise, with nothing changed."""
    needed = sum(p.stat().st_size for p in checked.rglob("*") if p.is_file()) + ROOM_MARGIN
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
    # The update passed every check; once it is active, the previous one is no longer reachable by rollback.
    state = {
        **state,
        "previous": None,
        "history": event(state, "dropped", id=state["previous"], reason="disk space"),
    }
    write_state(device_dir, state)
    clean(device_dir, keep={state["active"]})
    return state


def install(
    device_dir: Path,
    checked: Path,
    hashes: dict[str, str],
    update_id: str,
    manifest: dict,
    signed: bool,
    scale: float = 1.0,
) -> None:
    """Copy the checked update into updates/ID (crash-safe), every file compared with what was checked."""
    updates = device_dir / "updates"
    staging = updates / f".staging-{update_id}"
    shutil.rmtree(
        updates / update_id, ignore_errors=True
    )  # an earlier copy of this release, left by a rollback
    try:
        shutil.copytree(checked, staging)
        if tree_sha256(staging) != hashes:
            raise PackageError(f"{staging}: the copied update differs from the one that was checked")
        installed = {"manifest": manifest, "signed": signed, "files": hashes, "scale": scale}
        write_json_atomic(staging / INSTALLED, installed, indent=1)
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
            check_update(device_dir, state["previous"])  # checked before the switch, never after
        history = event(state, "rollback", **{"from": state["active"], "to": state["previous"]})
        write_state(
            device_dir,
            {**state, "active": state["previous"], "previous": state["active"], "history": history},
        )
    return {**status(device_dir, strict=False), "changed": True}


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
    """The model a transformers device runs now, as a predictor (tests and tools that look inside it): the
    base with the active update, checked first, loaded by the loader its manifest names."""
    return active_server(device_dir).predictor


def active_server(device_dir: Path):
    """The active model as the device's runtime serves it (the active update re-hashed first)."""
    state = read_state(device_dir)
    engine = runtime_of(device_dir)
    if state["active"] is None:
        return engine.serve(device_dir, None, None)
    installed = check_update(device_dir, state["active"])
    folder = Path(device_dir) / "updates" / state["active"]
    return engine.serve(device_dir, folder, installed["manifest"], float(installed.get("scale", 1.0)))


class Answer(NamedTuple):
    text: str
    route: Any
    """The route a library took (None unless a library is active)."""
    warnings: list[str]
    """What the operator must hear (an expired update is still served, with a warning)."""
    ms_per_token: float
    """Wall time per answer token, the prompt's processing (and routing) included."""
    timings: dict[str, Any] | None = None
    """As the runtime timed the request, where it does (llama.cpp): prompt_tokens, prompt_ms, answer_tokens,
    answer_ms; the prompt's processing apart from the answer's tokens."""


def generate(device_dir: Path, prompt: str, max_new_tokens: int = 48) -> Answer:
    """The active model's greedy answer, as the device's runtime serves it."""
    if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= 4096:
        raise PackageError(f"--max-new-tokens must be between 1 and 4096, got {max_new_tokens}")
    server = active_server(device_dir)
    start = time.perf_counter()
    answer, route = server.generate(prompt, max_new_tokens)
    seconds = time.perf_counter() - start
    tokens = max(1, len(server_tokens(server, answer)))
    state = read_state(device_dir)
    active = describe(device_dir, state["active"], rehash=False)  # active_server has just re-hashed it
    timings = getattr(server, "timings", None)
    return Answer(answer, route, warnings_of({"active": active}), 1000 * seconds / tokens, timings)


def server_tokens(server, answer: str) -> list[int]:
    tokenizer = getattr(server, "tokenizer", None) or server.predictor.tokenizer
    return tokenizer(answer, add_special_tokens=False)["input_ids"]
