"""The sweep: frontier and matched-skill interpolation on hand-made points, fact recall, resume."""

import json
from pathlib import Path

import pytest

from edgeadapt.cli import main
from edgeadapt.core import config
from edgeadapt.core.errors import UserError
from edgeadapt.evaluation.frontier import compare_at_target, degradation_at, pareto_frontier
from edgeadapt.evaluation.metrics import contains_answer
from edgeadapt.studies.sweep import grid_configs, summarize

SMOKE_SWEEP = Path(__file__).parents[1] / "configs" / "smoke-sweep.yaml"


def p(degradation, accuracy, spread=0.0, name=None):
    return {"degradation": degradation, "accuracy": accuracy, "spread": spread, "point": name}


def test_frontier_drops_dominated_points():
    points = [p(0, 0.0, name="base"), p(2, 0.3, name="a"), p(3, 0.2, name="dominated"), p(5, 0.6, name="b")]
    points.append(p(5, 0.5, name="same cost, less skill"))
    assert [q["point"] for q in pareto_frontier(points)] == ["base", "a", "b"]


def test_degradation_interpolates_along_the_frontier_and_reports_out_of_reach():
    frontier = [p(0, 0.0), p(2, 0.4, spread=1.0), p(10, 0.8, spread=3.0)]
    assert degradation_at(frontier, 0.2) == pytest.approx(1.0)
    assert degradation_at(frontier, 0.6) == pytest.approx(6.0)
    assert degradation_at(frontier, 0.6, "spread") == pytest.approx(2.0)
    assert degradation_at(frontier, 0.4) == pytest.approx(2.0)
    assert degradation_at(frontier, 0.9) is None


def test_a_lead_inside_the_spread_is_not_a_win():
    frontiers = {"x": [p(0, 0.0), p(4, 0.5, spread=2.0)], "y": [p(0, 0.0), p(5, 0.5, spread=2.0)]}
    assert compare_at_target(frontiers, 0.5)["verdict"] == "within the spread across seeds: no winner"
    frontiers["y"] = [p(0, 0.0), p(12, 0.5, spread=1.0)]
    assert compare_at_target(frontiers, 0.5)["verdict"] == "x forgets least"
    frontiers["y"] = [p(0, 0.0), p(1, 0.3)]
    row = compare_at_target(frontiers, 0.5)
    assert row["methods"]["y"] is None and row["verdict"] == "only x reaches this accuracy"


def test_summarize_targets_are_shares_of_the_best_accuracy():
    points = [dict(p(2, 0.4, name="l1"), method="lora"), dict(p(8, 0.8, name="s1"), method="sft")]
    summary = summarize(points, {"domain_accuracy": 0.1}, [0.1, 0.5, 1.0], seeds=3)
    assert summary["best_accuracy"] == 0.8
    low, mid, top = summary["matched"]
    assert low["no_update_needed"]  # 0.08 is below the base model's 0.1
    assert mid["methods"]["lora"]["degradation"] == pytest.approx(2 * (0.4 - 0.1) / 0.3)
    assert top["methods"]["lora"] is None and top["verdict"] == "only sft reaches this accuracy"
    assert mid["verdict"] == "lora forgets least"
    one_seed = summarize(points, {"domain_accuracy": 0.1}, [0.5])["matched"][0]
    assert one_seed["verdict"] == "lora forgets least (one seed: no spread measured)"


def test_fact_answers_match_whole_words():
    assert contains_answer("The capital of France is Paris.", "Paris")
    assert not contains_answer("Parisian food is great", "Paris")
    assert contains_answer("It is carbon dioxide, CO2.", "carbon dioxide")
    assert not contains_answer("anything", "")
    assert contains_answer("A week has 7 days.", "seven|7") and contains_answer("seven days", "seven|7")


def test_grid_names_every_method_and_learning_rate():
    cfg = config.load(SMOKE_SWEEP, ["sweep.steps=[2, 4]", "sweep.seeds=[0]"])
    grid = grid_configs(cfg)
    assert set(grid) == {((), 2, 0), ((), 4, 0)}
    assert set(grid[((), 4, 0)].methods) == {"sft-lr0.0005", "sft-lr0.002", "lora-lr0.0005", "lora-lr0.002"}
    assert grid[((), 4, 0)].methods["lora-lr0.002"] == {"method": "lora", "lr": 0.002}
    assert grid[((), 4, 0)].train.steps == 4 and grid[((), 4, 0)].name == "steps4-seed0"  # as before a grid


def test_a_grid_over_any_config_key_makes_one_run_per_value():
    cfg = config.load(
        SMOKE_SWEEP, ["sweep.seeds=[0]", "sweep.grid={data.train_rows: [8, 16], train.batch_size: [2]}"]
    )
    grid = grid_configs(cfg)
    assert sorted((dict(p)["data.train_rows"], s) for p, s, _ in grid) == [(8, 2), (16, 2)]
    sub = grid[((("data.train_rows", 16), ("train.batch_size", 2)), 2, 0)]
    assert (
        sub.data.train_rows == 16
        and sub.train.batch_size == 2
        and sub.name == "train_rows16-batch_size2-steps2-seed0"
    )
    with pytest.raises(UserError, match="data: unknown key 'train_row'"):
        grid_configs(config.load(SMOKE_SWEEP, ["sweep.grid={data.train_row: [8]}"]))
    with pytest.raises(UserError, match="sweep.grid.methods.lora.lr: sweep a run setting"):
        config.load(SMOKE_SWEEP, ["sweep.grid={methods.lora.lr: [1]}"])


def test_the_data_size_curve_trains_one_epoch_per_size(tmp_path):
    args = [
        "sweep",
        str(SMOKE_SWEEP),
        f"out_dir={tmp_path}",
        "methods={lora: {lr: 1.0e-3}}",
        "sweep.lr_factors=[1]",
        "sweep.seeds=[0]",
        "train.epochs=1",
        "sweep.grid={data.train_rows: [8, 16]}",
    ]
    assert main(args) == 0
    sweep = json.loads((tmp_path / "smoke-sweep" / "sweep.json").read_text())
    curve = sweep["curves"]["data.train_rows"]["lora-lr0.001"]
    assert [(r["value"], r["steps"]) for r in curve] == [(8, 2), (16, 4)]  # batch 4: one pass over the rows
    assert sorted(p.name for p in (tmp_path / "smoke-sweep").glob("train_rows*")) == [
        "train_rows16-epochs1-seed0",
        "train_rows8-epochs1-seed0",
    ]
    report = (tmp_path / "smoke-sweep" / "sweep.md").read_text()
    assert "## Against data.train_rows" in report and "plots/sweep-data.train_rows.png" in report
    assert "1 epoch(s) over each point's rows" in report
    plot = tmp_path / "smoke-sweep" / "plots" / "sweep-data.train_rows.png"
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "smoke-sweep" / "sweep.html").read_text().count("<img") == 2


def test_bad_sweep_settings_are_named():
    with pytest.raises(UserError, match="sweep.targets: shares in"):
        config.load(None, ["sweep.targets=[0, 0.5]"])
    with pytest.raises(UserError, match="sweep.lr_factors: numbers > 0"):
        config.load(None, ["sweep.lr_factors=[-1]"])
    with pytest.raises(UserError, match="sweep.steps: ignored while train.epochs is set"):
        config.load(None, ["sweep.steps=[2, 4]", "train.epochs=1"])
    with pytest.raises(UserError, match="sweep.steps: ignored while train.epochs is set"):
        config.load(None, ["sweep.steps=[2, 4]", "sweep.grid={train.epochs: [1, 2]}"])


def test_sweep_cli_writes_the_frontier_and_resumes(tmp_path, capsys):
    args = ["sweep", str(SMOKE_SWEEP), f"out_dir={tmp_path}", "methods={lora: {lr: 1.0e-3}}"]
    assert main(args) == 0
    # the base is evaluated once: the second seed's run shares the first's (same model, data and eval)
    out = capsys.readouterr().out
    assert out.count("[base] evaluating") == 1 and out.count("[base] the evaluation of") == 1
    bases = [
        json.loads(p.read_text()) for p in sorted((tmp_path / "smoke-sweep").glob("*/eval_metrics.json"))
    ]
    assert len(bases) == 2 and bases[0] == bases[1]
    sweep = json.loads((tmp_path / "smoke-sweep" / "sweep.json").read_text())
    assert len(sweep["points"]) == 2 and all(q["seeds"] == 2 for q in sweep["points"])
    assert all(q["fact_recall"] is not None for q in sweep["points"])
    assert (
        sweep["frontiers"]["lora"][0]["point"] == "base" or sweep["frontiers"]["lora"][0]["degradation"] < 0
    )
    assert "Forgetting at matched skill" in (tmp_path / "smoke-sweep" / "sweep.md").read_text()
    capsys.readouterr()
    assert main(args) == 0  # everything is reused
    out = capsys.readouterr().out
    assert out.count("already trained") == 4 and out.count("reusing earlier evaluations") == 2
    assert "evaluating" not in out


def test_a_sweep_stopped_midway_keeps_the_summary_it_had(tmp_path, monkeypatch):
    from edgeadapt.studies import sweep as sweep_study

    folder = tmp_path / "smoke-sweep"
    folder.mkdir()
    (folder / "sweep.json").write_text('{"points": ["an earlier, finished sweep"]}')

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_study, "train_run", stopped)
    args = ["sweep", str(SMOKE_SWEEP), f"out_dir={tmp_path}", "methods={lora: {lr: 1.0e-3}}"]
    assert main(args) == 130  # interrupted (Ctrl-C) during the first training
    assert json.loads((folder / "sweep.json").read_text()) == {"points": ["an earlier, finished sweep"]}


def test_facts_come_from_the_project_a_user_file_or_nowhere(tmp_path):
    from edgeadapt.data.run_data import load_facts

    assert len(load_facts("builtin", "")) == 50 and load_facts("off", "") == []
    (tmp_path / "facts.jsonl").write_text('{"prompt": "Capital of Peru?", "response": "Lima"}\n')
    assert load_facts("facts.jsonl", str(tmp_path)) == [{"prompt": "Capital of Peru?", "response": "Lima"}]
    (tmp_path / "bad.jsonl").write_text('{"text": "no question here"}\n')
    with pytest.raises(UserError, match="bad.jsonl: row 1 needs string 'prompt' and 'response'"):
        load_facts("bad.jsonl", str(tmp_path))
