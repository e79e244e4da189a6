"""Keys a device can trust without reflashing, after TUF's root and delegated roles, simplified.

- Root keys are kept offline. A device is set up with their public halves and a threshold
  (`device init --root-pubkey R.pub [--root-pubkey ...] [--root-threshold K]`); it trusts them forever.
- The root signs a key list (`edgeadapt keys list`): the update keys allowed to sign packages, each with an
  expiry, the list's own version and expiry. A device takes a key list (`device trust FILE`, or inside a
  package) only with at least K valid root signatures, a version above the one it holds and a future expiry.
  Rotating or revoking an update key is publishing a new key list without it.
- A package must be signed by an update key of the device's current key list, unexpired.

Where this simplifies TUF: one role below the root (no separate targets, snapshot and timestamp roles: the
package manifest carries its own version and expiry, see `manifest.py`), and the root itself is not
rotated (a new root means a new device setup).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from edgeadapt.core.files import write_json_atomic
from edgeadapt.deploy import keys
from edgeadapt.deploy.archive import PackageError

KEYLIST_FORMAT = "edgeadapt-keylist"
MAX_KEYS = 64
TRUST_FILE = "trust.json"


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_time(text: Any, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise PackageError(f"{what} is not an ISO time: {str(text)[:40]!r}") from None
    if moment.tzinfo is None:
        raise PackageError(f"{what} has no time zone")
    return moment


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def make_keylist(
    root_keys: list[Path], update_keys: list[Path], version: int, expires_days: float
) -> dict[str, Any]:
    """A key list naming `update_keys` (public PEM files), signed by every root private key given."""
    if version < 1 or not 0 < expires_days <= 3650:  # NaN fails the comparison too
        raise PackageError("a key list needs --version >= 1 and --expires-days in (0, 3650]")
    expires = iso(now() + timedelta(days=expires_days))
    entries = []
    for path in update_keys:
        raw = keys.public_key_bytes(path)
        entries.append(
            {"id": keys.key_id(raw), "public_key": keys.b64(raw), "role": "update", "expires": expires}
        )
    signed = {"format": KEYLIST_FORMAT, "version": version, "expires": expires, "keys": entries}
    signatures = []
    for path in root_keys:
        private = keys.private_key(path)
        signatures.append(
            {
                "key_id": keys.key_id(keys.raw_public(private.public_key())),
                "signature": keys.b64(private.sign(canonical(signed))),
            }
        )
    return {"signed": signed, "signatures": signatures}


def check_keylist(document: Any, roots: list[bytes], threshold: int, label: str) -> dict[str, Any]:
    """The signed part of a key list after checking its form, its root signatures and its expiry."""
    if not isinstance(document, dict) or set(document) != {"signed", "signatures"}:
        raise PackageError(f"{label}: a key list is an object with 'signed' and 'signatures'")
    signed, signatures = document["signed"], document["signatures"]
    if (
        not isinstance(signed, dict)
        or signed.get("format") != KEYLIST_FORMAT
        or set(signed) != {"format", "version", "expires", "keys"}
    ):
        raise PackageError(f"{label}: not an {KEYLIST_FORMAT} document")
    if not isinstance(signed["version"], int) or isinstance(signed["version"], bool) or signed["version"] < 1:
        raise PackageError(f"{label}: key list version must be an integer >= 1")
    if (
        not isinstance(signed["keys"], list)
        or len(signed["keys"]) > MAX_KEYS
        or not isinstance(signatures, list)
        or len(signatures) > MAX_KEYS
    ):
        raise PackageError(f"{label}: key list keys and signatures must be lists of at most {MAX_KEYS}")
    for entry in signed["keys"]:
        if (
            not isinstance(entry, dict)
            or set(entry) != {"id", "public_key", "role", "expires"}
            or not all(isinstance(v, str) for v in entry.values())
            or entry["role"] != "update"
        ):
            raise PackageError(f"{label}: each key needs id, public_key, role 'update' and expires")
        raw = keys.unb64(entry["public_key"], 32, f"{label}: a public key")
        if keys.key_id(raw) != entry["id"]:
            raise PackageError(f"{label}: a key's id does not match its public key")
        parse_time(entry["expires"], f"{label}: a key's expiry")
    payload = canonical(signed)
    by_id = {keys.key_id(r): r for r in roots}
    good = set()
    for signature in signatures:
        if (
            not isinstance(signature, dict)
            or set(signature) != {"key_id", "signature"}
            or not all(isinstance(v, str) for v in signature.values())
        ):
            raise PackageError(f"{label}: each signature needs key_id and signature, both strings")
        root = by_id.get(signature["key_id"])
        if root is not None and keys.verifies(
            root, keys.unb64(signature["signature"], keys.SIG_BYTES, f"{label}: a signature"), payload
        ):
            good.add(signature["key_id"])
    if len(good) < threshold:
        raise PackageError(
            f"{label}: key list signed by {len(good)} of the device's root keys; it needs {threshold}"
        )
    if parse_time(signed["expires"], f"{label}: the key list's expiry") <= now():
        raise PackageError(
            f"{label}: the key list expired on {signed['expires']}; the root must sign a new one"
        )
    return signed


def update_keys(signed: dict[str, Any]) -> list[bytes]:
    """The key list's update keys that have not expired."""
    current = now()
    return [
        keys.unb64(e["public_key"], 32, "a public key")
        for e in signed["keys"]
        if parse_time(e["expires"], "a key's expiry") > current
    ]


class TrustStore:
    """A device's roots, threshold and current key list (DIR/trust.json), replaced atomically."""

    def __init__(self, device_dir: Path):
        self.path = Path(device_dir) / TRUST_FILE
        self.data: dict[str, Any] | None = None
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
                self.roots = [keys.unb64(r, 32, "a root key") for r in self.data["roots"]]
                self.threshold = int(self.data["threshold"])
                if not 1 <= self.threshold <= len(self.roots) or not isinstance(
                    self.data.get("keylist"), dict | None
                ):
                    raise ValueError("threshold or key list out of place")
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError, PackageError) as exc:
                raise PackageError(
                    f"{self.path} is corrupt ({exc}): set the device up again with `edgeadapt device init`"
                ) from None

    @property
    def configured(self) -> bool:
        return self.data is not None

    @classmethod
    def create(cls, device_dir: Path, root_pubkeys: list[Path], threshold: int) -> TrustStore:
        roots = list({keys.key_id(r): r for r in (keys.public_key_bytes(p) for p in root_pubkeys)}.values())
        if not 1 <= threshold <= len(roots):  # a key given twice is one key: it cannot sign twice
            raise PackageError(
                f"--root-threshold must be between 1 and the number of distinct root keys ({len(roots)})"
            )
        store = cls(device_dir)
        store.data, store.roots, store.threshold = (
            {"roots": [keys.b64(r) for r in roots], "threshold": threshold, "keylist": None},
            roots,
            threshold,
        )
        store.save()
        return store

    def save(self) -> None:
        write_json_atomic(self.path, self.data, indent=1)

    def keylist(self) -> dict[str, Any] | None:
        document = self.data.get("keylist") if self.data else None
        return check_keylist(document, self.roots, self.threshold, str(self.path)) if document else None

    def candidate(self, document: Any, label: str) -> dict[str, Any]:
        """A key list this device would take: valid, and newer than the one it holds."""
        signed = check_keylist(document, self.roots, self.threshold, label)
        held = (self.data or {}).get("keylist")
        if held and signed["version"] <= held["signed"]["version"]:
            raise PackageError(
                f"{label}: key list version {signed['version']} is not newer than the device's ({held['signed']['version']})"
            )
        return signed

    def install(self, document: Any, label: str) -> dict[str, Any]:
        signed = self.candidate(document, label)
        self.data["keylist"] = document
        self.save()
        return signed

    def trusted_keys(self, embedded: Any = None, label: str = "") -> tuple[list[bytes], Any]:
        """Update keys to check a package with: from a newer key list it carries (kept for installing once the
        package is applied) or the device's own; the list to install, or None."""
        if embedded is not None:
            held = (self.data or {}).get("keylist")
            if (
                held
                and isinstance(embedded, dict)
                and isinstance(embedded.get("signed"), dict)
                and embedded["signed"].get("version") == held["signed"]["version"]
                and embedded == held
            ):
                embedded = None  # the list the device already holds
        if embedded is not None:
            return update_keys(self.candidate(embedded, f"{label}: its key list")), embedded
        signed = self.keylist()
        if signed is None:
            raise PackageError(
                f"{label}: this device trusts a root but holds no key list yet: run `edgeadapt device trust KEYLIST`"
            )
        return update_keys(signed), None
