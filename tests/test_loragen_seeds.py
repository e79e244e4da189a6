"""The LoRA-Gen study's seeds pooled (`edgeadapt.studies.loragen_seeds`, bench/loragen_seeds.py): scores
averaged task by task, the summary's paired gaps over the seed means, each seed's own figures beside them,
and the refusals (one run, runs over other tasks, controls made from different texts, different
training budgets); one row of two runs paired (bench/loragen_paired.py)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from edgeadapt.core.errors import UserError
from edgeadapt.studies.loragen_seeds import pool_seeds

ROOT = Path(__file__).parents[1]
SPEC = "hypernet:x"


def rows(scores: dict[str, float], ms: float = 100.0) -> dict[str, dict]:
    return {
        n: {
            "score": s,
            "prompt_tokens": 40,
            "prefill_ms": ms,
            "total_ms": 3 * ms,
            "new_tokens": 4,
            "samples": [n],
        }
        for n, s in scores.items()
    }


def study(generated: dict[str, float], multitask: dict[str, float], random: float, ms: float) -> dict:
    """A loragen.json with seen tasks a, b, c and held-out task h: what `summarize` reads."""
    names = [*generated]
    return {
        "schema_version": 2,
        "prompting": {
            "zero-shot": rows(dict.fromkeys(names, 0.1)),
            "in-context": rows(dict.fromkeys(names, 0.2), ms=2 * ms),
        },
        "generated": {
            SPEC: {
                "tasks": rows(generated, ms),
                "controls": {n: {"random": random, "other": 0.0, "shuffled": 0.0} for n in names},
                "paraphrases": {n: [s, s / 2] for n, s in generated.items()},
                "generation_ms": {"total_ms": 20.0},
            }
        },
        "lora": {"multitask": rows(multitask, ms), "per-task": rows({"a": 1.0})},
        "forgetting": {
            "multitask": {"general_ppl": 50.0, "on_topic_rate": 0.4, "fact_recall": 0.1},
            f"generated[{SPEC}]": {"general_ppl": 45.0, "on_topic_rate": 0.5, "fact_recall": 0.2},
        },
        "groups": {"seen": ["a", "b", "c"], "heldout": ["h"]},
        "task_info": {},
        "seconds": 60.0,
    }


def test_seeds_pool_task_by_task_and_keep_each_seeds_own_figures():
    seed0 = study(
        {"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.1, 100
    )
    seed1 = study(
        {"a": 0.8, "b": 0.5, "c": 0.6, "h": 0.4}, {"a": 0.5, "b": 0.3, "c": 0.3, "h": 0.2}, 0.3, 200
    )
    pooled = pool_seeds({"seed0.json": seed0, "seed1.json": seed1})

    assert pooled["generated"][SPEC]["tasks"]["a"]["score"] == pytest.approx(0.7)
    assert pooled["generated"][SPEC]["tasks"]["a"]["samples"] == ["a"]  # text: the first seed's
    assert pooled["generated"][SPEC]["paraphrases"]["c"] == pytest.approx([0.5, 0.25])
    assert pooled["lora"]["multitask"]["b"]["total_ms"] == pytest.approx(450)
    assert pooled["seconds"] == 120.0

    # paired over the seen tasks' seed means: generated (0.7, 0.5, 0.5) against multi-task (0.5, 0.4, 0.4)
    gaps = [20.0, 10.0, 10.0]
    vs = pooled["summary"]["goals"][SPEC]["seen_vs_multitask"]
    assert vs["gap_points"] == pytest.approx(statistics.mean(gaps))
    assert vs["gap_stderr"] == pytest.approx(statistics.stdev(gaps) / 3**0.5)
    assert pooled["summary"]["controls"][SPEC]["seen"]["random_gap_points"] == pytest.approx(
        100 * (17 / 30 - 0.2)
    )

    each = pooled["between_seeds"][SPEC]["seen_vs_multitask_points"]
    assert each["per_seed"] == pytest.approx([0.0, 80 / 3])
    assert each["sd"] == pytest.approx(statistics.stdev([0.0, 80 / 3]))
    assert pooled["between_seeds"]["score"]["heldout"][f"generated[{SPEC}]"]["per_seed"] == pytest.approx(
        [0.2, 0.4]
    )
    assert pooled["seeds"]["seed1.json"][SPEC]["seen_control_gap_points"]["random"] == pytest.approx(
        100 * (19 / 30 - 0.3)
    )
    assert pooled["left_out"] == []


def test_a_measurement_only_one_seed_took_is_left_out_and_named():
    seed0 = study(
        {"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.1, 100
    )
    seed1 = study(
        {"a": 0.8, "b": 0.5, "c": 0.6, "h": 0.4}, {"a": 0.5, "b": 0.3, "c": 0.3, "h": 0.2}, 0.3, 200
    )
    seed1["forgetting"]["per-task"] = {"general_ppl": 70.0}
    pooled = pool_seeds({"seed0.json": seed0, "seed1.json": seed1})
    assert pooled["left_out"] == ["forgetting.per-task"]
    assert "per-task" not in pooled["forgetting"]


def test_pooling_refuses_one_run_and_runs_over_other_tasks(tmp_path):
    seed0 = study(
        {"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.1, 100
    )
    with pytest.raises(UserError, match="at least two runs"):
        pool_seeds({"seed0.json": seed0})
    other = json.loads(json.dumps(seed0))
    other["groups"]["seen"] = ["a", "b"]
    with pytest.raises(UserError, match="other.json scored other tasks than seed0.json"):
        pool_seeds({"seed0.json": seed0, "other.json": other})

    (tmp_path / "seed0.json").write_text(json.dumps(seed0))
    (tmp_path / "other.json").write_text(json.dumps(other))
    bench = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "loragen_seeds.py"),
            "seed0.json",
            "other.json",
            "--out",
            "p.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bench.returncode == 2 and bench.stderr.startswith("error: other.json scored other tasks")
    assert "Traceback" not in bench.stderr and not (tmp_path / "p.json").exists()


def test_pooling_refuses_seeds_whose_controls_were_made_from_different_texts():
    older = study(
        {"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.1, 100
    )
    newer = json.loads(json.dumps(older))
    newer["generated"][SPEC]["controls_of"] = "the text read"
    with pytest.raises(UserError, match=r"hypernet:x were made from different texts .*old.json: the trained"):
        pool_seeds({"old.json": older, "new.json": newer})
    older["generated"][SPEC]["controls_of"] = "the text read"
    assert pool_seeds({"old.json": older, "new.json": newer})["left_out"] == []


def test_pooling_refuses_seeds_trained_on_different_budgets():
    """An 800-step generator (or multi-task LoRA) averaged with a 400-step one is neither; a budget one file
    did not record cannot be checked and does not refuse."""
    short = study(
        {"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.1, 100
    )
    short["budget"] = {"steps": 400, "batch_size": 16, "lr": 1e-3, "per_task_steps": 24}
    unrecorded = json.loads(json.dumps(short))
    del unrecorded["budget"]
    assert pool_seeds({"short.json": short, "old.json": unrecorded})["left_out"] == []

    longer = json.loads(json.dumps(short))
    longer["generated"][SPEC]["added"] = {"budget": {"steps": 800, "batch_size": 16, "lr": 1e-3}}
    with pytest.raises(
        UserError, match=r"hypernet:x trained on different budgets \(short.json: 400 steps of 16 in fp32"
    ):
        pool_seeds({"short.json": short, "long.json": longer})

    grouped = json.loads(json.dumps(short))
    grouped["budget"]["group_by_length"] = True
    with pytest.raises(UserError, match=r"grouped.json: 400 steps of 16 in fp32, grouped by length\)"):
        pool_seeds({"short.json": short, "grouped.json": grouped})

    answered = json.loads(json.dumps(short))
    answered["answer_precision"] = "bf16"
    with pytest.raises(
        UserError, match=r"answered in different precisions \(short.json: fp32; bf16.json: bf16\)"
    ):
        pool_seeds({"short.json": short, "bf16.json": answered})

    lora_longer = json.loads(json.dumps(short))
    lora_longer["lora"]["multitask_added"] = {"budget": {"steps": 800, "batch_size": 16, "lr": 2e-3}}
    with pytest.raises(UserError, match="multi-task LoRA trained on different budgets"):
        pool_seeds({"short.json": short, "long.json": lora_longer})


def test_a_part_added_later_keeps_each_seeds_record_beside_their_budget():
    """bench/loragen_add.py's record (file, date, seconds) is not a measurement: each seed's is kept, the
    budget they share stays whole (steps 800, not 800.0 from an average) for the pooled summary to read."""
    seeds = {}
    for label, seconds in (("seed0.json", 100.0), ("seed1.json", 300.0)):
        run = study(
            {"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.1, 100
        )
        budget = {"steps": 800, "batch_size": 16, "lr": 2e-3}
        run["lora"]["multitask_added"] = {"to": label, "seconds": seconds, "budget": budget}
        seeds[label] = run
    pooled = pool_seeds(seeds)["lora"]["multitask_added"]
    assert [r["to"] for r in pooled["per_seed"]] == ["seed0.json", "seed1.json"]
    assert [r["seconds"] for r in pooled["per_seed"]] == [100.0, 300.0]
    assert pooled["budget"] == {"steps": 800, "batch_size": 16, "lr": 2e-3}
    assert isinstance(pooled["budget"]["steps"], int)


def test_pooled_budgets_list_each_seed_and_one_seed_twice_is_refused():
    """A budget records its seed (from 2026-12-06): pooled, the seeds are listed, never averaged (0.5 is no
    seed); two runs of one seed would read as two seeds agreeing, so they are refused."""
    runs = {}
    for label, seed in (("s0.json", 0), ("s1.json", 1), ("again.json", 1)):
        run = study({"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, dict.fromkeys("abch", 0.3), 0.1, 100)
        run["budget"] = {"steps": 800, "batch_size": 16, "lr": 1e-3, "seed": seed}
        run["generated"][SPEC]["added"] = {"budget": {"steps": 800, "batch_size": 16, "seed": seed}}
        runs[label] = run
    pooled = pool_seeds({k: runs[k] for k in ("s0.json", "s1.json")})
    assert pooled["budget"] == {"steps": 800, "batch_size": 16, "lr": 1e-3, "seeds": [0, 1]}
    assert pooled["generated"][SPEC]["added"]["budget"] == {"steps": 800, "batch_size": 16, "seeds": [0, 1]}
    with pytest.raises(UserError, match="s1.json and again.json both trained on seed 1"):
        pool_seeds({k: runs[k] for k in ("s0.json", "s1.json", "again.json")})


def test_one_row_of_two_runs_paired_task_by_task(tmp_path):
    """bench/loragen_paired.py: the same generator trained twice (bf16 against fp32, say), paired over the
    tasks both scored, a control gap never measured printed as such; a row one file lacks is one error line and
    exit 2."""
    first = study(
        {"a": 0.6, "b": 0.5, "c": 0.4, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.1, 100
    )
    second = study(
        {"a": 0.7, "b": 0.5, "c": 0.6, "h": 0.2}, {"a": 0.5, "b": 0.5, "c": 0.5, "h": 0.2}, 0.3, 100
    )
    first["generated"][SPEC]["controls"] = {}  # a run scored without controls
    for name, run in (("first.json", first), ("second.json", second)):
        (tmp_path / name).write_text(json.dumps(run))

    def paired(*rows: str) -> subprocess.CompletedProcess:
        args = [
            str(tmp_path / "first.json"),
            str(tmp_path / "second.json"),
            "--out",
            str(tmp_path / "p.json"),
        ]
        script = str(ROOT / "bench" / "loragen_paired.py")
        return subprocess.run(
            [sys.executable, script, *args, *[f"--row={r}" for r in rows]], capture_output=True, text=True
        )

    done = paired(f"generated[{SPEC}]")
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "p.json").read_text())[f"generated[{SPEC}]"]
    seen = figures["groups"]["seen"]
    gaps = [10.0, 0.0, 20.0]
    assert seen["means"] == pytest.approx([50.0, 60.0])
    assert seen["paired"]["gap_points"] == pytest.approx(10.0)
    assert seen["paired"]["gap_stderr"] == pytest.approx(statistics.stdev(gaps) / 3**0.5)
    assert seen["paired"]["wins_losses"] == [2, 0]
    assert figures["controls_seen"][1]["random_gap_points"] == pytest.approx(100 * (0.6 - 0.3))
    assert figures["forgetting"][0]["general_ppl"] == 45.0
    assert "controls on seen, first: random not measured, other not measured" in done.stdout
    assert "controls on seen, second: random +30.0 ± 5.8, other +60.0 ± 5.8" in done.stdout

    # two rows, one from each file: the first file's generator against the second's multi-task LoRA
    done = paired(f"generated[{SPEC}] vs multitask")
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "p.json").read_text())[f"generated[{SPEC}] vs multitask"]
    assert figures["groups"]["seen"]["means"] == pytest.approx([50.0, 50.0])
    assert figures["groups"]["seen"]["paired"]["wins_losses"] == [1, 1]
    assert "controls_seen" not in figures
    assert [f["general_ppl"] for f in figures["forgetting"]] == [45.0, 50.0]

    missing = paired("per-task", "nope")
    assert missing.returncode == 2 and missing.stderr.startswith("error: row 'nope' is not in the first file")
    assert "Traceback" not in missing.stderr
    missing = paired(f"multitask vs generated[{SPEC}x]")
    assert missing.returncode == 2 and "is not in the second file" in missing.stderr


def test_two_rows_compared_per_source_and_against_an_earlier_sample(tmp_path):
    """bench/loragen_subsets.py: a larger seen sample split per source and into the tasks an earlier sample
    measured and the new ones; an earlier sample with tasks this one lacks is one error line and exit 2."""
    larger = study({"a": 0.6, "b": 0.5, "c": 0.4}, {"a": 0.5, "b": 0.5, "c": 0.1}, 0.1, 100)
    larger["task_info"] = {"a": {"source": "s1"}, "b": {"source": "s1"}, "c": {"source": "s2"}}
    earlier = {"groups": {"seen": ["a", "b"]}}
    for name, run in (("larger.json", larger), ("earlier.json", earlier)):
        (tmp_path / name).write_text(json.dumps(run))
    script = str(ROOT / "bench" / "loragen_subsets.py")

    def subsets(earlier_file: str) -> subprocess.CompletedProcess:
        args = [str(tmp_path / "larger.json"), f"--row=generated[{SPEC}]", "--out", str(tmp_path / "s.json")]
        return subprocess.run(
            [sys.executable, script, *args, "--earlier", str(tmp_path / earlier_file)],
            capture_output=True,
            text=True,
        )

    done = subsets("earlier.json")
    assert done.returncode == 0, done.stderr
    parts = json.loads((tmp_path / "s.json").read_text())["parts"]
    assert parts["all"]["gap_points"] == pytest.approx((10 + 0 + 30) / 3)
    assert parts["all"]["wins_losses"] == [2, 0] and parts["all"]["ties"] == 1
    assert parts["source s1"]["tasks"] == 2 and parts["source s1"]["gap_points"] == pytest.approx(5.0)
    assert parts["in the earlier sample"]["means"] == pytest.approx([55.0, 50.0])
    assert parts["new to this sample"]["gap_points"] == pytest.approx(30.0)
    assert "new to this sample" in done.stdout and "+30.0 (one task) (1/0/0)" in done.stdout

    earlier["groups"]["seen"].append("z")
    (tmp_path / "wider.json").write_text(json.dumps(earlier))
    refused = subsets("wider.json")
    assert (
        refused.returncode == 2
        and refused.stderr == "error: the earlier sample has seen tasks this file lacks: z\n"
    )


def test_a_speedup_divides_the_in_context_timing_taken_beside_the_adapters_when_there_is_one():
    """A generator's rows time in-context requests in their own process (`in_context_latency`); the speed-ups
    divide those, and a file from before falls back to the prompting rows' timing, saying so."""
    from edgeadapt.studies.loragen_summary import summarize

    run = study({"a": 0.6, "h": 0.2}, {"a": 0.5, "h": 0.2}, 0.1, 100)
    older = summarize(run)["goals"][SPEC]
    assert older["heldout_latency_speedup"] == pytest.approx(2.0) and not older["in_context_timed_beside"]
    run["generated"][SPEC]["in_context_latency"] = {
        "h": {"prefill_ms": 150.0, "total_ms": 450.0, "new_tokens": 4}
    }
    beside = summarize(run)["goals"][SPEC]
    assert beside["in_context_timed_beside"]
    assert beside["heldout_latency_speedup"] == pytest.approx(450 / 300)
    # equal length: the adapter's 100 ms prefill and 50 ms a token for in-context's 4 tokens = 300 ms
    assert beside["heldout_latency_speedup_equal_length"] == pytest.approx(450 / 300)
    # the ceiling: prefill 150 / 100 against answers 300 / 200, both 1.5
    assert beside["heldout_latency_ceiling_equal_length"] == pytest.approx(1.5)


def test_per_task_shares_pool_seeds_task_by_task_and_split_the_list_functions(tmp_path):
    """bench/loragen_per_task_seeds.py: a task's score is its mean over the seeds' per-task files, shares are
    ratios of means, gaps paired; the list functions (by source in the results file) apart from the rest; an
    unfinished file, or files of other tasks, are one error line and exit 2."""
    row = f"generated[{SPEC}]"
    sources = {"l1": "bigbench:list_functions", "l2": "bigbench:list_functions", "a": "x", "b": "y"}
    (tmp_path / "study.json").write_text(
        json.dumps({"task_info": {n: {"source": s} for n, s in sources.items()}})
    )
    seeds = [  # per task: (per-task LoRA, generated, multi-task)
        {"l1": (1.0, 0.2, 0.0), "l2": (0.8, 0.4, 0.1), "a": (0.5, 0.5, 0.4), "b": (0.3, 0.4, 0.3)},
        {"l1": (0.6, 0.4, 0.0), "l2": (1.0, 0.2, 0.1), "a": (0.7, 0.5, 0.6), "b": (0.5, 0.2, 0.5)},
    ]
    files = []
    for n, seed in enumerate(seeds):
        scores = {t: dict(zip(("per-task", row, "multitask"), s)) for t, s in seed.items()}
        files.append(tmp_path / f"s{n}.json")
        record = {"results": str(tmp_path / "study.json"), "row": row, "complete": True}
        files[-1].write_text(json.dumps({**record, "per_task_scores": scores}))

    def bench(*paths: Path) -> subprocess.CompletedProcess:
        script = str(ROOT / "bench" / "loragen_per_task_seeds.py")
        args = [*map(str, paths), "--out", str(tmp_path / "p.json")]
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    done = bench(*files)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "p.json").read_text())
    pooled = report["pooled"]
    # seed means: per-task l1 .8 l2 .9 a .6 b .4; generated .3 .3 .5 .3; multi-task 0 .1 .5 .4
    assert pooled["all"]["means"]["per-task"] == pytest.approx(67.5)
    assert pooled["all"]["generated_share"] == pytest.approx(1.4 / 2.7)
    assert pooled["list functions"]["tasks"] == 2
    assert pooled["list functions"]["generated_vs_per_task"]["gap_points"] == pytest.approx(-55.0)
    assert pooled["list functions"]["generated_vs_per_task"]["gap_stderr"] == pytest.approx(5.0)
    rest = pooled["all but the list functions"]
    assert rest["multitask_share"] == pytest.approx(0.9 / 1.0)
    assert rest["generated_vs_multitask"]["wins_losses"] == [0, 1]
    assert report["seeds"][1]["all"]["means"]["per-task"] == pytest.approx(70.0)

    unfinished = json.loads(files[1].read_text()) | {"complete": False}
    (tmp_path / "u.json").write_text(json.dumps(unfinished))
    (tmp_path / "o.json").write_text(json.dumps({**unfinished, "complete": True, "per_task_scores": {}}))
    for other, says in (("u.json", "is not complete"), ("o.json", "score different tasks")):
        refused = bench(files[0], tmp_path / other)
        assert refused.returncode == 2 and refused.stderr.startswith("error: ") and says in refused.stderr


def test_per_task_shares_against_another_studys_generator(tmp_path):
    """`--against`: the per-task files' per-task LoRA column beside another study's generator and multi-task
    rows (a longer-trained generator, say), one results file per per-task file; a study without the row or
    without one of the tasks as seen is one error line and exit 2."""
    row = f"generated[{SPEC}]"
    info = {"task_info": {"l1": {"source": "bigbench:list_functions"}, "a": {"source": "x"}}}
    (tmp_path / "study.json").write_text(json.dumps(info))
    per_task = {"l1": (1.0, 0.2, 0.0), "a": (0.6, 0.5, 0.4)}  # (per-task LoRA, generated, multi-task)
    scores = {t: dict(zip(("per-task", row, "multitask"), s)) for t, s in per_task.items()}
    record = {
        "results": str(tmp_path / "study.json"),
        "row": row,
        "complete": True,
        "per_task_scores": scores,
    }
    (tmp_path / "s1.json").write_text(json.dumps(record))

    def longer(seen: list[str], spec: str, seed: int | None = None) -> Path:
        scored = {"l1": (0.8, 0.1), "a": (0.6, 0.3)}  # the other study: generated .8, .6; multi-task .1, .3
        study = {
            **info,
            "budget": {"steps": 1600} if seed is None else {"steps": 1600, "seed": seed},
            "groups": {"seen": seen},
            "prompting": {},
            "generated": {spec: {"tasks": {n: {"score": g} for n, (g, _) in scored.items()}}},
            "lora": {"multitask": {n: {"score": m} for n, (_, m) in scored.items()}, "per-task": {}},
        }
        path = tmp_path / f"longer-{len(seen)}-{spec}-{seed}.json"
        path.write_text(json.dumps(study))
        return path

    def bench(against: Path, *more: str) -> subprocess.CompletedProcess:
        script = str(ROOT / "bench" / "loragen_per_task_seeds.py")
        args = [
            str(tmp_path / "s1.json"),
            "--against",
            str(against),
            "--out",
            str(tmp_path / "p.json"),
            *more,
        ]
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    record["seed"] = 1  # the per-task LoRAs' seed, checked where the study records its own
    (tmp_path / "s1.json").write_text(json.dumps(record))
    done = bench(longer(["l1", "a", "b"], SPEC, seed=1))
    assert done.returncode == 0, done.stderr
    pooled = json.loads((tmp_path / "p.json").read_text())["pooled"]
    assert pooled["all"]["means"] == pytest.approx({"per-task": 80.0, row: 70.0, "multitask": 20.0})
    assert pooled["all"]["generated_share"] == pytest.approx(0.7 / 0.8)
    assert pooled["list functions"]["generated_vs_per_task"]["gap_points"] == pytest.approx(-20.0)
    # --row: another generator of the --against file, beside the same per-task LoRAs
    done = bench(longer(["l1", "a"], "pool:other", seed=1), "--row", "generated[pool:other]")
    assert done.returncode == 0, done.stderr
    record_other = json.loads((tmp_path / "p.json").read_text())
    assert record_other["row"] == "generated[pool:other]"
    assert record_other["pooled"]["all"]["means"]["generated[pool:other]"] == pytest.approx(70.0)
    refused = bench(longer(["l1", "a"], SPEC, seed=1), "--row", "generated[pool:other]")
    assert refused.returncode == 2 and "no generated[pool:other]" in refused.stderr
    (tmp_path / "other.json").write_text(json.dumps({"pooled": {}}))  # another script's file
    for study, says in (
        (longer(["a"], SPEC), "does not score l1"),
        (longer(["l1", "a"], "other"), "no " + row),
        (tmp_path / "other.json", "not a LoRA-Gen study's loragen.json"),
        (longer(["l1", "a"], SPEC, seed=0), "trained on seed 0, the per-task LoRAs on seed 1"),
    ):
        refused = bench(study)
        assert refused.returncode == 2 and refused.stderr.startswith("error: ") and says in refused.stderr
