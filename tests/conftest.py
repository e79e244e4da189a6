"""Shared fixtures: an isolated cache folder, and tiny models built in code (no network)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from edgeadapt import models  # noqa: E402

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
SMOKE_LORAGEN = SMOKE.with_name("smoke-loragen.yaml")


@pytest.fixture(scope="session", autouse=True)
def edgeadapt_home(tmp_path_factory):
    """One cache per test session, unless EDGEADAPT_HOME is set (then fetched models are reused)."""
    if not os.environ.get("EDGEADAPT_HOME"):
        os.environ["EDGEADAPT_HOME"] = str(tmp_path_factory.mktemp("edgeadapt-home"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    # The tiny random models' activations underflow into subnormal floats, which the CPU multiplies ~100x
    # slower (a 64-wide forward pass took 250 ms instead of 2); flushing them changes no test's result.
    torch.set_flush_denormal(True)
    return os.environ["EDGEADAPT_HOME"]


@pytest.fixture
def tokenizer():
    return models.tiny_tokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    return models.tiny_random_model(seed=0, vocab_size=len(tokenizer)).eval()


@pytest.fixture
def make_tiny(tokenizer):
    """A fresh tiny model with fixed weights, for tests that need several identical copies."""
    return lambda: models.tiny_random_model(seed=0, vocab_size=len(tokenizer)).eval()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """configs/smoke.yaml compared once per session (every method trained and evaluated on tiny-random)."""
    from edgeadapt.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["compare", str(SMOKE), f"out_dir={out}"]) == 0
    return out / "smoke"


@pytest.fixture(scope="session")
def loragen_trained(tmp_path_factory):
    """configs/smoke-loragen.yaml trained once per session (generators, multi-task and per-task LoRAs)."""
    from edgeadapt.cli import main

    out = tmp_path_factory.mktemp("loragen-runs")
    assert main(["loragen", "train", str(SMOKE_LORAGEN), f"out_dir={out}"]) == 0
    return out / "smoke-loragen"


@pytest.fixture(scope="session")
def loragen_evaluated(loragen_trained):
    """The session's smoke LoRA-Gen study evaluated: its loragen.json."""
    import json

    from edgeadapt.cli import main

    assert main(["loragen", "eval", str(SMOKE_LORAGEN), f"out_dir={loragen_trained.parent}"]) == 0
    return json.loads((loragen_trained / "loragen.json").read_text())


@pytest.fixture(scope="session")
def opened(smoke_run):
    """The session's smoke run, reopened for packaging."""
    from edgeadapt.runs.run import reopen

    return reopen(str(smoke_run), [], "package")


@pytest.fixture(scope="session")
def keyring(tmp_path_factory):
    """Key pairs by name: roots, update keys and a rogue one."""
    from edgeadapt.deploy import keys as keymod

    folder = tmp_path_factory.mktemp("keyring")
    return {
        name: keymod.generate_keys(folder, name)
        for name in ("root", "root2", "root3", "update", "update2", "rogue")
    }
