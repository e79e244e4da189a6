"""Data read from pinned archives we never install: BIG-bench's task files come out of the source archive
only as they are asked for (a fake archive here; the real one is 358 MB)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from edgeadapt.core.errors import UserError
from edgeadapt.data import downloads


@pytest.fixture
def archive(tmp_path, monkeypatch):
    path = tmp_path / "bigbench.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for task in ("alpha", "beta/easy", "gamma"):
            data = json.dumps({"name": task, "examples": [{"input": "1", "target": "2"}]}).encode()
            member = tarfile.TarInfo(f"{downloads.BIGBENCH_ROOT}{task}/task.json")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    passes = []
    monkeypatch.setenv("EDGEADAPT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(downloads, "fetch", lambda name: passes.append(name) or path)
    return passes


def test_only_the_tasks_asked_for_are_extracted(archive):
    folder = downloads.downloads_dir() / "bigbench"
    assert downloads.bigbench_tasks(["beta/easy"])["beta/easy"]["name"] == "beta/easy"
    assert sorted(p.name for p in folder.glob("*.json")) == ["beta__easy.json", "index.json"]
    downloads.bigbench_tasks(["beta/easy"])  # already there: the archive is not read again
    assert len(archive) == 1
    assert set(downloads.bigbench_tasks(["alpha", "beta/easy"])) == {"alpha", "beta/easy"}
    assert len(archive) == 2 and not (folder / "gamma.json").exists()
    assert set(downloads.bigbench_tasks()) == {"alpha", "beta/easy", "gamma"}


def test_an_unknown_task_says_which_it_meant(archive):
    downloads.bigbench_tasks(["alpha"])
    with pytest.raises(UserError, match="No BIG-bench task 'alpah'.*alpha"):
        downloads.bigbench_tasks(["alpah"])
