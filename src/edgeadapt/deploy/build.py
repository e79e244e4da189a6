"""Building a package from a saved update folder, and reading one back: verify, then extract.

`int8` stores every 2-D weight of the update as int8 with one absmax scale per row (`KEY.absmax_scale`,
fp32); 1-D tensors (norms, biases) stay fp32. `bf16` casts floating tensors. Extracting restores fp32
weights, so the extracted folder loads with the method's own loader (a LoRA update in `PeftModel`).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from edgeadapt.core.files import sha256_file
from edgeadapt.deploy import archive, keys
from edgeadapt.deploy import manifest as mf
from edgeadapt.deploy.archive import PackageError
from edgeadapt.models.fingerprint import fingerprint

SCALE_SUFFIX = ".absmax_scale"
DEFAULT_MAX_BYTES = 4 << 30  # larger than any update of a <=1B model in fp32
SKIPPED = {"README.md"}  # PEFT's model card: not needed on a device
CRASH_ENV = "EDGEADAPT_CRASH_AT"  # tests: SIGKILL this process at the named point of a device apply


def crash_point(name: str) -> None:
    """Die here, without any cleanup, when the test harness asks for it (fault injection)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def update_files(update_dir: Path) -> list[Path]:
    files = sorted(p for p in Path(update_dir).iterdir() if p.name not in SKIPPED)
    if not files or any(not p.is_file() for p in files):
        raise PackageError(f"{update_dir}: expected the plain files of a saved update")
    return files


def quantize_int8(weight):
    """Per-row absmax int8: q = round(w / s), s = max|w_row| / 127 (a zero row gets s = 1)."""
    import torch

    weight = weight.float()
    scale = weight.abs().amax(dim=1, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale.squeeze(1)


def convert(path: Path, dtype: str, target: Path) -> Path:
    """A copy of a safetensors file at `target` in `dtype`; other files are copied as they are."""
    import torch
    from safetensors.torch import load_file, save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".safetensors" or dtype == "fp32":
        target.write_bytes(path.read_bytes())
        return target
    tensors, converted = load_file(str(path)), {}
    for key, value in tensors.items():
        if not value.is_floating_point():
            converted[key] = value
        elif dtype == "bf16":
            converted[key] = value.to(torch.bfloat16)
        elif value.ndim == 2:
            converted[key], converted[key + SCALE_SUFFIX] = quantize_int8(value)
        else:
            converted[key] = value.float()
    save_file({k: v.contiguous() for k, v in converted.items()}, str(target), metadata={"format": "pt"})
    return target


def dequantize(path: Path) -> None:
    """Restore fp32 weights in place in an extracted int8 safetensors file (a scale that does not fit its
    weight, or a file safetensors cannot read, is a refused package)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    try:
        tensors = load_file(str(path))
        restored = {}
        for key, value in tensors.items():
            if key.endswith(SCALE_SUFFIX):
                continue
            scale = tensors.get(key + SCALE_SUFFIX)
            if scale is not None and (value.ndim != 2 or scale.shape != (value.shape[0],)):
                raise ValueError(f"'{key[:80]}' has a scale of shape {list(scale.shape)}")
            restored[key] = value.float() * scale.float()[:, None] if scale is not None else value
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise PackageError(f"{path.name}: not a readable int8 update ({str(exc)[:200]})") from None
    save_file(restored, str(path), metadata={"format": "pt"})


def file_entry(path: Path, name: str) -> dict[str, Any]:
    return {"path": name, "sha256": sha256_file(path, archive.CHUNK), "size": path.stat().st_size}


def build(
    update_dir: Path,
    out: Path,
    fields: dict[str, Any],
    dtype: str = "fp32",
    sign_key: Path | None = None,
    compress: bool = False,
) -> dict[str, Any]:
    """Write a package for the update in `update_dir`; `fields` fill the manifest (method, base, metrics).

    Returns the manifest and the package's sizes (update bytes raw, package bytes on disk).
    """
    sources = [(f"update/{p.name}", p) for p in update_files(update_dir)]
    return build_members(sources, out, fields, dtype, sign_key, compress)


DEFAULT_EXPIRES_DAYS = 180
MAX_EXPIRES_DAYS = 3650
CLOCK_SKEW = timedelta(hours=24)  # how far ahead of the device's clock a package's creation time may be


def release(
    version: int | None = None, channel: str = "default", expires_days: float = DEFAULT_EXPIRES_DAYS
) -> dict[str, Any]:
    """Which release a package is: its version on a channel (default: the time of export in milliseconds,
    so later exports are higher), when it was made and until when a device may take it."""
    import time

    from edgeadapt.deploy.trust import iso, now

    if not (isinstance(expires_days, int | float) and 0 < expires_days <= MAX_EXPIRES_DAYS):
        raise PackageError(
            f"--expires-days must be a number of days in (0, {MAX_EXPIRES_DAYS}], got {expires_days}"
        )
    created = now()
    return {
        "version": int(time.time() * 1000) if version is None else version,
        "channel": channel,
        "created": iso(created),
        "expires": iso(created + timedelta(days=expires_days)),
    }


def build_members(
    sources: list[tuple[str, Path]],
    out: Path,
    fields: dict[str, Any],
    dtype: str = "fp32",
    sign_key: Path | None = None,
    compress: bool = False,
) -> dict[str, Any]:
    """Write a package holding `sources` (member path, file) in `dtype`, with a manifest from `fields` (the
    release fields default to `release()`)."""
    fields = {**release(), **fields}
    if Path(out).is_dir():
        raise PackageError(f"{out} is a folder: --out names the package file to write")
    if dtype not in mf.DTYPES:
        raise PackageError(f"--dtype must be one of {', '.join(mf.DTYPES)}, got '{dtype}'")
    if len(sources) + archive.HEAD_MEMBERS > archive.MAX_MEMBERS:  # a device would refuse it
        raise PackageError(
            f"{out}: {len(sources)} files; a package holds at most {archive.MAX_MEMBERS - archive.HEAD_MEMBERS}"
        )
    with tempfile.TemporaryDirectory(prefix="edgeadapt-build-") as tmp:
        files = [(name, convert(path, dtype, Path(tmp) / name)) for name, path in sources]
        manifest = {
            "format": mf.FORMAT,
            "format_version": mf.FORMAT_VERSION,
            "dtype": dtype,
            **fields,
            "files": [file_entry(p, name) for name, p in files],
        }
        manifest_bytes = mf.encode(manifest)
        mf.parse(manifest_bytes, str(out))  # never write a package our own reader would refuse
        check = (
            ("manifest.sig", keys.sign(manifest_bytes, sign_key))
            if sign_key
            else ("manifest.sha256", hashlib.sha256(manifest_bytes).hexdigest().encode())
        )
        members = [("manifest.json", manifest_bytes), check] + files
        archive.write(out, members, compress)
    return {
        "manifest": manifest,
        "raw_bytes": sum(f["size"] for f in manifest["files"]),
        "package_bytes": out.stat().st_size,
    }


@dataclass
class Verified:
    manifest: dict[str, Any]
    signed: bool
    """True only when a signature was checked and good; a signature nobody checked counts as none."""
    opened: archive.Opened
    members: dict[str, archive.Member]
    keylist: Any = None
    """A newer key list the package carried, to be installed by the device once the package is applied."""


@dataclass
class KeyPolicy:
    """What a signature is checked against: a device's trust store (root-signed key list), one public key,
    or nothing (then only --allow-unsigned accepts, and a signature present counts as none)."""

    pubkey: Path | None = None
    trust: Any = None  # a trust.TrustStore that is configured
    allow_unsigned: bool = False

    def check(self, head: dict[str, bytes], label: str) -> tuple[bool, Any]:
        """(signed, key list to install) for the manifest bytes and their check member; PackageError if bad."""
        data = head.get("manifest.json")
        if data is None or set(head) - {"manifest.json", "manifest.sig", "manifest.sha256"}:
            raise PackageError(f"{label}: a package starts with manifest.json and its signature or hash")
        signature = head.get("manifest.sig")
        if signature is None:
            digest = head.get("manifest.sha256")
            if digest is None or digest != hashlib.sha256(data).hexdigest().encode():
                raise PackageError(
                    f"{label}: manifest.json does not match manifest.sha256 (corrupt), or neither is there"
                )
            if self.pubkey is not None:
                raise PackageError(f"{label}: unsigned package, but --pubkey asks for a signed one")
            if self.trust is not None:
                raise PackageError(
                    f"{label}: unsigned package; this device trusts a root key and takes signed packages only"
                )
            if not self.allow_unsigned:
                raise PackageError(f"{label}: unsigned package: give --allow-unsigned to accept it")
            return False, None
        if self.trust is not None:
            candidates, keylist = self.trust.trusted_keys(_embedded_keylist(data, label), label)
        elif self.pubkey is not None:
            candidates, keylist = [keys.public_key_bytes(self.pubkey)], None
        elif self.allow_unsigned:
            return False, None  # nothing to check it with: accepted as unsigned, never recorded as signed
        else:
            raise PackageError(
                f"{label}: signed package: give --pubkey to check it (or --allow-unsigned to skip)"
            )
        if not any(keys.verifies(key, signature, data) for key in candidates):
            raise PackageError(
                f"{label}: bad signature (tampered, or signed by a key the device does not trust: unknown, revoked or expired)"
            )
        return True, keylist


def _embedded_keylist(data: bytes, label: str) -> Any:
    """The key list a manifest carries (checked against the root before its keys are used), or None."""
    try:
        return json.loads(data).get("keylist")
    except (ValueError, AttributeError, RecursionError):
        raise PackageError(f"{label}: manifest.json is not a valid JSON object") from None


def declared_size(data: bytes, label: str) -> int:
    """The plain archive size a manifest's files make, with the manifest and its check member."""
    try:
        files = json.loads(data)["files"]
        sizes = [int(f["size"]) for f in files]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise PackageError(f"{label}: manifest.json has no valid list of files") from None
    if any(size < 0 for size in sizes) or len(sizes) > archive.MAX_MEMBERS:
        raise PackageError(f"{label}: manifest.json declares impossible file sizes")
    return archive.archive_size([len(data), keys.SIG_BYTES] + sizes)


def verify(
    path: Path,
    pubkey: Path | None = None,
    base_dir: Path | None = None,
    allow_unsigned: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    trust: Any = None,
    base_print: str | None = None,
) -> Verified:
    """Check a package from its first byte to its last; raise PackageError on anything wrong.

    Order: size; the manifest and its signature (or hash), before anything else is decompressed, which may
    then not exceed the size the manifest declares; the container (canonical tar, member paths); the
    manifest's schema and expiry; every file's hash and size; the base model's fingerprint.
    """
    path, label = Path(path), str(path)
    policy = KeyPolicy(pubkey, trust if trust is not None and trust.configured else None, allow_unsigned)
    outcome: dict[str, Any] = {}

    def head_check(head: dict[str, bytes]) -> int:
        outcome["signed"], outcome["keylist"] = policy.check(head, label)
        return declared_size(head["manifest.json"], label)

    opened = archive.open_package(path, max_bytes, head_check)
    try:
        ordered = archive.read_members(opened.path, label)
        names = [m.name for m in ordered]
        if names[:2] not in (
            ["manifest.json", "manifest.sig"],
            ["manifest.json", "manifest.sha256"],
        ) or not all(n.startswith(archive.PAYLOAD) for n in names[2:]):
            raise PackageError(
                f"{label}: members out of place (manifest.json, its signature or hash, then files)"
            )
        members = {m.name: m for m in ordered}
        manifest = mf.parse(archive.read_data(opened.path, members["manifest.json"]), label)
        from edgeadapt.deploy.trust import now, parse_time

        if parse_time(manifest["expires"], f"{label}: expires") <= now():
            raise PackageError(
                f"{label}: expired on {manifest['expires']} (a freeze or a stale package): publish a new release"
            )
        if parse_time(manifest["created"], f"{label}: created") > now() + CLOCK_SKEW:
            raise PackageError(
                f"{label}: created {manifest['created']}, in the future beyond the {CLOCK_SKEW} of clock skew "
                "allowed (the exporter's clock, or this device's, is wrong)"
            )
        listed = {f["path"]: f for f in manifest["files"]}
        actual = {n: m for n, m in members.items() if n.startswith(archive.PAYLOAD)}
        if set(listed) != set(actual):
            odd = sorted(set(listed) ^ set(actual))[0]
            raise PackageError(f"{label}: '{odd}' is in the archive or the manifest but not both")
        for name, member in actual.items():
            if member.size != listed[name]["size"] or member.sha256 != listed[name]["sha256"]:
                raise PackageError(f"{label}: '{name}' does not match its hash in the manifest (corrupt)")
        if base_dir is not None or base_print is not None:
            have = base_print or fingerprint(base_dir)
            if have != manifest["base_model"]["fingerprint"]:
                raise PackageError(
                    f"{label}: built for base '{manifest['base_model']['name']}' "
                    f"({manifest['base_model']['fingerprint'][:19]}...), not this base ({have[:19]}...)"
                )
    except BaseException:
        opened.close()
        raise
    return Verified(manifest, outcome["signed"], opened, members, outcome["keylist"])


def extract(verified: Verified, out_dir: Path) -> list[Path]:
    """Write the files of a verified package into `out_dir` (fp32 again), each fsynced; `update/x` and
    `library/x` land at `out_dir/x`. Every file is read back from the disk and compared with the signed
    manifest's hash and size before anything is made of it (int8 restored to fp32)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    listed = {f["path"]: f for f in verified.manifest["files"]}
    written = []
    for name, member in verified.members.items():
        if not name.startswith(archive.PAYLOAD):
            continue
        target = out_dir / name.split("/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as handle:  # x: a fresh file, never one planted there (or a link)
            for chunk in archive.iter_data(verified.opened.path, member):
                handle.write(chunk)
                handle.flush()
                crash_point("mid-file")  # a file half written
        fsync_path(target)
        check_written(target, listed[name])
        if verified.manifest["dtype"] == "int8" and target.suffix == ".safetensors":
            dequantize(target)
        written.append(target)
    return written


def check_written(path: Path, entry: dict[str, Any]) -> None:
    """The file on disk is the one the manifest signs: same size, same SHA-256."""
    if path.stat().st_size != entry["size"] or file_entry(path, entry["path"])["sha256"] != entry["sha256"]:
        raise PackageError(f"{entry['path']}: the extracted file differs from the signed manifest's hash")


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename is durable once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
