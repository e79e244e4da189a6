"""LoRA-Gen: the task collection, the generator trained through the frozen model, the adapters it writes
(plain PEFT folders that merge, package, install and export like a trained LoRA), and the study
(configs/smoke-loragen.yaml on the tiny model and the toy collection)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from edgeadapt import models
from edgeadapt.cli import main
from edgeadapt.core import config
from edgeadapt.core.errors import UserError
from edgeadapt.data.tasks import Task, check_disjoint
from edgeadapt.loragen.make import Generator
from edgeadapt.loragen.merge import merged, read_adapter

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "smoke-loragen.yaml"


@pytest.fixture(scope="module")
def trained(loragen_trained):
    return loragen_trained


@pytest.fixture(scope="module")
def evaluated(loragen_evaluated):
    return loragen_evaluated


@pytest.fixture(scope="module")
def generator(trained):
    return Generator.open(trained / "generators" / "model-tiny-random")


def tiny_base():
    # on the CPU where a GPU is visible too: the tests feed it CPU tensors
    return models.load(models.resolve("tiny-random"), device=torch.device("cpu"))[0].eval()


def cfg_of(trained):
    return config.load(SMOKE, [f"out_dir={trained.parent}"])


def test_held_out_tasks_never_reach_the_generator(trained, generator):
    from edgeadapt.studies.loragen import collection_of

    collection = collection_of(cfg_of(trained))
    kept_out = [t for t in collection.tasks.values() if t.role != "train"]
    assert {t.name for t in kept_out} == {"last", "first-two"}
    texts = {text for t in kept_out for text in [t.description, *t.paraphrases]}
    assert texts and not texts & set(generator.cfg.training_descriptions)
    # every training description is a training task's description or one of its first paraphrases
    train = collection.by_role("train")
    allowed = {text for t in train for text in [t.description, t.paraphrases[0]]}
    assert set(generator.cfg.training_descriptions) == allowed
    # and no task whose source a training task uses may be held out
    leaky = [
        Task("a", "toy:first", "exact", "a", "d", ["p", "q"]),
        Task("b", "toy:first", "exact", "b", "d", ["p", "q"], heldout=True),
    ]
    with pytest.raises(UserError, match="share a source"):
        check_disjoint(leaky)


def test_the_generated_adapter_is_a_plain_peft_lora_that_merges_like_in_place(trained, generator, tmp_path):
    from peft import PeftModel

    info = generator.make("Write the letters in reverse order.", tmp_path / "adapter")
    assert info["description"] == "Write the letters in reverse order." and info["generation_ms"] > 0
    ids = torch.tensor([[5, 17, 40, 99, 23, 7]])
    peft = PeftModel.from_pretrained(tiny_base(), str(tmp_path / "adapter")).merge_and_unload()
    base = tiny_base()
    tensors, scaling = read_adapter(tmp_path / "adapter")
    with torch.no_grad(), merged(base, tensors, scaling):
        torch.testing.assert_close(base(ids).logits, peft(ids).logits)
    torch.testing.assert_close(base(ids).logits, tiny_base()(ids).logits)  # restored exactly


@pytest.mark.parametrize("scaling", ["standard", "none"])
def test_an_adapter_whose_rank_was_capped_merges_with_each_modules_own_scale(scaling, tmp_path):
    """Rank 96 on the tiny model's 64-wide modules is capped to 64 per module (rank_pattern, and alpha_pattern
    when the scaling is none): in-place merging must use each module's rank, as PEFT's own merge does."""
    from peft import PeftModel

    from tests.helpers import one_step, prepared

    with pytest.warns(UserWarning, match="capped"):
        model = prepared("lora", tiny_base(), rank=96, alpha=16, scaling=scaling)
    one_step(model, lr=0.05)
    model.save_pretrained(tmp_path, safe_serialization=True)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["r"] == 96 and config["rank_pattern"]  # the case under test
    ids = torch.tensor([[5, 17, 40, 99, 23, 7]])
    expected = PeftModel.from_pretrained(tiny_base(), str(tmp_path)).merge_and_unload()(ids).logits
    base = tiny_base()
    tensors, scaling_of = read_adapter(tmp_path)
    with torch.no_grad(), merged(base, tensors, scaling_of):
        torch.testing.assert_close(base(ids).logits, expected, atol=1e-5, rtol=1e-4)


def test_a_different_description_gives_a_different_adapter(generator):
    one, _, _ = generator.generate("Write the letters in reverse order.")
    same, _, _ = generator.generate("Write the letters in reverse order.")
    other, _, _ = generator.generate("Reply with the first letter only.")
    key = next(k for k in one if "lora_B" in k)
    assert torch.equal(one[key], same[key])
    assert not torch.allclose(one[key], other[key])


@pytest.mark.parametrize(
    "description, problem",
    [("", "empty"), ("   ", "empty"), ("word " * 600, "reads at most 512")],
)
def test_a_description_the_encoder_cannot_read_is_refused(generator, tmp_path, description, problem):
    with pytest.raises(UserError, match=problem):
        generator.make(description, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_unfamiliar_description_gets_a_warning(generator, tmp_path):
    said = []
    info = generator.make("zq xv kw", tmp_path / "odd", log=said.append)
    near = info["familiarity"]
    assert near["similarity"] < 1.0 and near["nearest"] in generator.cfg.training_descriptions
    assert (not near["familiar"]) == bool(said) and all("unlike every one" in s for s in said)


def test_latency_comes_from_timed_generation(trained):
    from edgeadapt.inference.timing import timed_answer

    model = tiny_base()
    calls = []
    forward = model.forward

    def slow(*args, **kwargs):  # every forward pass takes 20 ms more: the measured latency must show it
        calls.append(1)
        time.sleep(0.02)
        return forward(*args, **kwargs)

    model.forward = slow
    timing = timed_answer(model, [5, 6, 7], 4, stop_ids=set())
    assert len(calls) == 4 and timing["new_tokens"] == 4
    assert timing["prefill_s"] >= 0.02 and timing["total_s"] >= 0.08


def test_the_study_reports_every_row_control_and_goal(evaluated):
    s = evaluated["summary"]
    held = s["groups"]["heldout"]
    assert set(held) >= {
        "zero-shot",
        "in-context",
        "few-shot",
        "generated[model:tiny-random]",
        "generated[minilm]",
        "multitask",
        "per-task",
    }
    for row in held.values():
        assert row["prompt_tokens"] > 0 and row["total_ms"] > 0 and row["prefill_ms"] > 0
    assert held["in-context"]["prompt_tokens"] > held["generated[minilm]"]["prompt_tokens"]
    assert held["few-shot"]["prompt_tokens"] > held["in-context"]["prompt_tokens"]
    for spec in ("model:tiny-random", "minilm"):
        assert set(s["controls"][spec]) == {"all", "heldout", "seen"}
        assert evaluated["generated"][spec]["controls_of"] == "the text read"
        controls = s["controls"][spec]["all"]
        assert set(controls) >= {"right", "random", "other", "shuffled", "other_gap_stderr"}
        won, lost = controls["random_wins_losses"]
        assert won + lost <= controls["tasks"]
        goal, label = s["goals"][spec], f"generated[{spec}]"
        # every goal's figure is the one its definition gives, and met says whether it reaches the target
        # in-context timed beside the generator's adapters, in the same process, on every held-out task
        timed = evaluated["generated"][spec]["in_context_latency"]
        assert list(timed) == evaluated["groups"]["heldout"] and goal["in_context_timed_beside"]
        in_context_ms = sum(t["total_ms"] for t in timed.values()) / len(timed)
        speedup = in_context_ms / held[label]["total_ms"]
        assert goal["heldout_latency_speedup"] == pytest.approx(speedup)
        assert goal["met"]["heldout_2x_faster"] == (speedup >= 2.0)
        if held["in-context"]["score"]:
            ratio = held[label]["score"] / held["in-context"]["score"]
            assert goal["heldout_score_vs_in_context"] == pytest.approx(ratio)
            assert goal["met"]["heldout_90pct_of_in_context"] == (ratio >= 0.9)
        assert goal["met"]["generation_under_50ms"] == (goal["generation_ms"] <= 50)
        gaps = goal["control_gaps_points"]
        assert goal["met"]["description_matters_2_points"] == all(
            g is not None and g >= 2 for g in gaps.values()
        )
        forget = evaluated["forgetting"]
        assert goal["general_ppl_generated"] == forget[label]["general_ppl"]
        mine, multitask = forget[label], forget["multitask"]
        assert goal["met"]["forgetting_no_worse_than_multitask"] == (
            mine["general_ppl"] <= multitask["general_ppl"]
            and mine["on_topic_rate"] >= multitask["on_topic_rate"]
            and mine["fact_recall"] >= multitask["fact_recall"]
        )
        assert (
            len(evaluated["generated"][spec]["paraphrases"]["last"]) == 3
        )  # description and two paraphrases
    assert set(evaluated["forgetting"]["base"]) == {
        "general_ppl",
        "on_topic_rate",
        "domain_leakage",
        "fact_recall",
    }
    assert (ROOT / "configs" / "loragen.yaml").is_file()


def test_the_report_gives_each_generators_equal_length_speedup_beside_its_ceiling(evaluated, trained):
    goals = evaluated["summary"]["goals"]
    report = (trained / "loragen.md").read_text()
    for spec in ("model:tiny-random", "minilm"):
        speedup, ceiling = (goals[spec][f"heldout_latency_{k}_equal_length"] for k in ("speedup", "ceiling"))
        assert speedup <= ceiling + 1e-9  # the measured lengths are one of the lengths the ceiling covers
        assert f"- {spec}: {speedup:.2f}x faster than in-context; at most {ceiling:.2f}x" in report


def test_eval_resumes_from_the_parts_that_finished(evaluated, trained, monkeypatch):
    from edgeadapt.studies import loragen_eval

    def measure_again(*args, **kwargs):
        raise AssertionError("measured again")

    for name in ("prompting_rows", "generated_rows", "lora_rows"):
        monkeypatch.setattr(loragen_eval.Evaluation, name, measure_again)
    for name in ("baselines", "generated"):
        monkeypatch.setattr(loragen_eval.Forgetting, name, measure_again)
    resumed = loragen_eval.evaluate(cfg_of(trained), resume=True)
    assert json.loads(json.dumps(resumed["summary"])) == evaluated["summary"]
    parts = sum(json.loads(p.read_text())["seconds"] for p in (trained / "loragen-parts").glob("*.json"))
    assert resumed["seconds"] >= round(parts, 1) - 0.05  # the total is rounded to 0.1 s
    # a setting no part reads changes nothing; parts measured under other settings are measured again
    unrelated = config.load(SMOKE, [f"out_dir={trained.parent}", "edge.prompt=Say hi.", "router.layer=2"])
    assert loragen_eval.evaluate(unrelated, resume=True)["summary"] == resumed["summary"]
    # so does a setting only generators read, until a generator is retrained under it
    generator_only = config.load(SMOKE, [f"out_dir={trained.parent}", "loragen.hidden=8", "loragen.lr=0.5"])
    assert loragen_eval.evaluate(generator_only, resume=True)["summary"] == resumed["summary"]
    other = config.load(SMOKE, [f"out_dir={trained.parent}", "loragen.eval_rows=5"])
    with pytest.raises(AssertionError, match="measured again"):
        loragen_eval.evaluate(other, resume=True)


def test_another_seed_reuses_the_base_models_rows_and_measures_the_rest_again(
    evaluated, trained, tmp_path, monkeypatch
):
    """The prompting rows read no training seed (PROMPTING_READS): a study of another seed given the first's
    prompting part reuses it; every part that reads the seed (the controls do) is measured again."""
    from edgeadapt.studies import loragen_eval

    shutil.copytree(trained, tmp_path / trained.name)
    measured = []

    def counted(name):
        real = getattr(loragen_eval.Evaluation, name)

        def measure(self, *args, **kwargs):
            measured.append(name)
            return real(self, *args, **kwargs)

        return measure

    def measure_again(*args, **kwargs):
        raise AssertionError("the base model's rows measured again")

    monkeypatch.setattr(loragen_eval.Evaluation, "prompting_rows", measure_again)
    for name in ("generated_rows", "lora_rows"):
        monkeypatch.setattr(loragen_eval.Evaluation, name, counted(name))
    other_seed = config.load(SMOKE, [f"out_dir={tmp_path}", "train.seed=5"])
    resumed = loragen_eval.evaluate(other_seed, resume=True)
    assert json.loads(json.dumps(resumed["prompting"])) == evaluated["prompting"]
    assert sorted(set(measured)) == ["generated_rows", "lora_rows"]


def test_a_seen_task_is_asked_only_from_paraphrases_it_never_trained_on():
    """`asked_texts` is the study's (and every loragen bench's) rule: the first text is the headline's."""
    from edgeadapt.studies.loragen import asked_texts, training_texts

    paraphrases = ["Spell it backwards.", "Write it in reverse.", "Mirror it."]
    task = Task("t", "src", "generate", "Reverse", "Reverse the word.", paraphrases)
    trained_on, _ = training_texts([task], 1)
    assert asked_texts(task, "seen", 1) == ["Write it in reverse.", "Mirror it."]
    assert not set(asked_texts(task, "seen", 1)) & set(trained_on)
    assert asked_texts(task, "seen", 3) == []  # every paraphrase trained on: the task is not scored
    assert asked_texts(task, "heldout", 1) == ["Reverse the word.", *task.paraphrases]


def test_other_tasks_train_on_more_paraphrases_while_a_seen_task_keeps_its_unread():
    """`loragen.other_paraphrases`: tasks outside the seen sample train on more phrasings; a seen task's
    asked paraphrase stays out of training, and only then does the seen sample enter the recorded settings."""
    from edgeadapt.loragen.registry import get_generator
    from edgeadapt.studies.loragen import asked_texts, generator_settings, training_texts

    def task(name: str) -> Task:
        return Task(name, "src", "generate", name, f"Do {name}.", [f"{name} once.", f"{name} twice."])

    seen, other = task("seen"), task("other")
    texts, task_of = training_texts([seen, other], 1, 2, frozenset({"seen"}))
    assert texts == ["Do seen.", "seen once.", "Do other.", "other once.", "other twice."]
    assert task_of == [0, 0, 1, 1, 1]
    assert not set(asked_texts(seen, "seen", 1)) & set(texts)
    assert training_texts([seen, other], 1)[0] == ["Do seen.", "seen once.", "Do other.", "other once."]
    kind = get_generator("pool", "loragen.kind")
    before = generator_settings(config.load(SMOKE, ["loragen.seen_tasks=3"]), kind)
    after = generator_settings(
        config.load(SMOKE, ["loragen.seen_tasks=3", "loragen.other_paraphrases=2"]), kind
    )
    assert "loragen.seen_tasks" not in before and "loragen.other_paraphrases" not in before
    assert after["loragen.seen_tasks"] == 3 and after["loragen.other_paraphrases"] == 2
    with pytest.raises(UserError, match="loragen.other_paraphrases: >= 0"):
        config.load(SMOKE, ["loragen.other_paraphrases=-1"])


def test_controls_are_made_from_the_text_the_right_row_reads(trained):
    from edgeadapt.studies.loragen import collection_of
    from edgeadapt.studies.loragen_eval import controls

    collection = collection_of(cfg_of(trained))
    tasks = list(collection.tasks.values())
    task, read = tasks[0], "Write every word of the unseen paraphrase backwards please"
    made = controls(read, task, tasks, seed=3)
    assert sorted(made["shuffled"].split()) == sorted(read.split())  # the words read, not the description's
    assert [len(w) for w in made["random"].split()] == [max(2, len(w)) for w in read.split()]
    assert made["other"] == tasks[1].description and made["other"] != task.description
    assert controls(read, task, tasks, seed=3) == made  # seeded: every generator meets the same controls


def test_control_similarity_embeds_the_studys_own_controls_and_refuses_a_bad_key(tmp_path):
    """bench/loragen_control_similarity.py: each seen task's controls against the text the generator reads,
    in MiniLM's embedding. The shuffled control holds the read text's words, the random one none of them."""
    import subprocess
    import sys

    def bench(*overrides: str, out: Path):
        script = str(ROOT / "bench" / "loragen_control_similarity.py")
        cmd = [sys.executable, script, str(SMOKE), f"out_dir={tmp_path}", *overrides, "--out", str(out)]
        return subprocess.run(cmd, capture_output=True, text=True)

    done = bench(out=tmp_path / "sim.json")
    assert done.returncode == 0, done.stderr[-2000:]
    per_task = json.loads((tmp_path / "sim.json").read_text())["per_task"]
    cfg = config.load(SMOKE, [f"out_dir={tmp_path}"])
    from edgeadapt.studies.loragen import collection_of

    k = cfg.loragen.train_paraphrases
    assert set(per_task) == {t.name for t in collection_of(cfg).by_role("train") if t.paraphrases[k:]}
    for cosines in per_task.values():
        assert -1 <= cosines["random"] < cosines["shuffled"] <= 1 + 1e-5
    bad = bench("loragen.seen_task=3", out=tmp_path / "bad.json")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "seen_tasks" in bad.stderr
    assert not (tmp_path / "bad.json").exists()


def test_each_measurement_logs_a_line_of_progress(trained):
    from edgeadapt.evaluation.task_scores import Prompting
    from edgeadapt.studies import loragen_eval

    said = []
    evaluation = loragen_eval.Evaluation(cfg_of(trained), log=said.append)
    task = evaluation.groups["heldout"][0]
    timed = evaluation.measure(task, Prompting("title", task.title), "zero-shot")
    untimed = evaluation.measure(task, Prompting("none"), "control random", timed=False)
    assert said[-2] == f"  zero-shot {task.name}: {timed['score']:.0%}, {timed['total_ms']:,.0f} ms a request"
    assert said[-1] == f"  control random {task.name}: {untimed['score']:.0%}"


def test_a_retrained_generator_measures_its_own_rows_again_and_nothing_else(evaluated, trained, monkeypatch):
    from edgeadapt.loragen.registry import WEIGHTS
    from edgeadapt.studies import loragen_eval

    cfg = cfg_of(trained)
    spec = loragen_eval.encoders_of(cfg)[-1]
    weights = loragen_eval.generator_dir(cfg, spec) / WEIGHTS
    kept = {p: p.read_bytes() for p in [weights, *(trained / "loragen-parts").glob("*.json")]}
    measured = []

    def measure(kind, value):
        def again(self, *args):
            measured.append((kind, *args))
            return value

        return again

    for name in ("prompting_rows", "lora_rows"):
        monkeypatch.setattr(loragen_eval.Evaluation, name, measure(name, None))
    monkeypatch.setattr(loragen_eval.Forgetting, "baselines", measure("baselines", None))
    monkeypatch.setattr(
        loragen_eval.Evaluation, "generated_rows", measure("generated", evaluated["generated"][spec])
    )
    monkeypatch.setattr(
        loragen_eval.Forgetting,
        "generated",
        measure("forgetting", evaluated["forgetting"][f"generated[{spec}]"]),
    )
    try:
        weights.write_bytes(kept[weights] + b" ")  # retrained: other bytes, the same settings
        loragen_eval.evaluate(cfg, resume=True)
    finally:
        for path, data in kept.items():
            path.write_bytes(data)
    assert measured == [("generated", spec), ("forgetting", spec)]


def test_a_part_measured_before_a_setting_existed_holds_its_default():
    from edgeadapt.studies.parts import comparable, differences

    cfg = config.load(SMOKE)
    reads = ("model", "loragen.eval_rows")
    saved = comparable(cfg, reads)
    del saved["model"]["dtype"]  # measured before the setting was added
    assert differences(saved, comparable(cfg, reads)) == []
    cfg.model.dtype = "bfloat16"
    assert differences(saved, comparable(cfg, reads)) == ["model.dtype"]
    # parts saved whole sections before single settings were read: the setting is found in its section
    whole = {"model": saved["model"], "loragen": {"eval_rows": cfg.loragen.eval_rows}}
    assert differences(whole, comparable(config.load(SMOKE), reads)) == []
    assert differences({"model": saved["model"]}, comparable(cfg, reads)) == [
        "model.dtype",
        "loragen.eval_rows",
    ]


def test_a_generator_trained_before_precision_was_recorded_was_trained_in_fp32(monkeypatch):
    """A generator folder's trained_under.json from before train.precision was read lacks it: that counts as
    the default (auto: fp32 on the CPU, as every such generator was trained), so it is resumed, not retrained;
    under bf16 it is trained again. The study's budget says which precision it trained in."""
    from edgeadapt.studies import loragen as study
    from edgeadapt.studies.loragen import GENERATOR_READS, generator_budget
    from edgeadapt.studies.parts import comparable, differences

    monkeypatch.setattr(study, "pick_device", lambda: torch.device("cpu"))  # auto is bf16 on a GPU

    cfg = config.load(SMOKE)
    saved = comparable(cfg, GENERATOR_READS)
    del saved["train.precision"]
    assert differences(saved, comparable(cfg, GENERATOR_READS)) == []
    assert generator_budget(cfg)["precision"] == "fp32"
    cfg.train.precision = "bf16"
    assert differences(saved, comparable(cfg, GENERATOR_READS)) == ["train.precision"]
    assert generator_budget(cfg)["precision"] == "bf16"


def test_a_generated_adapter_ships_like_a_trained_lora(trained, generator, tmp_path):
    from edgeadapt.deploy.build import verify

    generator.make("Write the letters in reverse order.", tmp_path / "adapter")
    package = tmp_path / "reverse.eaupd"
    assert main(["package", "export", str(tmp_path / "adapter"), "--out", str(package)]) == 0
    verified = verify(package, allow_unsigned=True)
    verified.opened.close()
    assert verified.manifest["description"] == "Write the letters in reverse order."
    assert verified.manifest["method"] == "lora" and verified.manifest["rank"] == 2
    device = tmp_path / "device"
    assert main(["device", "init", "--device-dir", str(device), "--model", "tiny-random"]) == 0
    assert main(["device", "apply", str(package), "--device-dir", str(device), "--allow-unsigned"]) == 0
    assert main(["export", "gguf", str(tmp_path / "adapter"), "--out", str(tmp_path / "m.gguf")]) == 0
    assert (
        main(["export", "gguf", str(tmp_path / "adapter"), "--adapter", "--out", str(tmp_path / "a.gguf")])
        == 0
    )
    assert (tmp_path / "m.gguf").stat().st_size > (tmp_path / "a.gguf").stat().st_size > 0


def test_make_refuses_to_overwrite_and_needs_a_generator(trained, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    folder = trained / "generators" / "model-tiny-random"
    assert main(["loragen", "make", str(folder), "Reverse it.", "--out", str(tmp_path / "full")]) == 2
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert main(["loragen", "make", str(tmp_path), "Reverse it.", "--out", str(tmp_path / "new")]) == 2


def test_the_equal_length_speedup_charges_the_adapter_for_the_answer_the_base_wrote():
    from edgeadapt.studies.loragen_summary import equal_length_speedup

    context = {
        "a": {"total_ms": 1000.0, "prefill_ms": 200.0, "new_tokens": 10},
        "b": {"total_ms": 500.0, "prefill_ms": 200.0, "new_tokens": 4},
    }
    generated = {
        "a": {"total_ms": 300.0, "prefill_ms": 150.0, "new_tokens": 2},  # 75 ms a token: 150 + 10 x 75
        "b": {"total_ms": 150.0, "prefill_ms": 150.0, "new_tokens": 0},  # no answer to measure a token by
    }
    assert equal_length_speedup(context, generated, ["a", "b", "missing"]) == pytest.approx(1000 / 900)
    assert equal_length_speedup(context, generated, ["b"]) is None


def test_the_equal_length_ceiling_is_the_larger_of_the_prefill_and_answer_time_ratios():
    """Whatever the answers' length, the equal-length speed-up lies between the prefill ratio and the
    answer-time ratio: the ceiling is the larger, and bounds the measured speed-up."""
    from edgeadapt.studies.loragen_summary import equal_length_ceiling, equal_length_speedup

    context = {
        "a": {"total_ms": 1000.0, "prefill_ms": 200.0, "new_tokens": 10},  # 800 ms of answer
        "b": {"total_ms": 700.0, "prefill_ms": 100.0, "new_tokens": 6},  # 600 ms
    }
    generated = {
        "a": {"total_ms": 300.0, "prefill_ms": 150.0, "new_tokens": 2},  # 75 ms a token: 750 ms for 10
        "b": {"total_ms": 130.0, "prefill_ms": 100.0, "new_tokens": 1},  # 30 ms a token: 180 ms for 6
    }
    # prefill 300 / 250 = 1.2; answers 1400 / 930 = 1.505: the answers' ratio is the ceiling here
    assert equal_length_ceiling(context, generated, ["a", "b"]) == pytest.approx(1400 / 930)
    assert equal_length_speedup(context, generated, ["a", "b"]) == pytest.approx(1700 / 1180)
    # on task a alone the prefill ratio is the larger: 200 / 150 against 800 / 750
    assert equal_length_ceiling(context, generated, ["a"]) == pytest.approx(200 / 150)
    assert equal_length_ceiling(context, generated, ["missing"]) is None


def test_forgetting_is_no_worse_only_when_perplexity_topics_and_facts_all_hold():
    from edgeadapt.studies.loragen_summary import no_worse_forgetting

    multitask = {"general_ppl": 54.9, "on_topic_rate": 0.36, "fact_recall": 0.14}
    gemma_pool = {"general_ppl": 49.4, "on_topic_rate": 0.57, "fact_recall": 0.105}  # seed 1's
    assert no_worse_forgetting(gemma_pool, multitask) == {
        "general_ppl": True,
        "on_topic_rate": True,
        "fact_recall": False,
    }
    assert all(no_worse_forgetting({**gemma_pool, "fact_recall": 0.14}, multitask).values())
    assert no_worse_forgetting(None, multitask) is None and no_worse_forgetting(gemma_pool, {}) is None


@pytest.mark.parametrize(("tasks", "generated", "met"), [(4, 0.5, None), (5, 0.5, True), (5, 0.3, False)])
def test_the_held_out_gain_goal_is_undecided_below_five_tasks_with_a_gain(evaluated, tasks, generated, met):
    import copy

    from edgeadapt.studies.loragen_summary import summarize

    results = copy.deepcopy(evaluated)
    spec = next(iter(results["generated"]))
    kinds = (
        results["prompting"]["zero-shot"],
        results["prompting"]["in-context"],
        results["generated"][spec]["tasks"],
    )
    [task] = results["groups"]["heldout"]
    results["groups"]["heldout"] = [f"{task}-{n}" for n in range(tasks)]
    for name in results["groups"]["heldout"]:
        for rows, score in zip(kinds, (0.2, 0.6, generated)):  # the generated adapter: 75% or 25% of the gain
            rows[name] = {**rows[task], "score": score}
    goals = summarize(results)["goals"][spec]
    assert goals["heldout_tasks_with_gain"] == tasks
    assert goals["heldout_in_context_gain_share"] == pytest.approx((generated - 0.2) / 0.4)
    assert goals["met"]["heldout_half_in_context_gain"] is met


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_study_answers_and_times_in_the_precision_asked(trained, precision, dtype, monkeypatch):
    """loragen.answer_precision: every answer the study scores and times multiplies in that precision (the
    weights stay fp32); a part measured before the setting existed counts as fp32, and one measured in fp32
    is measured again in bf16. On a CPU that would emulate bf16, asking for it says so in one line."""
    from edgeadapt.core import resources
    from edgeadapt.evaluation.task_scores import Prompting
    from edgeadapt.studies import loragen_eval
    from edgeadapt.studies.parts import comparable, differences

    monkeypatch.setattr(resources, "native_bf16", lambda device_type: False)
    cfg = config.load(SMOKE, [f"out_dir={trained.parent}", f"loragen.answer_precision={precision}"])
    lines: list[str] = []
    evaluation = loragen_eval.Evaluation(cfg, lines.append)
    warned = [line for line in lines if line.startswith("warning: loragen.answer_precision: bf16 on a CPU")]
    assert len(warned) == (precision == "bf16")
    linear = next(m for m in evaluation.model.modules() if isinstance(m, torch.nn.Linear))
    seen: list[torch.dtype] = []
    handle = linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    task = evaluation.groups["heldout"][0]
    try:
        scored = len(
            evaluation.score(task, Prompting("description", task.description), "in-context") and seen
        )
        evaluation.latency(task, Prompting("description", task.description))
    finally:
        handle.remove()
    assert 0 < scored < len(seen) and set(seen) == {dtype}
    assert {p.dtype for p in evaluation.model.parameters()} == {torch.float32}

    before = comparable(cfg_of(trained), loragen_eval.READS)
    del before["loragen.answer_precision"]
    changed = differences(before, comparable(cfg, loragen_eval.READS))
    assert changed == ([] if precision == "fp32" else ["loragen.answer_precision"])


def test_the_precision_probe_scores_seen_tasks_both_ways(trained, evaluated, tmp_path):
    """bench/loragen_precision.py: the trained generator's seen tasks answered in fp32 (as the study scored
    them) and in bf16, with the time each took; a generator not trained under these settings is one error line
    and exit 2."""
    import subprocess
    import sys

    def probe(*more: str) -> subprocess.CompletedProcess:
        script = str(ROOT / "bench" / "loragen_precision.py")
        args = [str(SMOKE), "model:tiny-random", f"out_dir={trained.parent}", *more]
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    done = probe("loragen.answer_precision=bf16", "--out", str(tmp_path / "p.json"))
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "p.json").read_text())
    study = evaluated["generated"]["model:tiny-random"]["tasks"]
    assert record["fp32"] == {name: study[name]["score"] for name in evaluated["groups"]["seen"]}
    assert set(record["bf16"]) == set(record["fp32"])
    assert set(record["seconds"]) == {"fp32", "bf16"} and "bf16 - fp32" in done.stdout
    refused = probe("loragen.rank=3")
    assert refused.returncode == 2 and "trained under other settings (loragen.rank)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_asked_from_scores_trained_texts_beside_the_studys_untrained_paraphrase(trained, evaluated, tmp_path):
    """bench/loragen_asked_from.py: each seen task from every text it trained on and from its untrained
    paraphrases; the latter reproduce the study's row; another run's settings are one error line, exit 2."""
    import subprocess
    import sys

    def ask(*more: str) -> subprocess.CompletedProcess:
        script = str(ROOT / "bench" / "loragen_asked_from.py")
        args = [str(SMOKE), "model:tiny-random", f"out_dir={trained.parent}", *more]
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    done = ask("--out", str(tmp_path / "asked.json"))
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "asked.json").read_text())
    generated = evaluated["generated"]["model:tiny-random"]
    cfg = config.load(SMOKE, [])
    assert set(record["per_task"]) == set(evaluated["groups"]["seen"])
    for name, scores in record["per_task"].items():
        assert scores["untrained"] == generated["paraphrases"][name]
        assert len(scores["trained"]) == 1 + cfg.loragen.train_paraphrases
    assert record["families"]["all"]["tasks"] == len(record["per_task"]) and "trained texts" in done.stdout
    refused = ask("loragen.rank=3", "--out", str(tmp_path / "no.json"))
    assert refused.returncode == 2 and "trained under other settings (loragen.rank)" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "no.json").exists()


def test_the_step_timer_times_random_and_grouped_batches(tmp_path):
    """bench/loragen_steps.py: the generator's step time with random and with length-grouped batches, and each
    way's padding; grouping pads less; `--batches random` times that way alone."""
    import subprocess
    import sys

    script = str(ROOT / "bench" / "loragen_steps.py")
    out = tmp_path / "steps.json"
    args = [str(SMOKE), "model:tiny-random", "--steps", "4", "--out", str(out)]
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["threads"] >= 1 and len(record["date"]) == 10  # when and on what it was timed
    assert record["cpu"]  # a name, not platform.processor()'s empty string
    random_rows, grouped = record["rows"]
    assert (random_rows["batches"], grouped["batches"]) == ("random", "grouped")
    assert random_rows["steps"] == grouped["steps"] == 4 and grouped["mean_s"] > 0
    assert grouped["padding_share"] < random_rows["padding_share"]
    assert "grouped / random in fp32" in done.stdout
    alone = subprocess.run(
        [sys.executable, script, *args, "--batches", "random"], capture_output=True, text=True
    )
    assert alone.returncode == 0, alone.stderr
    assert [row["batches"] for row in json.loads(out.read_text())["rows"]] == ["random"]
    assert "grouped / random" not in alone.stdout
