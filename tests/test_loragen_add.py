"""`bench/loragen_add.py`'s logic (edgeadapt.studies.loragen_add): a generator added to a finished LoRA-Gen study,
and the multi-task LoRA trained again on another budget, each scored as the whole study scored it
(configs/smoke-loragen.yaml on the tiny model; the session's trained and evaluated study, copied)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeadapt.core import config
from edgeadapt.core.errors import UserError
from edgeadapt.studies.loragen import ADAPTER_WEIGHTS, lora_update_dir
from edgeadapt.studies.loragen_add import add_generator, add_multitask
from edgeadapt.studies.loragen_summary import summarize
from edgeadapt.studies.parts import digest
from edgeadapt.training.loop import TrainResult

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "smoke-loragen.yaml"


def quiet(line: str) -> None:
    pass


@pytest.fixture
def copied(loragen_trained, tmp_path):
    """The session's trained study copied (its generators, LoRAs and measured parts), and its config."""
    shutil.copytree(loragen_trained, tmp_path / loragen_trained.name)
    return tmp_path / loragen_trained.name, lambda *more: config.load(SMOKE, [f"out_dir={tmp_path}", *more])


def scores(rows: dict) -> dict:
    return {name: row["score"] for name, row in rows.items()}


def test_a_generator_added_to_a_finished_study_scores_as_the_whole_study_did(loragen_evaluated, copied):
    evaluated, (run, cfg_with) = loragen_evaluated, copied
    spec = "minilm"
    for name in (f"generated-{spec}", f"forgetting-{spec}"):  # its rows measured again
        (run / "loragen-parts" / f"{name}.json").unlink()
    cfg = cfg_with()
    without = copy.deepcopy(evaluated)
    del without["generated"][spec], without["forgetting"][f"generated[{spec}]"]
    added = add_generator(cfg, spec, without, "study.json", resume=True, log=quiet)
    again, before = added["generated"][spec], evaluated["generated"][spec]
    assert scores(again["tasks"]) == scores(before["tasks"])
    assert again["controls"] == before["controls"] and again["added"]["to"] == "study.json"
    assert again["added"]["budget"] == {
        "steps": 6,
        "batch_size": 8,
        "lr": 1e-3,
        "precision": "fp32",
        "group_by_length": False,
        "seed": 0,
    }  # the smoke study's
    assert added["summary"]["controls"][spec] == evaluated["summary"]["controls"][spec]
    assert added["forgetting"][f"generated[{spec}]"] == evaluated["forgetting"][f"generated[{spec}]"]
    # a file measured on other rows, or on other tasks, or that has the generator already, is refused
    other = copy.deepcopy(without)
    seen = other["groups"]["seen"][0]
    other["prompting"]["zero-shot"][seen]["samples"][0] += " (another base model)"
    with pytest.raises(UserError, match=f"differ from the file's on {seen}.*another base model;"):
        add_generator(cfg, spec, other, "study.json", resume=True, log=quiet)
    other["answer_precision"] = "bf16"  # bf16 answers can also differ on another kind of CPU
    with pytest.raises(UserError, match=f"differ from the file's on {seen}.*another kind of CPU"):
        add_generator(
            cfg_with("loragen.answer_precision=bf16"), spec, other, "s.json", resume=True, log=quiet
        )
    other = copy.deepcopy(without)
    other["groups"]["seen"] = other["groups"]["seen"][1:]
    with pytest.raises(UserError, match="other tasks than this config chooses"):
        add_generator(cfg, spec, other, "study.json", resume=True, log=quiet)
    with pytest.raises(UserError, match="already scores generator minilm.*--replace"):
        add_generator(cfg, spec, evaluated, "study.json", resume=True, log=quiet)
    assert evaluated["answer_precision"] == "fp32"  # the study records what it answered in
    with pytest.raises(UserError, match="answered in fp32, this config answers in bf16: pass loragen.answer"):
        add_generator(
            cfg_with("loragen.answer_precision=bf16"), spec, without, "s.json", resume=True, log=quiet
        )
    with pytest.raises(UserError, match="LoRAs trained on seed 0, this config on seed 1: pass train.seed=0"):
        add_generator(cfg_with("train.seed=1"), spec, without, "s.json", resume=True, log=quiet)
    # asked to, it measures a generator the file scores again and replaces its rows
    stale = copy.deepcopy(evaluated)
    stale["generated"][spec]["controls"] = {}
    replaced = add_generator(cfg, spec, stale, "study.json", resume=True, log=quiet, replace=True)
    assert replaced["generated"][spec]["controls"] == before["controls"]
    assert replaced["generated"][spec]["added"]["replaced"] and not again["added"]["replaced"]


def test_the_multitask_lora_trained_on_another_budget_replaces_its_rows_and_says_so(
    loragen_evaluated, copied
):
    evaluated, (run, cfg_with) = loragen_evaluated, copied
    # on the study's own budget the trained LoRA is reused and scores as the study scored it
    same = add_multitask(cfg_with(), evaluated, "study.json", resume=True, log=quiet)
    assert scores(same["lora"]["multitask"]) == scores(evaluated["lora"]["multitask"])
    assert same["forgetting"]["multitask"] == pytest.approx(evaluated["forgetting"]["multitask"])
    goals = json.loads(json.dumps(same["summary"]["goals"]))  # the rows' timings are measured again
    assert goals == evaluated["summary"]["goals"]
    assert evaluated["budget"] == {
        "steps": 6,
        "batch_size": 8,
        "lr": 1e-3,
        "precision": "fp32",
        "group_by_length": False,
        "seed": 0,
        "per_task_steps": 3,
    }  # the config's
    lora_lr = 2e-3  # the LoRA's own, not the generator's
    assert same["lora"]["multitask_added"]["budget"] == {
        "steps": 6,
        "batch_size": 8,
        "lr": lora_lr,
        "precision": "fp32",
        "group_by_length": False,
        "seed": 0,
    }
    # on half the steps it trains again, measures again, and the generators' rows stay the file's
    cfg = cfg_with("loragen.steps=3")
    weights = lora_update_dir(cfg, "multitask") / ADAPTER_WEIGHTS
    before = digest(weights)
    fewer = add_multitask(cfg, evaluated, "study.json", resume=True, log=quiet, overrides=["loragen.steps=3"])
    assert TrainResult.load(weights.parents[1]).steps == 3 and digest(weights) != before
    assert fewer["lora"]["multitask_added"]["budget"]["steps"] == 3
    assert fewer["lora"]["multitask_added"]["overrides"] == ["loragen.steps=3"]  # how it was made
    assert same["lora"]["multitask_added"]["overrides"] == []
    # the summary tells a LoRA trained on another budget than the generators' from one on theirs
    assert {g["same_budget_as_multitask"] for g in same["summary"]["goals"].values()} == {True}
    assert {g["same_budget_as_multitask"] for g in fewer["summary"]["goals"].values()} == {False}
    unrecorded = copy.deepcopy(fewer)  # measured before budgets were recorded, nothing added
    del unrecorded["budget"], unrecorded["lora"]["multitask_added"]
    assert {g["same_budget_as_multitask"] for g in summarize(unrecorded)["goals"].values()} == {None}
    assert fewer["lora"]["per-task"] == evaluated["lora"]["per-task"]
    assert fewer["generated"] == evaluated["generated"]
    saved = json.loads((run / "loragen-parts" / "lora-multitask.json").read_text())
    assert saved["config"]["adapter"] == digest(weights) and saved["result"] == fewer["lora"]["multitask"]
    # a file from other tasks is refused before anything trains
    other = copy.deepcopy(evaluated)
    other["groups"]["seen"] = other["groups"]["seen"][1:]
    with pytest.raises(UserError, match="other tasks than this config chooses"):
        add_multitask(cfg_with("loragen.steps=4"), other, "study.json", resume=True, log=quiet)
    assert TrainResult.load(weights.parents[1]).steps == 3


def test_one_budget_is_the_same_steps_batch_precision_and_batching():
    """Learning rates are each trainer's own; a budget recorded before precision was trained in fp32, one
    recorded before batching was, on random batches."""
    from edgeadapt.studies.loragen_summary import same_budget

    lora = {"steps": 800, "batch_size": 16, "lr": 2e-3, "precision": "fp32"}
    assert same_budget({"steps": 800, "batch_size": 16, "lr": 1e-3}, lora) is True
    assert same_budget({"steps": 800, "batch_size": 16, "lr": 1e-3, "precision": "bf16"}, lora) is False
    assert same_budget({"steps": 400, "batch_size": 16, "lr": 1e-3, "precision": "fp32"}, lora) is False
    grouped = {"steps": 800, "batch_size": 16, "lr": 1e-3, "precision": "fp32", "group_by_length": True}
    assert same_budget(grouped, lora) is False
    assert same_budget(grouped, {**lora, "group_by_length": True}) is True
    assert same_budget({**grouped, "group_by_length": False}, lora) is True
    assert same_budget(None, lora) is None


def test_per_task_loras_for_more_seen_tasks_beside_the_generator(
    loragen_trained, loragen_evaluated, tmp_path
):
    """bench/loragen_per_task.py: per-task LoRAs for `--count` seen tasks (the study's first, reused even
    without --resume: never trained again over what scored it), scored on their rows, and the generator's
    share of them; `--resume` keeps the scores already in `--out` and scores only the missing tasks; a
    results file of other seen tasks, or an `--out` of other overrides, is one error line and exit 2."""
    trained, evaluated = loragen_trained, loragen_evaluated
    run = tmp_path / trained.name
    shutil.copytree(trained, run)
    cfg = config.load(SMOKE, [f"out_dir={tmp_path}"])
    study_lora = lora_update_dir(cfg, "per-task/reverse") / ADAPTER_WEIGHTS
    before, written = study_lora.read_bytes(), study_lora.stat().st_mtime_ns
    (tmp_path / "study.json").write_text(json.dumps(evaluated))
    spec = next(iter(evaluated["generated"]))

    def per_task(
        results: str, *extra: str, count: int = 2, row: str = f"generated[{spec}]"
    ) -> subprocess.CompletedProcess:
        args = [str(SMOKE), f"out_dir={tmp_path}", *extra, "--results", str(tmp_path / results)]
        args += ["--row", row, "--count", str(count), "--out", str(tmp_path / "p.json")]
        script = str(ROOT / "bench" / "loragen_per_task.py")
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    done = per_task("study.json")
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "p.json").read_text())
    scores = figures["per_task_scores"]
    assert len(scores) == 2 and "reverse" in scores and set(scores) <= set(evaluated["groups"]["seen"])
    # the study's own per-task LoRA reused, not trained again (even to the same bytes)
    assert study_lora.read_bytes() == before and study_lora.stat().st_mtime_ns == written
    assert scores["reverse"]["per-task"] == evaluated["lora"]["per-task"]["reverse"]["score"]
    new = next(n for n in scores if n != "reverse")
    assert (lora_update_dir(cfg, f"per-task/{new}") / ADAPTER_WEIGHTS).is_file()
    generated = [evaluated["generated"][spec]["tasks"][n]["score"] for n in scores]
    mean_per_task = sum(s["per-task"] for s in scores.values()) / 2
    if mean_per_task:
        assert figures["generated_share"] == pytest.approx(sum(generated) / 2 / mean_per_task)
    assert figures["complete"] is True

    # a larger count resumed: the two scores in the file are kept (a marked one proves it), one more scored
    figures["per_task_scores"][new]["per-task"] = 0.123
    (tmp_path / "p.json").write_text(json.dumps({**figures, "complete": False}))
    grown = per_task("study.json", "--resume", count=3)
    assert grown.returncode == 0, grown.stderr
    assert "2 of 3 per-task scores kept from the output file" in grown.stdout
    regrown = json.loads((tmp_path / "p.json").read_text())
    assert regrown["complete"] is True and len(regrown["per_task_scores"]) == 3
    assert regrown["per_task_scores"][new]["per-task"] == 0.123
    assert regrown["seconds"] > figures["seconds"]
    kept = (tmp_path / "p.json").read_bytes()
    shrunk = per_task("study.json", "--resume", count=2)
    assert shrunk.returncode == 2 and "holds scores --count 2 would drop" in shrunk.stderr
    assert (tmp_path / "p.json").read_bytes() == kept
    (tmp_path / "p.json").write_text(json.dumps({**regrown, "per_task_scores": {new: 0.5}}))
    foreign = per_task("study.json", "--resume", count=3)
    assert foreign.returncode == 2 and "not a file this script wrote" in foreign.stderr
    assert "Traceback" not in foreign.stderr
    moved = per_task("study.json", "train.seed=5", "--resume")
    assert moved.returncode == 2 and moved.stderr.startswith("error: ") and "another --out" in moved.stderr

    before_misspelt = (tmp_path / "p.json").read_bytes()
    misspelt = per_task("study.json", row=f"generated[{spec}x]")
    assert misspelt.returncode == 2 and f"Did you mean 'generated[{spec}]'?" in misspelt.stderr
    assert (tmp_path / "p.json").read_bytes() == before_misspelt

    other = dict(evaluated, groups={**evaluated["groups"], "seen": ["reverse"]})
    (tmp_path / "other.json").write_text(json.dumps(other))
    refused = per_task("other.json")
    assert refused.returncode == 2 and refused.stderr.startswith(
        "error: the results file scored other seen tasks"
    )
