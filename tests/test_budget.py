"""The forgetting budget during training, and general-text replay."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from edgeadapt.cli import main
from edgeadapt.core import config
from edgeadapt.data.run_data import RunData
from edgeadapt.training.forgetting_budget import ForgettingBudget
from tests.helpers import SMOKE


def evaluate(budget, model, step, domain, general, value):
    """Set every weight to `value`, then report one evaluation as the Trainer would (domain, then general)."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    state, control = (
        SimpleNamespace(global_step=step, log_history=[]),
        SimpleNamespace(should_training_stop=False),
    )
    budget.on_evaluate(None, state, control, metrics={"eval_domain_loss": domain})
    budget.on_evaluate(None, state, control, metrics={"eval_general_loss": general})
    return control.should_training_stop


def test_keeps_best_domain_loss_within_budget_and_stops_after_patience():
    model = torch.nn.Linear(2, 2)
    budget = ForgettingBudget(model, budget_pct=5.0, patience=2)
    base = 3.0
    assert not evaluate(budget, model, 0, domain=4.0, general=base, value=0.0)
    assert not evaluate(budget, model, 10, domain=2.0, general=base + math.log(1.04), value=1.0)  # +4%: kept
    assert not evaluate(budget, model, 20, domain=1.5, general=base + math.log(1.06), value=2.0)  # +6%: over
    assert not evaluate(
        budget, model, 30, domain=2.2, general=base + math.log(1.03), value=3.0
    )  # within, worse
    assert not evaluate(budget, model, 40, domain=1.0, general=base + math.log(1.10), value=4.0)  # over (1)
    assert evaluate(budget, model, 50, domain=0.9, general=base + math.log(1.20), value=5.0)  # over (2): stop
    budget.restore()
    assert torch.all(model.weight == 1.0)  # the weights of step 10
    summary = budget.summary(last_step=50)
    assert summary["kept_step"] == 10 and summary["stopped_early_at"] == 50
    assert summary["kept_general_degradation_pct"] == pytest.approx(4.0)
    assert "stopped early at step 50" in summary["reason"]


def test_step_zero_is_kept_when_everything_later_is_over_budget():
    model = torch.nn.Linear(2, 2)
    budget = ForgettingBudget(model, budget_pct=1.0, patience=5)
    evaluate(budget, model, 0, domain=4.0, general=3.0, value=7.0)
    evaluate(budget, model, 10, domain=1.0, general=3.5, value=8.0)
    budget.restore()
    assert torch.all(model.weight == 7.0) and budget.summary(10)["kept_step"] == 0


def test_compare_records_the_budget_decision(tmp_path):
    # At lr 0.3 the tiny model's SFT is several hundred percent worse on general text by step 2: a 10% budget
    # binds there, training stops (patience 1) and the weights of step 0, the only evaluation within it, are kept.
    args = [
        "compare",
        str(SMOKE),
        f"out_dir={tmp_path}",
        "methods={sft: {lr: 0.3}}",
        "train.steps=8",
        "train.eval_every=2",
        "train.forgetting_budget_pct=10",
        "train.budget_patience=1",
    ]
    assert main(args) == 0
    results = json.loads((tmp_path / "smoke" / "results.json").read_text())
    sft = results["methods"]["sft"]
    budget = sft["budget"]
    assert budget["budget_pct"] == 10 and budget["stopped_early_at"] == 2 and budget["kept_step"] == 0
    assert sft["steps"] == 2 and [p["step"] for p in sft["curve"]] == [0, 2]
    assert "stopped early at step 2" in budget["reason"]
    assert "## Forgetting budget" in (tmp_path / "smoke" / "report.md").read_text()


@pytest.mark.parametrize(("ratio", "expected"), [(0.0, 0), (0.25, 21), (0.5, 64)])
def test_replay_adds_the_share_of_general_rows_from_text_no_evaluation_reads(ratio, expected):
    cfg = config.load(SMOKE, [f"data.replay_ratio={ratio}"])
    data = RunData(cfg)
    rows = data.replay_rows()
    assert len(rows) == expected and len(data.train) == 64
    assert not {r["text"] for r in rows} & set(data.general_text)


def test_replay_ratio_out_of_range_is_rejected():
    with pytest.raises(config.UserError, match="replay_ratio"):
        config.load(SMOKE, ["data.replay_ratio=1"])
