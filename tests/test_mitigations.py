"""The mitigations of forgetting beside replay and the budget: the KL term to the base, EWC, self-answered
general rows, and a sweep that puts each on the frontier as a method of its own."""

from __future__ import annotations

import json

import pytest
import torch

from edgeadapt import updates
from edgeadapt.cli import main
from edgeadapt.core import config
from edgeadapt.data.collate import collator
from edgeadapt.training.regularizers import EWC, KLToBase, kl_to_reference
from tests.helpers import CONFIGS, SMOKE, one_step, prepared


def general_rows(tokenizer, count=6):
    texts = ["the river runs to the sea", "a cat sat on the warm mat", "numbers: 17 plus 25 is 42"]
    rows = []
    for i in range(count):
        ids = tokenizer(texts[i % len(texts)] + f" {i}", add_special_tokens=False)["input_ids"]
        rows.append({"input_ids": ids, "labels": list(ids)})
    return rows


def test_the_kl_term_is_zero_at_the_base_and_its_gradient_is_the_hand_computed_one():
    torch.manual_seed(0)
    base = torch.randn(2, 5, 11)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False  # padding: not counted
    assert kl_to_reference(base.clone(), base, mask, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    for t in (1.0, 2.0):
        tuned = torch.randn(2, 5, 11, requires_grad=True)
        kl_to_reference(tuned, base, mask, t).backward()
        # d/dz [T^2 KL(softmax(b/T) || softmax(z/T))] = T (softmax(z/T) - softmax(b/T)), over the counted positions
        expected = t * (torch.softmax(tuned.detach() / t, -1) - torch.softmax(base / t, -1))
        expected = expected * mask[..., None] / mask.sum()
        torch.testing.assert_close(tuned.grad, expected, rtol=1e-5, atol=1e-7)
        assert kl_to_reference(tuned.detach(), base, mask, t).item() > 0


@pytest.mark.parametrize("name", sorted(updates.METHODS))
def test_the_kl_reference_is_the_model_training_starts_from(name, make_tiny, tokenizer):
    """Every method: the term is zero before training and grows after a step. An adapter that starts at zero
    (LoRA) is compared with itself turned off (no copy held); one that does not (PiSSA, ADAPT-Q's compensating
    start), and full fine-tuning, with a frozen copy."""
    model = prepared(name, make_tiny())
    rows = general_rows(tokenizer)
    kl = KLToBase(model, rows, collator(tokenizer, False), 1.0, 1.0, 2)
    if name in ("lora", "sft", "pissa"):
        assert (kl.memory_bytes > 0) == (name != "lora"), kl.memory_bytes
    model.eval()
    assert kl.term(model).item() == pytest.approx(0.0, abs=1e-5)
    one_step(model, lr=5e-2)
    model.eval()
    assert sum(kl.term(model, step).item() for step in range(3)) > 1e-6


def test_the_kl_batch_follows_the_step_so_a_resumed_run_reads_what_an_uninterrupted_one_would(
    make_tiny, tokenizer
):
    model = prepared("lora", make_tiny())
    rows, collate = general_rows(tokenizer), collator(tokenizer, False)
    uninterrupted, resumed = (KLToBase(model, rows, collate, 1.0, 1.0, 2) for _ in range(2))
    one_step(model, lr=5e-2)
    model.eval()
    before = [uninterrupted.term(model, step).item() for step in range(3)]
    assert len(set(before)) == 3  # three batches, three values
    assert resumed.term(model, 3).item() == uninterrupted.term(model, 3).item()


def test_the_ewc_penalty_is_zero_at_the_base_and_pulls_back_in_proportion_to_the_fisher(make_tiny, tokenizer):
    model = prepared("sft", make_tiny())
    ewc = EWC(model, general_rows(tokenizer, 4), collator(tokenizer, False), 3.0)
    assert ewc.penalty(model).item() == 0.0
    fisher = torch.cat([f.flatten() for f in ewc.fisher.values()])
    assert fisher.mean().item() == pytest.approx(1.0, rel=1e-4) and fisher.max() > fisher.min()
    one_step(model, lr=5e-2)
    model.zero_grad()
    penalty = ewc.penalty(model)
    assert penalty.item() > 0
    penalty.backward()
    for name, p in model.named_parameters():  # d/dθ w/2 Σ F (θ - θ0)^2 = w F (θ - θ0)
        expected = 3.0 * ewc.fisher[name] * (p.detach() - ewc.anchor[name])
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-8)


def test_self_replay_rows_are_the_base_models_own_answers_written_once(tmp_path, monkeypatch):
    from edgeadapt.data.format import prompt_ids
    from edgeadapt.inference.generation import greedy
    from edgeadapt.runs.run import Run
    from edgeadapt.studies import mitigations

    cfg = config.load(
        SMOKE, [f"out_dir={tmp_path}", "data.self_replay.ratio=0.2", "data.self_replay.answers=sampled"]
    )
    run = Run(cfg)
    run.dir.mkdir(parents=True, exist_ok=True)
    rows = mitigations.self_replay_rows(run, log=lambda _: None)
    assert len(rows) == round(64 * 0.2 / 0.8)  # a share of all the training rows, as replay's
    # the same base, the same prompts, the same seed: the same samples
    model = run.load_model(torch.float32).eval()
    ids = [prompt_ids(run.tokenizer, [{"role": "user", "content": r["prompt"]}]) for r in rows]
    torch.manual_seed(cfg.data.seed)
    own = greedy(
        model,
        run.tokenizer,
        ids,
        cfg.data.self_replay.max_new_tokens,
        cfg.eval.generate_batch_size,
        sample_temperature=mitigations.SAMPLE_TEMPERATURE,
    )
    assert [r["response"] for r in rows] == own and any(own)
    assert len({r["prompt"] for r in rows}) == len(rows)  # sampled: a row per prompt, none repeated here

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(mitigations, "generate_rows", no_generation)
    assert mitigations.self_replay_rows(run, log=lambda _: None) == rows  # read back, not generated


def test_self_distill_keeps_a_rewrite_only_where_the_domain_grader_accepts_it(tmp_path, monkeypatch):
    from edgeadapt.data.format import reference
    from edgeadapt.runs.run import Run
    from edgeadapt.studies import mitigations

    run = Run(config.load(SMOKE, [f"out_dir={tmp_path}", "data.self_distill=true"]))
    run.dir.mkdir(parents=True, exist_ok=True)
    rows = run.data.train[:6] + [{"text": "plain prose has no response to rewrite"}]
    asked = []

    def base_rewrites(model, tokenizer, prompts, max_new_tokens, batch_size, desc="", **kwargs):
        asked.extend(tokenizer.decode(p) for p in prompts)
        # even rows: the answer restated, then the base's own words; odd rows: a wrong answer
        return [
            f"{reference(rows[i])}\nIn my own words." if i % 2 == 0 else "no idea"
            for i in range(len(prompts))
        ]

    monkeypatch.setattr(mitigations, "greedy", base_rewrites)
    out = mitigations.self_distilled(run, rows, log=lambda _: None)
    assert len(asked) == 6 and all(reference(r) in a and "Reference Answer" in a for r, a in zip(rows, asked))
    for i, (before, after) in enumerate(zip(rows[:6], out[:6])):
        kept = reference(before) + "\nIn my own words." if i % 2 == 0 else reference(before)
        assert reference(after) == kept
    assert out[6] == rows[6]
    monkeypatch.setattr(mitigations, "greedy", None)  # read back from RUN/self-distill-*.json
    assert mitigations.self_distilled(run, rows, log=lambda _: None) == out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.kl_to_base.weight=-1", "train.kl_to_base.weight: must be >= 0"),
        ("train.kl_to_base.source=corpus", "train.kl_to_base.source: one of text, prompts, got 'corpus'"),
        ("train.kl_to_base.temperature=0", "train.kl_to_base.temperature: must be > 0"),
        ("train.ewc.weight=-0.5", "train.ewc.weight: must be >= 0"),
        ("train.ewc.source=txt", "Did you mean 'text'"),
        ("data.self_replay.ratio=1", "data.self_replay.ratio: must be in [0.0, 1.0)"),
        ("data.self_replay.answers=beam", "data.self_replay.answers: one of greedy, sampled"),
        ("train.kl_to_base.wieght=1", "Did you mean 'weight'"),
    ],
)
def test_every_mitigation_option_refuses_a_bad_value_in_one_line(override, message, capsys, tmp_path):
    assert main(["train", str(SMOKE), f"out_dir={tmp_path}", override]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "smoke").exists()


def test_a_training_run_reports_what_each_term_cost(tmp_path):
    args = [
        "train",
        str(SMOKE),
        f"out_dir={tmp_path}",
        "--method",
        "lora",
        "train.steps=2",
        "train.eval_every=2",
    ]
    args += ["train.kl_to_base.weight=1", "train.kl_to_base.source=prompts", "train.ewc.weight=1"]
    assert main(args) == 0
    terms = json.loads((tmp_path / "smoke" / "lora" / "train_result.json").read_text())["regularizers"]
    assert set(terms) == {"kl_to_base", "ewc"}
    assert terms["kl_to_base"]["memory_bytes"] == 0  # the adapter turned off is the base
    assert terms["ewc"]["memory_bytes"] > 0 and all(t["seconds_per_step"] > 0 for t in terms.values())
    assert terms["kl_to_base"]["mean_term"] > 0  # the model moved away from the base between steps


def test_a_sweep_setting_is_a_frontier_of_its_own(tmp_path):
    args = ["sweep", str(CONFIGS / "smoke-sweep.yaml"), f"out_dir={tmp_path}", "methods={lora: {lr: 1.0e-3}}"]
    args += [
        "sweep.seeds=[0]",
        "sweep.lr_factors=[1]",
        "sweep.settings={as-is: {}, kl: {train.kl_to_base.weight: 2}}",
    ]
    assert main(args) == 0
    sweep = json.loads((tmp_path / "smoke-sweep" / "sweep.json").read_text())
    assert {p["method"] for p in sweep["points"]} == {"lora", "lora+kl"}
    assert set(sweep["frontiers"]) == {"lora", "lora+kl"}
    assert set(sweep["matched"][0]["methods"]) == {"lora", "lora+kl"}
    kl_run = tmp_path / "smoke-sweep" / "kl-steps2-seed0" / "lora-lr0.001" / "train_result.json"
    assert json.loads(kl_run.read_text())["regularizers"]["kl_to_base"]["weight"] == 2
    with pytest.raises(config.UserError, match="sweep.settings.kl.methods"):
        config.load(CONFIGS / "smoke-sweep.yaml", ["sweep.settings={kl: {methods: {}}}"])


def test_the_mitigation_frontier_config_loads():
    cfg = config.load(CONFIGS / "mitigation-frontier.yaml")
    assert {"as-is", "replay", "kl", "self-replay", "ewc", "self-distill"} <= set(cfg.sweep.settings)
    assert len(cfg.sweep.seeds) == 3 and set(cfg.methods) == {"sft", "lora"}
