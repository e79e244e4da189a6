"""Building a package from a saved update folder, and reading one back: verify, then extract.

`int8` stores every 2-D weight of the update as int8 with one absmax scale per row (`KEY.absmax_scale`,
fp32); 1-D tensors (norms, biases) stay fp32. `bf16` casts floating tensors. Extracting restores fp32
weights, so the extracted folder loads with the method's own loader (a LoRA update in `PeftModel`).
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeadapt.deploy import archive
from edgeadapt.deploy import manifest as mf
from edgeadapt.deploy.archive import PackageError

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


def convert(path: Path, dtype: str, out: Path) -> Path:
    """A copy of a safetensors file in `dtype`; other files are copied as they are."""
    import torch
    from safetensors.torch import load_file, save_file

    target = out / path.name
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
    """Restore fp32 weights in place in an extracted int8 safetensors file."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    restored = {}
    for key, value in tensors.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        scale = tensors.get(key + SCALE_SUFFIX)
        restored[key] = value.float() * scale[:, None] if scale is not None else value
    save_file(restored, str(path), metadata={"format": "pt"})


def file_entry(path: Path, name: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(archive.CHUNK):
            digest.update(chunk)
    return {"path": name, "sha256": digest.hexdigest(), "size": path.stat().st_size}


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
    if dtype not in mf.DTYPES:
        raise PackageError(f"--dtype must be one of {', '.join(mf.DTYPES)}, got '{dtype}'")
    with tempfile.TemporaryDirectory(prefix="edgeadapt-build-") as tmp:
        files = [convert(p, dtype, Path(tmp)) for p in update_files(update_dir)]
        manifest = {
            "format": mf.FORMAT,
            "format_version": mf.FORMAT_VERSION,
            "dtype": dtype,
            **fields,
            "files": [file_entry(p, f"update/{p.name}") for p in files],
        }
        manifest_bytes = mf.encode(manifest)
        mf.parse(manifest_bytes, str(out))  # never write a package our own reader would refuse
        check = (
            ("manifest.sig", mf.sign(manifest_bytes, sign_key))
            if sign_key
            else ("manifest.sha256", hashlib.sha256(manifest_bytes).hexdigest().encode())
        )
        members = [("manifest.json", manifest_bytes), check] + [(f"update/{p.name}", p) for p in files]
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
    opened: archive.Opened
    members: dict[str, archive.Member]


def verify(
    path: Path,
    pubkey: Path | None = None,
    base_dir: Path | None = None,
    allow_unsigned: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Verified:
    """Check a package from its first byte to its last; raise PackageError on anything wrong.

    Order: size, container (canonical tar, member paths), manifest schema, manifest check (signature when
    `pubkey`, else the sha256 unless only a signature is there), every file's hash and size, base model.
    """
    path, label = Path(path), str(path)
    opened = archive.open_package(path, max_bytes)
    try:
        members = {m.name: m for m in archive.read_members(opened.path, label)}
        manifest, signed = _checked_manifest(opened.path, members, label, pubkey, allow_unsigned)
        listed = {f["path"]: f for f in manifest["files"]}
        actual = {n: m for n, m in members.items() if n.startswith("update/")}
        if set(listed) != set(actual):
            odd = sorted(set(listed) ^ set(actual))[0]
            raise PackageError(f"{label}: '{odd}' is in the archive or the manifest but not both")
        for name, member in actual.items():
            if member.size != listed[name]["size"] or member.sha256 != listed[name]["sha256"]:
                raise PackageError(f"{label}: '{name}' does not match its hash in the manifest (corrupt)")
        if base_dir is not None:
            have = mf.fingerprint(base_dir)
            if have != manifest["base_model"]["fingerprint"]:
                raise PackageError(
                    f"{label}: built for base '{manifest['base_model']['name']}' "
                    f"({manifest['base_model']['fingerprint'][:19]}...), not {base_dir} ({have[:19]}...)"
                )
    except BaseException:
        opened.close()
        raise
    return Verified(manifest, signed, opened, members)


def _checked_manifest(plain: Path, members: dict, label: str, pubkey: Path | None, allow_unsigned: bool):
    if "manifest.json" not in members:
        raise PackageError(f"{label}: no manifest.json")
    if members["manifest.json"].size > mf.MAX_MANIFEST_BYTES:
        raise PackageError(f"{label}: manifest.json is over {mf.MAX_MANIFEST_BYTES} bytes")
    data = archive.read_data(plain, members["manifest.json"])
    signed = "manifest.sig" in members
    if signed and "manifest.sha256" in members:
        raise PackageError(f"{label}: holds both manifest.sig and manifest.sha256")
    if pubkey is not None:
        if not signed:
            raise PackageError(f"{label}: unsigned package, but --pubkey asks for a signed one")
        if members["manifest.sig"].size != mf.SIG_BYTES:
            raise PackageError(f"{label}: manifest.sig is not {mf.SIG_BYTES} bytes")
        mf.check_signature(data, archive.read_data(plain, members["manifest.sig"]), pubkey, label)
    elif signed and not allow_unsigned:
        raise PackageError(
            f"{label}: signed package: give --pubkey to check it (or --allow-unsigned to skip)"
        )
    elif not signed:
        if "manifest.sha256" not in members or members["manifest.sha256"].size != 64:
            raise PackageError(f"{label}: no manifest.sig or manifest.sha256")
        if not allow_unsigned:
            raise PackageError(f"{label}: unsigned package: give --allow-unsigned to accept it")
        if archive.read_data(plain, members["manifest.sha256"]) != hashlib.sha256(data).hexdigest().encode():
            raise PackageError(f"{label}: manifest.json does not match manifest.sha256 (corrupt)")
    return mf.parse(data, label), signed


def extract(verified: Verified, out_dir: Path) -> list[Path]:
    """Write the update files of a verified package into `out_dir` (fp32 again), each fsynced."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, member in verified.members.items():
        if not name.startswith("update/"):
            continue
        target = out_dir / name.split("/", 1)[1]
        with open(target, "wb") as handle:
            for chunk in archive.iter_data(verified.opened.path, member):
                handle.write(chunk)
                handle.flush()
                crash_point("mid-file")  # a file half written
        if verified.manifest["dtype"] == "int8" and target.suffix == ".safetensors":
            dequantize(target)
        fsync_path(target)
        written.append(target)
    return written


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename is durable once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
