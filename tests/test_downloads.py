"""Data read from pinned archives we never install: BIG-bench's task files come out of the source archive
only as they are asked for (a fake archive here; the real one is 358 MB). The tasks the project reads ship
with it: tests/test_bigbench.py."""

from __future__ import annotations

import json

import pytest

from edgeadapt.core.errors import UserError
from edgeadapt.data import downloads
from tests.helpers import fake_archive


@pytest.fixture
def archive(tmp_path, monkeypatch):
    return fake_archive(tmp_path, monkeypatch, {task: ["1"] for task in ("alpha", "beta/easy", "gamma")})


def test_only_the_tasks_asked_for_are_extracted(archive):
    folder = downloads.downloads_dir() / "bigbench"
    assert downloads.archive_bigbench_tasks(["beta/easy"])["beta/easy"]["name"] == "beta/easy"
    assert sorted(p.name for p in folder.glob("*.json")) == ["beta__easy.json", "index.json"]
    downloads.archive_bigbench_tasks(["beta/easy"])  # already there: the archive is not read again
    assert len(archive) == 1
    assert set(downloads.archive_bigbench_tasks(["alpha", "beta/easy"])) == {"alpha", "beta/easy"}
    assert len(archive) == 2 and not (folder / "gamma.json").exists()
    assert set(downloads.archive_bigbench_tasks()) == {"alpha", "beta/easy", "gamma"}


def test_an_unknown_task_says_which_it_meant(archive):
    downloads.archive_bigbench_tasks(["alpha"])
    with pytest.raises(UserError, match="No BIG-bench task 'alpah'.*alpha"):
        downloads.archive_bigbench_tasks(["alpah"])


def test_rewrite_requests_quote_distinct_inputs_of_every_task_in_its_own_templates(tmp_path, monkeypatch):
    from edgeadapt.data import bigbench
    from edgeadapt.data.general_prompts import REWRITE_TASKS, rewrite_requests

    inputs = {task: [f"{task} {i}" for i in range(5)] + ["", f"{task} 0"] for task in REWRITE_TASKS}
    task_files = {
        task: json.dumps({"examples": [{"input": text} for text in texts]}).encode()
        for task, texts in inputs.items()
    }
    bigbench.write_shipped(task_files, tmp_path / "shipped.zip")
    monkeypatch.setattr(bigbench, "SHIPPED", tmp_path / "shipped.zip")
    requests = rewrite_requests(per_task=3)
    assert len(requests) == 3 * len(REWRITE_TASKS) and len(set(requests)) == len(requests)
    for task, templates in REWRITE_TASKS.items():
        own = [r for r in requests if f"'{task} " in r]
        assert len(own) == 3  # empty and repeated inputs left out, three per task
        assert {t.split("'")[0] for t in templates} == {r.split("'")[0] for r in own}
    assert rewrite_requests(per_task=3) == requests  # the same requests every time
