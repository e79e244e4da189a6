"""The adapter library and its routers: null expert, top-k mixing, calibration, base binding, every baseline
wired into `route eval` (configs/smoke-router.yaml on the tiny model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from edgeadapt import models
from edgeadapt.cli import main
from edgeadapt.core.errors import UserError
from edgeadapt.evaluation import routing_metrics as rm
from edgeadapt.inference.predictor import ModelPredictor
from edgeadapt.routing.oracle import OracleRouter
from edgeadapt.routing.predictor import RoutedPredictor, experts_active
from edgeadapt.routing.router import NULL, Route, calibrate, decide
from edgeadapt.routing.scar import ScarRouter
from edgeadapt.updates.library import Library

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "smoke-router.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("router-runs")
    assert main(["library", "build", str(SMOKE), f"out_dir={out}"]) == 0
    return out / "smoke-router"


@pytest.fixture(scope="module")
def evaluated(built):
    assert main(["route", "eval", str(SMOKE), f"out_dir={built.parent}", "router.seeds=[0]"]) == 0
    return json.loads((built / "routing.json").read_text())


def tiny_base():
    # on the CPU where a GPU is visible too: the tests feed it CPU tensors
    return models.load(models.resolve("tiny-random"), device=torch.device("cpu"))[0].eval()


def test_the_library_holds_one_plain_adapter_per_domain_and_a_router(built):
    library = Library.read(built / "library")
    assert list(library.experts) == ["medical", "legal", "math"]
    assert library.router == ["router.json", "router.safetensors"]
    assert all(e.method == "lora" and e.rank == 8 for e in library.experts.values())
    assert {name: e.train["steps"] for name, e in library.experts.items()} == {
        "medical": 3,
        "legal": 3,
        "math": 4,
    }
    from peft import PeftModel

    PeftModel.from_pretrained(tiny_base(), str(library.expert_dir("legal")))  # a plain PEFT adapter folder
    router = ScarRouter.load(built / "library")
    assert router.experts == list(library.experts) and router.keys.shape == (4, 64) and router.tau >= 0.2


def test_a_request_routed_to_no_expert_runs_the_base_model_exactly(built):
    library = Library.read(built / "library")
    tokenizer = models.load_tokenizer(models.resolve("tiny-random"))
    prompts = [
        tokenizer("what is the weather like today")["input_ids"],
        tokenizer("tell me a story")["input_ids"],
    ]
    routed = RoutedPredictor(library.load(tiny_base()), tokenizer, OracleRouter(list(library.experts), {}))
    base = ModelPredictor(tiny_base(), tokenizer)
    assert routed.generate(prompts, 12, 2) == base.generate(prompts, 12, 2)  # byte-identical answers
    rows = [{"input_ids": p, "labels": p} for p in prompts]
    assert routed.loglikelihood(rows, 2) == base.loglikelihood(rows, 2)  # and identical scores
    assert [r.experts for _, r in routed.log] == [()] * 4


def test_two_experts_mix_by_their_routing_weights(built):
    """Applied unmerged with weights 0.3 and 0.7, two experts give base + 0.3·ΔW_a + 0.7·ΔW_b."""
    library = Library.read(built / "library")
    model = library.load(tiny_base())
    ids = torch.tensor([[5, 9, 33, 70, 12]])
    with torch.no_grad(), experts_active(model, Route(("medical", "math"), (0.3, 0.7))) as mixed:
        got = mixed(input_ids=ids).logits
    expected_model = tiny_base()
    with torch.no_grad():
        for name, module in model.named_modules():
            if hasattr(module, "get_delta_weight") and "medical" in getattr(module, "lora_A", {}):
                delta = 0.3 * module.get_delta_weight("medical") + 0.7 * module.get_delta_weight("math")
                target = expected_model.get_submodule(name.removeprefix("base_model.model."))
                target.weight += delta
        expected = expected_model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad(), experts_active(model, Route(("math",), (1.0,))) as single:
        alone = single(input_ids=ids).logits
    assert not torch.allclose(alone, got)  # the weights mattered
    with torch.no_grad(), experts_active(model, Route(())) as plain:
        torch.testing.assert_close(plain(input_ids=ids).logits, tiny_base()(input_ids=ids).logits)


@pytest.mark.parametrize(
    ("row", "tau", "top_k", "expected"),
    [
        ([0.7, 0.2, 0.05, 0.05], 0.3, 2, (("a",), (1.0,))),  # one expert above the threshold
        ([0.45, 0.4, 0.05, 0.1], 0.3, 2, (("a", "b"), (0.45 / 0.85, 0.4 / 0.85))),  # a mixed request
        ([0.45, 0.4, 0.05, 0.1], 0.3, 1, (("a",), (1.0,))),  # top-1 keeps the best only
        ([0.25, 0.2, 0.05, 0.5], 0.3, 2, ((), ())),  # below the threshold: the null expert, the base
    ],
)
def test_decide_keeps_top_k_experts_over_the_threshold(row, tau, top_k, expected):
    (route,) = decide(torch.tensor([row]), ["a", "b", "c"], tau, top_k)
    assert route.experts == expected[0]
    assert route.weights == pytest.approx(expected[1])
    assert route.scores[NULL] == pytest.approx(row[-1])


@pytest.mark.parametrize(("rate", "floor"), [(0.0, 0.05), (0.1, 0.05), (0.25, 0.05), (0.1, 0.6)])
def test_calibration_sends_at_most_the_stated_share_of_general_prompts_to_an_adapter(rate, floor):
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(40, 4) * 2, dim=-1)
    tau = calibrate(probs, rate, floor)
    best = probs[:, :-1].max(1).values
    assert int((best >= tau).sum()) <= int(rate * 40) and tau >= floor
    if floor == 0.05 and rate > 0:  # the threshold is no higher than it needs to be
        assert int((best >= tau - 1e-5).sum()) >= int(rate * 40)


def separable(seed=0):
    """Queries in three clusters (two experts and null) in 16 dimensions."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 16, generator=gen) * 3
    labels = torch.arange(3).repeat_interleave(30)
    return centers[labels] + torch.randn(90, 16, generator=gen), labels


def test_scar_router_learns_separable_prompts_and_a_new_expert_joins_without_retraining(tmp_path):
    queries, labels = separable()
    router = ScarRouter.fit(["a", "b"], queries, labels, layer=1, temperature=0.1, steps=50, lr=0.05, top_k=2)
    routes = decide(router.probabilities_of(queries), router.experts, 0.5, 1)
    assert rm.accuracy([["a", "b", NULL][i] for i in labels], [r.experts for r in routes]) == 1.0
    before = router.keys.clone()
    gen = torch.Generator().manual_seed(1)
    newcomer = torch.randn(1, 16, generator=gen) * 3 + torch.randn(20, 16, generator=gen)
    router.add_expert("c", newcomer)
    assert (
        router.experts == ["a", "b", "c"]
        and torch.equal(router.keys[:2], before[:2])
        and torch.equal(router.keys[-1], before[-1])
    )
    assert all(r.experts == ("c",) for r in decide(router.probabilities_of(newcomer), router.experts, 0.5, 1))
    router.save(tmp_path)
    again = ScarRouter.load(tmp_path)
    torch.testing.assert_close(again.probabilities_of(queries), router.probabilities_of(queries))


def test_routing_metrics_by_hand():
    labels = ["a", "a", "b", NULL, "a+b"]
    routes = [("a",), ("b",), ("b",), (), ("b", "a")]
    assert rm.accuracy(labels, routes) == pytest.approx(4 / 5)
    matrix = rm.confusion(labels, routes, ["a", "b", NULL])
    assert matrix == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert rm.macro_f1(matrix) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_a_library_trained_on_another_base_is_refused(built, tmp_path):
    other = tmp_path / "other-base"
    models.tiny_random_model(seed=1, vocab_size=len(models.tiny_tokenizer())).save_pretrained(other)
    models.tiny_tokenizer().save_pretrained(other)
    with pytest.raises(UserError, match="trained on base 'tiny-random'"):
        Library.read(built / "library").check_base(other)
    copied = tmp_path / "runs" / "smoke-router"
    shutil.copytree(built, copied)
    assert main(["route", "eval", str(SMOKE), f"out_dir={copied.parent}", f"model.name={other}"]) == 2


def test_route_eval_reports_every_router_and_baseline(evaluated, built):
    assert set(evaluated["systems"]) == {
        "base",
        "oracle",
        "scar-seed0",
        "classifier-seed0",
        "merged_mean",
        "merged_svd",
        "multitask",
        "arrow",
        "arrow_gks",
    }
    assert {"scar-seed0", "classifier-seed0", "arrow", "arrow_gks"} <= set(evaluated["routing"])
    for system in evaluated["systems"].values():
        assert set(system["domains"]) == {"medical", "legal", "math"}
        assert system["general_ppl"] > 1 and 0 <= system["mean_accuracy"] <= 1
    assert evaluated["systems"]["base"]["general_degradation_pct"] == 0
    assert evaluated["routing"]["arrow"]["general_to_adapter_rate"] == 1.0  # Arrow has no null expert
    assert evaluated["systems"]["oracle"]["routes"][NULL] > 0  # general requests stayed on the base
    scar = evaluated["routing"]["scar-seed0"]
    general_to_adapter = [m for m in scar["to_adapter"] if m["kind"] == "general"]
    assert len(general_to_adapter) == round(scar["general_to_adapter_rate"] * scar["by_kind"]["general"]["n"])
    assert all(m["route"] and NULL in m["p"] for m in scar["to_adapter"])
    assert sum(map(sum, scar["confusion"]["matrix"])) == sum(
        k["n"] for kind, k in scar["by_kind"].items() if kind != "mixed"
    )
    assert (
        evaluated["scale"]["experts"] == 6
        and evaluated["scale"]["weight_bytes"] > evaluated["cost"]["weight_bytes"]["with_experts"]
    )
    assert (
        evaluated["cost"]["router_latency"]["p95_ms"] > 0 and evaluated["cost"]["tokens_per_s"]["merged"] > 0
    )
    assert set(evaluated["transfer"]["cdtr"]) == {"medical", "legal", "math"}
    assert set(evaluated["layers"]) == {"0", "1"} and evaluated["layers"]["0"]["latency"]["p95_ms"] > 0
    html = (built / "routing.html").read_text()
    assert "data:image/png;base64," in html and "Goals" in html


def without_expert(library_dir: Path, name: str, out: Path) -> Path:
    """A copy of a library without one expert (and its router key)."""
    shutil.copytree(library_dir, out)
    library = Library.read(out)
    router = ScarRouter.load(out)
    index = router.experts.index(name)
    router.keys = torch.cat([router.keys[:index], router.keys[index + 1 :]])
    router.experts.remove(name)
    router.save(out)
    del library.experts[name]
    shutil.rmtree(out / "experts" / name)
    library.save()
    return out


def test_a_device_installs_a_library_routes_and_takes_one_more_expert(built, tmp_path, capsys):
    from edgeadapt.deploy import device

    two = without_expert(built / "library", "math", tmp_path / "two")
    dev = tmp_path / "dev"
    assert main(["device", "init", "--device-dir", str(dev), "--model", "tiny-random"]) == 0
    assert main(["package", "export", str(two), "--library", "--out", str(tmp_path / "lib.eaupd")]) == 0
    assert (
        main(["device", "apply", str(tmp_path / "lib.eaupd"), "--device-dir", str(dev), "--allow-unsigned"])
        == 0
    )
    assert device.status(dev)["active"]["experts"] == ["medical", "legal"]
    capsys.readouterr()
    assert (
        main(
            [
                "device",
                "generate",
                "--device-dir",
                str(dev),
                "--max-new-tokens",
                "3",
                "--explain",
                "ICD-10 code of a fracture?",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("[expert: ") and "router: " in out and " base " in out and "null" not in out
    assert (
        main(["package", "export", str(built), "--expert", "math", "--out", str(tmp_path / "math.eaupd")])
        == 0
    )
    assert (
        main(["device", "apply", str(tmp_path / "math.eaupd"), "--device-dir", str(dev), "--allow-unsigned"])
        == 0
    )
    assert device.status(dev)["active"]["experts"] == ["medical", "legal", "math"]
    joined = ScarRouter.load(dev / "updates" / device.read_state(dev)["active"])
    full = ScarRouter.load(built / "library")
    torch.testing.assert_close(joined.keys, full.keys)  # the same router as the workstation's, key by key
    full_dev = tmp_path / "full-dev"  # a device whose library has math already refuses a second one
    assert main(["device", "init", "--device-dir", str(full_dev), "--model", "tiny-random"]) == 0
    assert main(["package", "export", str(built), "--library", "--out", str(tmp_path / "full.eaupd")]) == 0
    assert (
        main(
            [
                "device",
                "apply",
                str(tmp_path / "full.eaupd"),
                "--device-dir",
                str(full_dev),
                "--allow-unsigned",
            ]
        )
        == 0
    )
    later = tmp_path / "math-later.eaupd"  # a newer release than the library (an older one is a downgrade)
    assert main(["package", "export", str(built), "--expert", "math", "--out", str(later)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "device",
                "apply",
                str(later),
                "--device-dir",
                str(full_dev),
                "--allow-unsigned",
            ]
        )
        == 2
    )
    assert "already has an expert named 'math'" in capsys.readouterr().err


def test_a_device_with_another_base_refuses_the_library(built, tmp_path, capsys):
    other = tmp_path / "other-base"
    models.tiny_random_model(seed=1, vocab_size=len(models.tiny_tokenizer())).save_pretrained(other)
    models.tiny_tokenizer().save_pretrained(other)
    dev = tmp_path / "dev"
    assert main(["device", "init", "--device-dir", str(dev), "--model", str(other)]) == 0
    assert main(["package", "export", str(built), "--library", "--out", str(tmp_path / "lib.eaupd")]) == 0
    assert (
        main(["device", "apply", str(tmp_path / "lib.eaupd"), "--device-dir", str(dev), "--allow-unsigned"])
        == 2
    )
    assert "built for base 'tiny-random'" in capsys.readouterr().err


def test_resume_trains_again_only_the_expert_whose_steps_changed(built, tmp_path, capsys):
    copied = tmp_path / "runs" / "smoke-router"
    shutil.copytree(built, copied)
    capsys.readouterr()
    args = [str(SMOKE), f"out_dir={copied.parent}", "library.expert_steps={math: 5}", "router.steps=2"]
    assert main(["library", "build", *args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "[lora] trained for 4 steps, the config asks 5: training again" in out
    assert out.count("already trained") == 4  # medical, legal, multitask, general
    assert Library.read(copied / "library").experts["math"].train["steps"] == 5


def test_router_prose_is_general_text_no_evaluation_reads(built):
    from edgeadapt.core import config
    from edgeadapt.evaluation.sets import eval_sets
    from edgeadapt.routing.predictor import routing_prompt
    from edgeadapt.studies.library import domain_runs
    from edgeadapt.studies.router_data import RouterData

    cfg = config.load(SMOKE, [f"out_dir={built.parent}"])
    runs = domain_runs(cfg)
    data = RouterData(cfg, runs, Library.read(built / "library"))
    first = next(iter(runs.values()))
    prose = data.prose(first)
    assert len(prose) > 20 and all(p.label == NULL and len(p.ids) == 64 for p in prose)
    null_prompts = {tuple(p.ids) for p in data.general_test + data.general_rest}
    assert {tuple(p.ids) for p in prose} <= null_prompts
    sets = eval_sets(first.data, first.tokenizer, first.cfg)
    read = {tuple(routing_prompt(chunk)) for chunk in sets.general_chunks}
    assert read and not read & {tuple(p.ids) for p in prose}


def test_the_query_runs_the_base_layers_and_leaves_the_adapters_as_they_were(built):
    """Pins the PEFT calls the query relies on (`enable_adapters` per layer): the hidden state it reads is
    the base model's, and afterwards every adapter layer is enabled and trainable exactly as before."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from edgeadapt.routing.queries import prompt_queries

    library = Library.read(built / "library")
    model = library.load(tiny_base())
    tokenizer = models.load_tokenizer(models.resolve("tiny-random"))
    prompts = [tokenizer("which ICD-10 code is I63")["input_ids"]]
    tuned = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    before = [(m.disable_adapters, [p.requires_grad for p in m.parameters()]) for m in tuned]
    with experts_active(model, Route(("medical",), (1.0,))):
        routed_query = prompt_queries(model, tokenizer, prompts, layer=2)
    plain_query = prompt_queries(tiny_base(), tokenizer, prompts, layer=2)
    torch.testing.assert_close(routed_query, plain_query)
    assert [(m.disable_adapters, [p.requires_grad for p in m.parameters()]) for m in tuned] == before
    ids = torch.tensor([prompts[0]])
    with torch.no_grad(), experts_active(model, Route(("medical",), (1.0,))) as tuned_model:
        assert not torch.allclose(tuned_model(input_ids=ids).logits, tiny_base()(input_ids=ids).logits)


@pytest.mark.parametrize("rslora", [False, True])
def test_peft_set_scale_multiplies_the_initial_scale(rslora):
    """Pins `LoraLayer.set_scale`, which mixes two experts: scale = weight x alpha / r (or / sqrt(r))."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], use_rslora=rslora)
    model = get_peft_model(tiny_base(), config)
    layer = next(m for m in model.modules() if isinstance(m, LoraLayer))
    initial = 8 / (4**0.5 if rslora else 4)
    assert layer.scaling["default"] == pytest.approx(initial)
    layer.set_scale("default", 0.25)
    assert layer.scaling["default"] == pytest.approx(0.25 * initial)
    layer.set_scale("default", 1.0)
    assert layer.scaling["default"] == pytest.approx(initial)


@pytest.mark.parametrize(
    ("row", "rule", "expected"),
    [
        (
            [0.3, 0.1, 0.0, 0.6],
            "null_competes",
            (),
        ),  # null is the most probable: the base, though a passes tau
        ([0.3, 0.1, 0.0, 0.6], "threshold", ("a",)),  # the old rule: tau alone, a takes it
        ([0.5, 0.1, 0.0, 0.4], "null_competes", ("a",)),  # an expert above null and tau
    ],
)
def test_the_null_class_competes_with_the_experts_and_tau_applies_on_top(row, rule, expected):
    (route,) = decide(torch.tensor([row]), ["a", "b", "c"], 0.2, 2, rule)
    assert route.experts == expected


def test_calibration_under_null_competes_counts_only_prompts_an_expert_could_take():
    probs = torch.tensor([[0.45, 0.05, 0.5], [0.44, 0.06, 0.5], [0.6, 0.1, 0.3], [0.42, 0.3, 0.28]])
    # two prompts stay on the base whatever tau is; of the other two, at most a quarter of all may reach an
    # adapter: the threshold lets exactly one through (the 0.6 one)
    tau = calibrate(probs, 0.25, 0.05, "null_competes")
    routes = decide(probs, ["a", "b"], tau, 1, "null_competes")
    assert [r.experts for r in routes] == [(), (), ("a",), ()]
    assert calibrate(probs, 0.25, 0.05, "threshold") > tau  # the old rule had to raise tau over 0.45


def test_a_router_saved_before_the_rule_keeps_the_threshold_rule(tmp_path):
    router = ScarRouter(["a"], torch.randn(2, 4), torch.zeros(4), torch.ones(4), 1, 0.1, 0.3, 1)
    router.save(tmp_path)
    spec = json.loads((tmp_path / "router.json").read_text())
    assert spec["rule"] == "null_competes"
    del spec["rule"]
    (tmp_path / "router.json").write_text(json.dumps(spec))
    assert ScarRouter.load(tmp_path).rule == "threshold"


# routing-2026-11-29.json is a version 1 file (the all-projection experts); routing.json the current one
@pytest.mark.parametrize("saved_file", ["routing-2026-11-29.json", "routing.json"])
def test_the_router_studys_summary_recomputes_identically_from_its_saved_parts(saved_file):
    from edgeadapt.runs import schema
    from edgeadapt.studies.routing import summarize
    from edgeadapt.studies.routing_systems import summary_kinds

    saved = schema.read(ROOT / "docs" / "results" / saved_file, schema.RoutingResults)
    recomputed = summarize(saved.routing, saved.systems, saved.seeds, summary_kinds(saved.to_json()))
    assert json.loads(json.dumps(recomputed)) == saved.summary
