"""Update spectra, attention and representation metrics against hand-computed values; `analyze` end to end."""

import json
import math

import pytest
import torch

from edgeadapt.cli import main
from edgeadapt.evaluation.spectral import (
    attention_entropy,
    attention_js,
    effective_rank,
    linear_cka,
    singular_values,
    stable_rank,
    subspace_overlap,
)
from edgeadapt.studies.analysis import recommend_rank, weight_updates
from tests.helpers import SMOKE, one_step, prepared


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_a_rank_r_update_has_effective_and_stable_rank_at_most_r(rank):
    torch.manual_seed(rank)
    delta = torch.randn(40, rank) @ torch.randn(rank, 30)
    sv = singular_values(delta)
    assert effective_rank(sv) <= rank + 1e-6 and stable_rank(sv) <= rank + 1e-6
    assert effective_rank(sv) > 0.5 * rank or rank == 1


def test_ranks_of_known_spectra():
    flat = torch.ones(6, dtype=torch.float64)
    assert effective_rank(flat) == pytest.approx(6) and stable_rank(flat) == pytest.approx(6)
    spiked = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    p = torch.tensor([2 / 3, 1 / 3])
    assert effective_rank(spiked) == pytest.approx(math.exp(float(-(p * p.log()).sum())))
    assert stable_rank(spiked) == pytest.approx((4 + 1) / 4)


def test_subspace_overlap_is_one_inside_and_zero_orthogonal():
    base = torch.diag(torch.tensor([5.0, 4.0, 3.0, 0.1, 0.1, 0.1]))
    inside = torch.zeros(6, 6)
    inside[0, 1] = inside[1, 0] = 1.0
    outside = torch.zeros(6, 6)
    outside[4, 5] = outside[5, 4] = 1.0
    assert subspace_overlap(inside, base, 2) == pytest.approx(1.0)
    assert subspace_overlap(outside, base, 2) == pytest.approx(0.0, abs=1e-12)


def test_attention_entropy_and_js_by_hand():
    uniform = torch.full((1, 1, 2, 4), 0.25)
    assert attention_entropy(uniform) == pytest.approx(math.log(4))
    one_hot = torch.zeros(1, 1, 2, 4)
    one_hot[..., 0] = 1.0
    assert attention_entropy(one_hot) == pytest.approx(0.0, abs=1e-12)
    assert attention_js(uniform, uniform) == pytest.approx(0.0, abs=1e-12)
    assert attention_js(uniform, one_hot) == pytest.approx(attention_js(one_hot, uniform))
    a, b = torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.0, 1.0]]]])
    assert attention_js(a, b) == pytest.approx(math.log(2))  # disjoint rows: the maximum


def test_linear_cka_invariances():
    torch.manual_seed(0)
    x = torch.randn(200, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ rotation + 1.0) == pytest.approx(1.0)
    assert linear_cka(x, torch.randn(200, 16)) < 0.2


@pytest.mark.parametrize("name", ["sft", "lora", "hlora"])
def test_weight_updates_are_the_changes_of_the_trained_modules(name, make_tiny):
    base, tuned = make_tiny(), prepared(name, make_tiny(), **({"rank": 4} if name != "sft" else {}))
    one_step(tuned)
    updates = weight_updates(tuned, base)
    assert updates and all(".layers." in n and not n.startswith("base_model") for n in updates)
    name0 = next(iter(updates))
    if name == "sft":
        expected = tuned.get_submodule(name0).weight - base.get_submodule(name0).weight
        torch.testing.assert_close(updates[name0], expected.detach())
    else:  # scaling·B·A, of rank at most the adapter's
        assert torch.linalg.matrix_rank(updates[name0]) <= 4


def test_rank_recommendation_is_the_best_within_budget():
    def m(method, rank, acc, degr, size):
        return {
            "options": {"method": method, "rank": rank, "scaling": "standard"},
            "domain_accuracy": acc,
            "general_degradation_pct": degr,
            "update_bytes": {"fp32": size},
        }

    results = {
        "methods": {
            "sft": m("sft", None, 0.9, 1.0, 100),
            "r8": m("lora", 8, 0.4, 2.0, 10),
            "r64": m("lora", 64, 0.4, 4.0, 80),
            "r256": m("lora", 256, 0.7, 9.0, 300),
        }
    }
    advice = recommend_rank(results, 5.0)
    assert advice["variant"] == "r8" and advice["within_budget"] == 2  # tie on accuracy: the smaller one
    assert recommend_rank(results, 10.0)["variant"] == "r256"
    assert recommend_rank(results, 1.0)["variant"] is None
    assert recommend_rank(results, 1.0)["nearest"]["variant"] == "r8"  # what a 1% budget would have to allow
    results["base"] = {"domain_accuracy": 0.5}  # nothing within 5% beats the base: no advice
    advice = recommend_rank(results, 5.0)
    assert advice["variant"] is None
    assert advice["nearest"]["variant"] == "r256"  # the only one above the base, at +9%
    results["base"] = {"domain_accuracy": 0.8}
    assert recommend_rank(results, 5.0)["nearest"] is None  # none learned anything


def test_rank_series_groups_variants_by_scaling_and_plots_them():
    from edgeadapt.reports.analysis import rank_plot, rank_series
    from edgeadapt.reports.common import png, pyplot

    plt = pyplot()

    def m(method, rank=None, scaling="standard"):
        return {
            "options": {"method": method, "rank": rank, "scaling": scaling},
            "domain_accuracy": 0.1,
            "general_degradation_pct": 1.0,
        }

    summary = {"summary": {"mean_effective_rank": 2.0, "mean_stable_rank": 1.5}}
    methods = {"sft": m("sft"), "a64": m("lora", 64), "a8": m("lora", 8), "n8": m("lora", 8, "none")}
    results = {"methods": methods, "analysis": {"methods": dict.fromkeys(methods, summary)}}
    assert rank_series(results) == {"standard": [(8, "a8"), (64, "a64")], "none": [(8, "n8")]}
    assert rank_plot(plt, results, png)["ranks.png"].startswith(b"\x89PNG")
    del results["analysis"]["methods"]["a64"]  # one rank left among the analysed variants: no plot
    assert rank_series(results) == {} and rank_plot(plt, results, png) == {}


def test_analyze_cli_adds_the_section_and_plots(tmp_path):
    assert main(["compare", str(SMOKE), f"out_dir={tmp_path}", "methods={lora: {lr: 1.0e-3}}"]) == 0
    run = tmp_path / "smoke"
    assert main(["analyze", str(run), "analysis.chunks=2"]) == 0
    analysis = json.loads((run / "results.json").read_text())["analysis"]
    lora = analysis["methods"]["lora"]
    assert lora["summary"]["modules_updated"] == 14  # 7 projections x 2 layers
    assert all(m["effective_rank"] <= 8 + 1e-6 for m in lora["modules"])
    assert len(lora["layers"]) == 2 and all(0 < r["cka"] <= 1 + 1e-9 for r in lora["layers"])
    assert analysis["chunks"] == 2 and analysis["recommendation"]["variant"] is None  # nothing learned
    assert (run / "plots" / "spectra.png").is_file() and "What the updates look like" in (
        run / "report.md"
    ).read_text()
    assert not (run / "plots" / "ranks.png").exists()  # one rank: nothing to plot against it
    assert main(["analyze", str(run), "train.steps=3"]) == 2  # only analysis.* keys


def test_analyze_a_run_evaluated_for_some_of_its_methods(tmp_path):
    common = [str(SMOKE), f"out_dir={tmp_path}", "--method", "lora"]
    assert main(["train", *common]) == 0 and main(["eval", *common]) == 0
    assert main(["analyze", str(tmp_path / "smoke"), "analysis.chunks=1"]) == 0
    analysis = json.loads((tmp_path / "smoke" / "results.json").read_text())["analysis"]
    assert list(analysis["methods"]) == ["lora"]
