"""bench/cuda_suite.py: the suite's failures on a GPU machine, sorted by where they fail again alone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "cuda_suite.py"


@pytest.fixture(scope="module")
def cuda_suite():
    spec = importlib.util.spec_from_file_location("cuda_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_failures_are_read_from_junit_including_a_module_that_did_not_collect(cuda_suite, tmp_path):
    junit = tmp_path / "r.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a" name="test_ok" />'
        '<testcase classname="tests.test_a" name="test_x[a b-c]"><failure message="m" /></testcase>'
        '<testcase classname="tests.test_b.TestK" name="test_y"><error message="e" /></testcase>'
        '<testcase classname="" name="tests.test_c"><error message="ImportError" /></testcase>'
        "</testsuite></testsuites>"
    )
    assert cuda_suite.failed_ids(junit) == [
        "tests/test_a.py::test_x[a b-c]",
        "tests/test_b.py::TestK::test_y",
        "tests/test_c.py",
    ]
    assert cuda_suite.failed_ids(tmp_path / "never-written.xml") == []


def test_a_failure_is_sorted_by_where_it_fails_again_alone(cuda_suite):
    sorted_ids = cuda_suite.sort_failures(["gpu", "env", "flaky"], ["gpu", "env"], ["env"])
    assert sorted_ids == {"cuda_only": ["gpu"], "everywhere": ["env"], "parallel_only": ["flaky"]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script would run this suite again")
def test_without_a_gpu_it_says_so_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.startswith("error: no CUDA device")
    assert not (tmp_path / "o").exists()
