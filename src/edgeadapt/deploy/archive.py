"""The package container: a plain POSIX tar (readable with `tar tf`) in one canonical byte layout, optionally
zstd-compressed.

Every byte of a package is accounted for: member headers must equal the header this module writes for the
same name and size (mode 0644, mtime 0, no owner), data is padded with zeros, and the archive ends with the
standard zero blocks. A reader therefore rejects any change the hashes and the signature do not cover
(a flipped timestamp, a link member, junk after the end), and never trusts the archive's own structure:
member names are checked before use, sizes against the bytes that are really there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from edgeadapt.core import scratch
from edgeadapt.core.errors import UserError
from edgeadapt.core.files import atomic_write
from edgeadapt.core.paths import ROUTER_FILE

MAX_MANIFEST_BYTES = 1 << 20  # the manifest and its signature are read whole before anything is trusted

BLOCK = 512
RECORD = 20 * BLOCK  # tar pads the archive to whole records
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MEMBER_NAME = re.compile(
    r"(manifest\.json|manifest\.sig|manifest\.sha256|update/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
    rf"|library/(library\.json|{ROUTER_FILE.pattern}"  # whatever files a registered router kind keeps
    r"|experts/[A-Za-z0-9][A-Za-z0-9_-]{0,63}/(adapter_config\.json|adapter_model\.safetensors|adapter\.gguf)))"
)
PAYLOAD = ("update/", "library/")  # the folders a package's files live in (everything but manifest.*)
MAX_MEMBERS = 1024  # a library of 500 experts; bounded, so a hostile archive cannot list millions
CHUNK = 1 << 20


class PackageError(UserError):
    """A package that must not be applied: corrupt, tampered, unsigned, for another base, too large."""


@dataclass
class Member:
    name: str
    size: int
    sha256: str
    offset: int  # where the data starts in the (decompressed) archive


def header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o644, 0, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def padding(size: int) -> int:
    return -size % BLOCK


def write(path: Path, members: list[tuple[str, Path | bytes]], compress: bool = False) -> None:
    """Write the members (name, file or bytes) in the given order as a canonical tar, via a temporary file."""
    with atomic_write(path, durable=False) as out:
        sink = _zstd_writer(out) if compress else out
        written = 0
        for name, source in members:
            data = source if isinstance(source, bytes) else None
            size = len(data) if data is not None else Path(source).stat().st_size
            sink.write(header(name, size))
            if data is not None:
                sink.write(data)
            else:
                with open(source, "rb") as handle:
                    shutil.copyfileobj(handle, sink, CHUNK)
            sink.write(b"\0" * padding(size))
            written += BLOCK + size + padding(size)
        end = 2 * BLOCK
        sink.write(b"\0" * (end + (-(written + end) % RECORD)))
        if compress:
            sink.close()


def compress(plain: Path, out: Path) -> Path:
    """The zstd form of a package already written plain: the same archive, compressed as `write` would."""
    with open(plain, "rb") as src, atomic_write(out, durable=False) as dst:
        sink = _zstd_writer(dst)
        shutil.copyfileobj(src, sink, CHUNK)
        sink.close()
    return out


def _zstd_writer(out: BinaryIO):
    import zstandard

    # The frame checksum lets a reader reject a corrupted stream before parsing anything.
    return zstandard.ZstdCompressor(level=10, write_checksum=True, threads=-1).stream_writer(
        out, closefd=False
    )


@dataclass
class Opened:
    path: Path  # the plain tar (the package itself, or its decompressed copy in a temporary folder)
    compressed: bool
    tmpdir: scratch.Claimed | None = None

    def close(self) -> None:
        if self.tmpdir is not None:
            self.tmpdir.cleanup()


HeadCheck = Callable[[dict[str, bytes]], int]
"""Called with the leading members (manifest.json and manifest.sig or manifest.sha256) before anything else is
read; checks them (signature) and returns the archive's plain size the manifest declares."""
HEAD_MEMBERS = 2


def archive_size(sizes: list[int]) -> int:
    """The exact size of the canonical tar holding members of these data sizes."""
    body = sum(BLOCK + size + padding(size) for size in sizes) + 2 * BLOCK
    return body + (-body % RECORD)


def _head(read, label: str) -> tuple[dict[str, bytes], bytes]:
    """The leading members (name -> data) and the raw bytes they span, read from a stream."""
    raw, found = b"", {}
    for _ in range(HEAD_MEMBERS):
        block = read(BLOCK)
        if len(block) < BLOCK:
            raise PackageError(f"{label}: truncated (no manifest)")
        member = _member(block, len(raw), 1 << 62, label)
        if member.size > MAX_MANIFEST_BYTES:
            raise PackageError(f"{label}: '{member.name}' is over {MAX_MANIFEST_BYTES} bytes")
        data = read(member.size + padding(member.size))
        if len(data) < member.size + padding(member.size):
            raise PackageError(f"{label}: truncated (inside '{member.name}')")
        found[member.name] = data[: member.size]
        raw += block + data
    return found, raw


def open_package(path: Path, max_bytes: int, head_check: HeadCheck | None = None) -> Opened:
    """A private copy of the package as a plain tar (decompressed when it is zstd), read once through one
    descriptor: everything after (verification, extraction) reads the copy, so a package file rewritten
    after it was opened cannot put unverified bytes on the device.

    With `head_check`, the manifest and its signature (the first members) are read and checked before
    anything else, and the rest may not exceed the size the manifest declares: a compressed package that
    expands beyond it is refused as soon as it does, and nothing is copied for a manifest that fails.
    """
    label = str(path)
    try:
        src = open(path, "rb")  # noqa: SIM115 - held open while the private copy is made
    except FileNotFoundError:
        raise PackageError(f"{path}: no such package file") from None
    except IsADirectoryError:
        raise PackageError(f"{path} is a folder, not a package file") from None
    # This process's alone (mode 0700); one that a killed verification left is removed here.
    tmpdir = scratch.claimed("edgeadapt-pkg-")
    plain = Path(tmpdir.name) / "package.tar"
    try:
        with src, open(plain, "wb") as dst:
            size = os.fstat(src.fileno()).st_size
            if size > max_bytes:
                raise PackageError(f"{path}: {size} bytes is over the limit of {max_bytes} (--max-bytes)")
            compressed = src.read(4) == ZSTD_MAGIC
            src.seek(0)
            reader = _zstd_reader(src) if compressed else src
            limit = max_bytes if compressed else size
            if head_check is not None:
                found, raw = _head(reader.read, label)
                declared = head_check(found)
                if not compressed and declared != size:
                    raise PackageError(
                        f"{path}: {size} bytes, but its manifest declares an archive of {declared}"
                    )
                limit = min(limit, declared)
                free = shutil.disk_usage(plain.parent).free
                if limit > free:
                    raise PackageError(
                        f"{path}: needs {limit:,} bytes to verify, {free:,} free in {plain.parent}"
                    )
                dst.write(raw)
            _copy_bounded(reader, dst, limit, label, compressed)
            if compressed and src.read(1):  # a second frame or junk after the first
                raise PackageError(f"{path}: data after the compressed archive")
    except BaseException as exc:
        tmpdir.cleanup()
        if type(exc).__name__ == "ZstdError":
            raise PackageError(f"{path}: corrupt compressed data ({exc})") from None
        raise
    return Opened(plain, compressed, tmpdir)


def _zstd_reader(src: BinaryIO):
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=False)


def _copy_bounded(reader, dst: BinaryIO, limit: int, label: str, compressed: bool) -> None:
    """The rest of the stream into `dst`, refused as soon as it passes `limit` bytes in all."""
    total = dst.tell()
    while chunk := reader.read(CHUNK):
        total += len(chunk)
        if total > limit:
            what = "decompresses to" if compressed else "grew to"
            raise PackageError(f"{label}: {what} more than the {limit:,} bytes it declares")
        dst.write(chunk)
    dst.flush()


def read_members(path: Path, label: str) -> list[Member]:
    """Parse and hash every member of a canonical tar, rejecting anything this module would not write."""
    size = path.stat().st_size
    members: list[Member] = []
    with open(path, "rb") as handle:
        pos = 0
        while True:
            block = handle.read(BLOCK)
            if len(block) < BLOCK:
                raise PackageError(f"{label}: truncated (archive ends inside a header at byte {pos})")
            if block == b"\0" * BLOCK:
                break
            member = _member(block, pos, size, label)
            if any(m.name == member.name for m in members):
                raise PackageError(f"{label}: member '{member.name}' appears twice")
            if len(members) == MAX_MEMBERS:
                raise PackageError(f"{label}: more than {MAX_MEMBERS} members")
            member.sha256 = _hash_and_check_padding(handle, member, label)
            members.append(member)
            pos = member.offset + member.size + padding(member.size)
        _check_end(handle, pos, size, label)
    return members


def _member(block: bytes, pos: int, size: int, label: str) -> Member:
    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
    except (tarfile.HeaderError, UnicodeError, ValueError) as exc:
        raise PackageError(f"{label}: bad member header at byte {pos} ({exc})") from None
    name = info.name
    if info.type != tarfile.REGTYPE and info.type != tarfile.AREGTYPE:
        kind = "a link" if info.issym() or info.islnk() else "not a regular file"
        raise PackageError(f"{label}: member '{name}' is {kind}; a package holds plain files only")
    if name.startswith("/") or ".." in name.split("/") or not MEMBER_NAME.fullmatch(name):
        raise PackageError(
            f"{label}: member path '{name}' is not allowed (absolute, '..', or outside manifest.*, update/ and library/)"
        )
    if block != header(name, info.size):
        raise PackageError(f"{label}: member '{name}' has a non-canonical header (modified package?)")
    data_at = pos + BLOCK
    if data_at + info.size + padding(info.size) > size:
        raise PackageError(f"{label}: truncated (member '{name}' claims {info.size} bytes)")
    return Member(name, info.size, "", data_at)


def _hash_and_check_padding(handle: BinaryIO, member: Member, label: str) -> str:
    digest, left = hashlib.sha256(), member.size
    while left:
        chunk = handle.read(min(CHUNK, left))
        digest.update(chunk)
        left -= len(chunk)
    if handle.read(padding(member.size)).strip(b"\0"):
        raise PackageError(f"{label}: non-zero padding after member '{member.name}'")
    return digest.hexdigest()


def _check_end(handle: BinaryIO, pos: int, size: int, label: str) -> None:
    end = pos + 2 * BLOCK
    expected = end + (-end % RECORD)
    if size < expected:
        raise PackageError(f"{label}: truncated (the end-of-archive blocks are incomplete)")
    if size > expected:
        raise PackageError(f"{label}: {size - expected} unexpected bytes after the end of the archive")
    if handle.read().strip(b"\0"):
        raise PackageError(f"{label}: non-zero bytes in the end-of-archive blocks")


def iter_data(path: Path, member: Member) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(member.offset)
        left = member.size
        while left:
            chunk = handle.read(min(CHUNK, left))
            yield chunk
            left -= len(chunk)


def read_data(path: Path, member: Member) -> bytes:
    return b"".join(iter_data(path, member))
