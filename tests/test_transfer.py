"""Cross-domain transfer: the metrics by hand, and `edgeadapt transfer` end to end on the tiny model."""

import json
from pathlib import Path

import pytest

from edgeadapt.cli import main
from edgeadapt.core import config
from edgeadapt.core.errors import UserError
from edgeadapt.evaluation.metrics import cdtr, dsi, generalization_gap, mean_std
from edgeadapt.studies.transfer import transfer_metrics

SMOKE_TRANSFER = Path(__file__).parents[1] / "configs" / "smoke-transfer.yaml"


def test_metrics_against_hand_computed_values():
    # Domain perplexity 10 -> 5 (S doubles), general 20 -> 25 (S x 0.8): DSI = 2 / 0.8.
    assert dsi(1 / 5, 1 / 10, 1 / 25, 1 / 20) == pytest.approx(2.5)
    assert generalization_gap(1 / 25, 1 / 20) == pytest.approx(0.2)
    assert generalization_gap(1 / 20, 1 / 20) == 0
    assert cdtr(0.3, 0.2, 0.6) == pytest.approx(0.25)
    assert cdtr(0.6, 0.2, 0.6) == 1  # the specialist on its own domain
    assert cdtr(0.1, 0.2, 0.6) == pytest.approx(-0.25)  # tuning on i hurt domain j
    assert cdtr(0.3, 0.2, 0.2) is None  # the specialist did not move: no ratio
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)


def scores(general, **domains):
    return {
        "general_ppl": general,
        "domains": {d: {"domain_ppl": p, "domain_accuracy": a} for d, (p, a) in domains.items()},
    }


def test_transfer_metrics_of_a_hand_made_matrix():
    base = scores(20.0, a=(10.0, 0.0), b=(8.0, 0.1))
    tuned = {"a": scores(25.0, a=(5.0, 0.5), b=(8.0, 0.2)), "b": scores(20.0, a=(10.0, 0.3), b=(4.0, 0.9))}
    m = transfer_metrics(base, tuned)
    assert m["dsi"]["a"] == pytest.approx(2.5) and m["dsi"]["b"] == pytest.approx(2.0)
    assert m["gg"] == pytest.approx({"a": 0.2, "b": 0.0})
    assert m["general_degradation_pct"] == pytest.approx({"a": 25.0, "b": 0.0})
    assert m["cdtr"]["a"]["b"] == pytest.approx(0.0) and m["cdtr"]["b"]["a"] == pytest.approx(0.0)
    assert m["cross_domain_accuracy"]["mean"] == pytest.approx(0.25)  # off-diagonal: 0.2 and 0.3
    assert m["cross_domain_accuracy"]["n"] == 2


def test_transfer_needs_two_domains():
    with pytest.raises(UserError, match="transfer.domains: list at least two"):
        config.load(None, ["transfer.domains=[medical]"])


def test_transfer_cli_writes_the_matrix_and_reports(tmp_path):
    args = ["transfer", str(SMOKE_TRANSFER), f"out_dir={tmp_path}", "transfer.domains=[medical,math]"]
    assert main(args + ["methods={lora: {lr: 1.0e-3}}"]) == 0
    run = tmp_path / "smoke-transfer"
    results = json.loads((run / "transfer.json").read_text())
    assert results["domains"] == ["medical", "math"]
    lora = results["methods"]["lora"]
    assert set(lora["trained_on"]) == {"medical", "math"}
    assert set(lora["trained_on"]["math"]["domains"]) == {"medical", "math"}
    assert set(lora["metrics"]["cdtr"]["medical"]) == {"math"}
    assert lora["metrics"]["gg"]["math"] == pytest.approx(
        1 - results["base"]["general_ppl"] / lora["trained_on"]["math"]["general_ppl"]
    )
    assert "data:image/png;base64," in (run / "transfer.html").read_text()
    assert "| on math |" in (run / "transfer.md").read_text()
    assert (run / "on-math" / "lora" / "update" / "adapter_model.safetensors").is_file()
