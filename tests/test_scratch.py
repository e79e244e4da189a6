"""Temporary folders that a killed process leaves are removed by the next one claimed, and nothing else is."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys

from edgeadapt.core import scratch

HOLDER = (
    "import time\n"
    "from edgeadapt.core import scratch\n"
    "held = scratch.Claimed('t-pkg-')\n"
    "print(held.name, flush=True)\n"
    "time.sleep(120)\n"
)


def holder(tmp_path):
    """A child process holding a claimed folder under tmp_path, and that folder's path."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True)
    return child, child.stdout.readline().strip()


def test_a_folder_in_use_stays_and_one_whose_owner_was_killed_goes(tmp_path):
    child, folder = holder(tmp_path)
    try:
        assert folder.startswith(str(tmp_path / "t-pkg-"))
        assert scratch.sweep("t-pkg-", tmp_path) == []  # its owner lives: left alone
        assert os.path.isdir(folder)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert [str(p) for p in scratch.sweep("t-pkg-", tmp_path)] == [folder]
    assert not os.path.exists(folder)


def test_claimed_sweeps_its_prefix_only_and_cleans_up_after_itself(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    left = scratch.Claimed("t-pkg-")
    other = scratch.Claimed("t-other-")
    for folder in (left, other):  # as a killed process's lock goes: the lock closed, the folder stays
        os.close(folder._finalizer.detach()[2][1])
    with scratch.claimed("t-pkg-") as name:
        assert os.path.isdir(name) and not os.path.exists(left.name)
        assert os.path.isdir(other.name)  # another prefix: not this claim's to remove
    assert not os.path.exists(name)


def test_a_claimed_folder_nobody_cleaned_up_goes_with_its_object(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    name = scratch.Claimed("t-pkg-").name  # the object is dropped at once
    gc.collect()
    assert not os.path.exists(name)


def test_a_symlink_a_foreign_folder_or_one_being_made_is_never_removed(tmp_path):
    target = tmp_path / "keep"
    target.mkdir()
    (target / scratch.LOCK).write_text("")
    (tmp_path / "t-pkg-link").symlink_to(target)
    (tmp_path / "t-pkg-new").mkdir()  # no lock file yet: a folder being made
    (tmp_path / "t-pkg-file").write_text("a file with the prefix")
    assert scratch.sweep("t-pkg-", tmp_path) == []
    assert (target / scratch.LOCK).exists() and (tmp_path / "t-pkg-new").is_dir()
