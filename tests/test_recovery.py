"""Capability recovery: scaling updates back towards the base model."""

import json

import pytest
import torch

from edgeadapt import updates
from edgeadapt.cli import main
from edgeadapt.core import config
from edgeadapt.core.errors import UserError
from edgeadapt.studies.recovery import s_star
from tests.helpers import SMOKE, batch, one_step, prepared

# adaptq's frozen blocks (and qlora's base) stay quantized at every s; left in fp32 here, s=0 is exactly the base
# (tests/test_adaptq.py checks that s=0 is the quantized base otherwise).
OPTIONS = {"adaptq": {"frozen_bits": 32}, "qlora": {"bits": 32}}


@pytest.mark.parametrize("name", list(updates.METHODS))
def test_scale_zero_is_the_base_and_one_the_tuned_model(name, make_tiny):
    base = make_tiny()
    tuned = prepared(name, make_tiny(), **OPTIONS.get(name, {}))
    one_step(tuned)
    expected_tuned = tuned(batch()).logits.detach()
    method = updates.get(name)
    with method.scaled(tuned, base, 0.0) as model:
        torch.testing.assert_close(model(batch()).logits, base(batch()).logits, rtol=0, atol=1e-6)
    with method.scaled(tuned, base, 1.0) as model:
        torch.testing.assert_close(model(batch()).logits, expected_tuned)
    with method.scaled(tuned, base, 0.5) as model:
        half = model(batch()).logits.detach()
    assert not torch.allclose(half, expected_tuned) and not torch.allclose(half, base(batch()).logits)
    torch.testing.assert_close(tuned(batch()).logits, expected_tuned)  # restored on exit


def test_sft_half_scale_is_the_weight_midpoint(make_tiny):
    base, tuned = make_tiny(), prepared("sft", make_tiny())
    one_step(tuned)
    name = "model.layers.0.mlp.up_proj.weight"
    b, t = dict(base.named_parameters())[name].detach(), dict(tuned.named_parameters())[name].detach().clone()
    with updates.get("sft").scaled(tuned, base, 0.5) as model:
        torch.testing.assert_close(dict(model.named_parameters())[name].detach(), (b + t) / 2)


def test_s_star_is_the_largest_scale_within_budget():
    points = [
        {"s": 0.0, "general_degradation_pct": 0.0, "domain_accuracy": 0.0},
        {"s": 0.5, "general_degradation_pct": 4.0, "domain_accuracy": 0.3},
        {"s": 0.75, "general_degradation_pct": 6.0, "domain_accuracy": 0.4},
        {"s": 1.0, "general_degradation_pct": 9.0, "domain_accuracy": 0.5},
    ]
    assert s_star(points, 5.0)["s"] == 0.5
    assert s_star(points, 10.0)["s"] == 1.0
    assert s_star(points[1:], 1.0) is None


def test_scales_out_of_range_are_rejected():
    with pytest.raises(UserError, match="recovery.scales"):
        config.load(None, ["recovery.scales=[0, 1.5]"])


def test_recover_cli_adds_curves_to_results_and_report(tmp_path, capsys):
    assert (
        main(["compare", str(SMOKE), f"out_dir={tmp_path}", "methods={lora: {lr: 0.001}, sft: {lr: 0.001}}"])
        == 0
    )
    run_dir = tmp_path / "smoke"
    assert main(["recover", str(run_dir), "recovery.scales=[0, 0.5, 1]", "recovery.budget_pct=5"]) == 0
    assert "Capability recovery" in capsys.readouterr().out
    results = json.loads((run_dir / "results.json").read_text())
    for name in ("lora", "sft"):
        curve = results["recovery"]["methods"][name]["curve"]
        assert [p["s"] for p in curve] == [0, 0.5, 1]
        assert curve[0]["general_ppl"] == pytest.approx(results["base"]["general_ppl"], rel=1e-5)
        assert curve[-1]["general_ppl"] == pytest.approx(results["methods"][name]["general_ppl"], rel=1e-4)
        # s* is the largest share whose degradation is within the 5% budget, read off the curve
        within = [p["s"] for p in curve if p["general_degradation_pct"] <= 5]
        assert results["recovery"]["methods"][name]["s_star"] == (max(within) if within else None)
    assert results["config"]["recovery"]["scales"] == [0, 0.5, 1]
    assert "recovery.png" in (run_dir / "report.md").read_text()
    assert main(["recover", str(run_dir), "train.steps=3"]) == 2


def test_compare_runs_recovery_when_enabled(tmp_path):
    args = [
        "compare",
        str(SMOKE),
        f"out_dir={tmp_path}",
        "methods={lora: {lr: 0.001}}",
        "recovery.enabled=true",
        "recovery.scales=[0, 1]",
    ]
    assert main(args) == 0
    results = json.loads((tmp_path / "smoke" / "results.json").read_text())
    assert set(results["recovery"]["methods"]) == {"lora"}
