"""Ed25519 keys: making a pair, signing with a private key that only its owner can read, and checking a
signature against public keys. A key's id is the first 16 hex digits of SHA-256 over its raw public bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from edgeadapt.deploy.archive import PackageError

SIG_BYTES = 64


def generate_keys(out_dir: Path, name: str) -> tuple[Path, Path]:
    """An Ed25519 key pair: NAME.key (PEM, private, mode 0600) and NAME.pub (PEM); never overwrites."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PackageError(f"{out_dir} is a file: --out names the folder the keys go to")
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


def private_key(key_path: Path):
    """An Ed25519 private key from a PEM file that no one but its owner can read."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path = Path(key_path)
    try:
        mode, text = key_path.stat().st_mode, key_path.read_bytes()
    except OSError as exc:
        raise PackageError(f"{key_path}: cannot read the private key ({exc.strerror})") from None
    if b"-----BEGIN PUBLIC KEY-----" in text:  # said before the mode: chmod would not make it sign
        raise PackageError(
            f"{key_path}: this is a public key; sign with the private half (NAME.key from `edgeadapt keys generate`)"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PackageError(
            f"{key_path}: others can read this private key (mode {stat.S_IMODE(mode):o}); run `chmod 600 {key_path}`"
        )
    try:
        key = serialization.load_pem_private_key(text, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PackageError(f"{key_path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(f"{key_path}: not an Ed25519 key (make one with `edgeadapt keys generate`)")
    return key


def sign(data: bytes, key_path: Path) -> bytes:
    return private_key(key_path).sign(data)


def raw_public(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_bytes(pub_path: Path) -> bytes:
    """The 32 raw bytes of an Ed25519 public key in a PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(pub_path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise PackageError(f"{pub_path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PackageError(f"{pub_path}: not an Ed25519 public key")
    return raw_public(key)


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise PackageError(f"{what} is not base64") from None
    if len(raw) != size:
        raise PackageError(f"{what} is {len(raw)} bytes, not {size}")
    return raw


def verifies(raw_public_key: bytes, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if len(signature) != SIG_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, data)
        return True
    except (InvalidSignature, ValueError):
        return False
