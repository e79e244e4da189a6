"""The package manifest (what the update is, for which base, every file's hash), Ed25519 keys and signatures,
and the base model's fingerprint.

A signed package carries `manifest.sig` (Ed25519 over the exact bytes of manifest.json); an unsigned one
carries `manifest.sha256`, which catches corruption but not tampering. The files' hashes are in the
manifest, so either way one check on the manifest covers every byte of the update.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from edgeadapt import updates
from edgeadapt.deploy.archive import PackageError

FORMAT = "edgeadapt-update"
FORMAT_VERSION = 1
DTYPES = ("fp32", "bf16", "int8")
MAX_MANIFEST_BYTES = 1 << 20
MAX_STRING = 512  # no field of a manifest we write is longer; a longer one is an attack or corruption
SIG_BYTES = 64


def fingerprint(model_dir: Path) -> str:
    """SHA-256 over the weights of a transformers checkpoint folder: every tensor's name, dtype, shape and
    bytes, in name order, so it does not depend on how the tensors are split across files."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise PackageError(f"{model_dir}: no *.safetensors weights to fingerprint")
    entries = []
    for path in files:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            table = json.loads(handle.read(length))
        start = 8 + length
        for name, info in table.items():
            if name != "__metadata__":
                entries.append(
                    (
                        name,
                        info["dtype"],
                        info["shape"],
                        path,
                        start + info["data_offsets"][0],
                        info["data_offsets"][1] - info["data_offsets"][0],
                    )
                )
    digest = hashlib.sha256()
    for name, dtype, shape, path, offset, size in sorted(entries, key=lambda e: e[0]):
        digest.update(json.dumps([name, dtype, shape]).encode())
        with open(path, "rb") as handle:
            handle.seek(offset)
            left = size
            while left:
                chunk = handle.read(min(left, 1 << 22))
                digest.update(chunk)
                left -= len(chunk)
    return "sha256:" + digest.hexdigest()


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
    "created": (str, False),
}


def parse(data: bytes, label: str) -> dict[str, Any]:
    """A manifest's bytes, checked against the schema; every problem is a PackageError."""
    try:
        manifest = json.loads(data)
    except (UnicodeError, ValueError) as exc:
        raise PackageError(f"{label}: manifest.json is not valid JSON ({exc})") from None
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
    _check_strings(manifest, label)
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
    base = manifest["base_model"]
    if not isinstance(base.get("fingerprint"), str) or not isinstance(base.get("name"), str):
        raise PackageError(f"{label}: manifest base_model needs a name and a fingerprint")
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


def generate_keys(out_dir: Path, name: str) -> tuple[Path, Path]:
    """An Ed25519 key pair: NAME.key (PEM, private, mode 0600) and NAME.pub (PEM); never overwrites."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise PackageError(f"{path} exists: choose another --name or folder (keys are never overwritten)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def sign(data: bytes, key_path: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PackageError(f"{key_path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(f"{key_path}: not an Ed25519 key (make one with `edgeadapt keys generate`)")
    return key.sign(data)


def check_signature(data: bytes, signature: bytes, pubkey_path: Path, label: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(pubkey_path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise PackageError(f"{pubkey_path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError(f"{pubkey_path}: not an Ed25519 public key")
    if len(signature) != SIG_BYTES:
        raise PackageError(f"{label}: manifest.sig is {len(signature)} bytes, not {SIG_BYTES}")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise PackageError(f"{label}: bad signature (tampered, or signed with another key)") from None
