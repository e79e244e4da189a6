"""Data read from pinned archives we never install: BIG-bench's task files come out of the source archive
only as they are asked for (a fake archive here; the real one is 358 MB)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from edgeadapt.core.errors import UserError
from edgeadapt.data import downloads


def fake_archive(tmp_path, monkeypatch, tasks: dict[str, list[str]]) -> list[str]:
    """A BIG-bench archive holding `tasks` (path -> example inputs); returns the list of passes over it."""
    path = tmp_path / "bigbench.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for task, inputs in tasks.items():
            examples = [{"input": text, "target": "2"} for text in inputs]
            data = json.dumps({"name": task, "examples": examples}).encode()
            member = tarfile.TarInfo(f"{downloads.BIGBENCH_ROOT}{task}/task.json")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    passes = []
    monkeypatch.setenv("EDGEADAPT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(downloads, "fetch", lambda name: passes.append(name) or path)
    return passes


@pytest.fixture
def archive(tmp_path, monkeypatch):
    return fake_archive(tmp_path, monkeypatch, {task: ["1"] for task in ("alpha", "beta/easy", "gamma")})


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


def test_rewrite_requests_quote_distinct_inputs_of_every_task_in_its_own_templates(tmp_path, monkeypatch):
    from edgeadapt.data.general_prompts import REWRITE_TASKS, rewrite_requests

    inputs = {task: [f"{task} {i}" for i in range(5)] + ["", f"{task} 0"] for task in REWRITE_TASKS}
    fake_archive(tmp_path, monkeypatch, inputs)
    requests = rewrite_requests(per_task=3)
    assert len(requests) == 3 * len(REWRITE_TASKS) and len(set(requests)) == len(requests)
    for task, templates in REWRITE_TASKS.items():
        own = [r for r in requests if f"'{task} " in r]
        assert len(own) == 3  # empty and repeated inputs left out, three per task
        assert {t.split("'")[0] for t in templates} == {r.split("'")[0] for r in own}
    assert rewrite_requests(per_task=3) == requests  # the same requests every time
