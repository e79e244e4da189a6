"""The BIG-bench task files edgeadapt ships (`edgeadapt.data.bigbench`): every task the project reads is in
the zip, read without the source archive (gone from PyPI) or a network, and the zip is written again from
the archive byte for byte, the same bytes every time."""

from __future__ import annotations

import zipfile

import pytest

from edgeadapt.core.errors import UserError
from edgeadapt.data import bigbench, downloads
from edgeadapt.studies import bigbench_extract
from tests.helpers import fake_archive


def test_every_task_the_project_reads_ships_and_nothing_else():
    assert sorted(bigbench.shipped_task_names()) == bigbench_extract.project_tasks()


def test_shipped_tasks_are_read_without_the_archive_or_a_network(monkeypatch):
    def no_download(name, log=print):
        raise AssertionError(f"{name} was downloaded")

    monkeypatch.setattr(downloads, "fetch", no_download)
    tasks = bigbench.bigbench_tasks(["hyperbaton", "natural_instructions/subtask050_multirc_answerability"])
    assert tasks["hyperbaton"]["name"] == "hyperbaton" and len(tasks["hyperbaton"]["examples"]) == 50000
    assert "Definition" in str(tasks["natural_instructions/subtask050_multirc_answerability"])


def test_a_task_not_shipped_is_named_with_the_closest_one():
    with pytest.raises(UserError, match="No BIG-bench task 'hyperbatom' among the 280 .*'hyperbaton'"):
        bigbench.bigbench_tasks(["hyperbaton", "hyperbatom"])


def test_the_zip_holds_the_archive_bytes_and_is_written_the_same_every_time(tmp_path, monkeypatch):
    fake_archive(tmp_path, monkeypatch, {"alpha": ["1", "2"], "beta/easy": ["3"], "gamma": ["4"]})
    monkeypatch.setattr(bigbench_extract, "project_tasks", lambda: ["alpha", "beta/easy"])
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    assert bigbench_extract.extract(first, log=lambda _: None) == ["alpha", "beta/easy"]
    bigbench_extract.extract(second, log=lambda _: None)
    assert first.read_bytes() == second.read_bytes()
    extracted = downloads.archive_bigbench_tasks(["alpha"])["alpha"]
    monkeypatch.setattr(bigbench, "SHIPPED", first)
    assert bigbench.shipped_task_names() == ["alpha", "beta/easy"]
    assert bigbench.bigbench_tasks(["alpha"])["alpha"] == extracted
    with zipfile.ZipFile(first) as shipped:
        assert (
            shipped.read("beta/easy/task.json")
            == (downloads.archive_folder() / "beta__easy.json").read_bytes()
        )
        assert {info.compress_type for info in shipped.infolist()} == {zipfile.ZIP_LZMA}


@pytest.mark.parametrize(
    "build, test_rows",
    [("build_color", 84), ("build_grammar", 100), ("build_morphology", 100)],  # README's pack table
)
def test_the_packs_that_read_bigbench_build_from_the_shipped_files(build, test_rows):
    from edgeadapt.data import more_packs

    splits = getattr(more_packs, build)(seed=0)
    assert len(splits["test"]) == test_rows and len(splits["train"]) > 1000
    test_prompts = {row["prompt"] for row in splits["test"]}
    assert not test_prompts & {row["prompt"] for row in splits["train"]}
