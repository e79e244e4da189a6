"""Extension points: a router kind, a benchmark and a method, each registered here only (one module's worth
of code, no edit anywhere else), run through a study, its report and, for the router, a device."""

from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from edgeadapt import updates
from edgeadapt.cli import main
from edgeadapt.evaluation.registry import Metric, register_benchmark, unregister_benchmark
from edgeadapt.routing.registry import RouterCapabilities, register_router, unregister_router
from edgeadapt.routing.router import ThresholdRouter, read_spec, write_spec
from tests.device_helpers import RUNTIME_NAMES
from tests.helpers import CONFIGS, SMOKE

# --- a router kind: the first expert whose keyword the prompt contains ---------------------------------


class KeywordRouter(ThresholdRouter):
    kind = "keyword"

    def __init__(self, experts, keywords: dict[str, str], tau: float = 0.5, top_k: int = 1):
        super().__init__(experts, tau, top_k)
        self.keywords = keywords

    def probabilities(self, requests):
        probs = torch.zeros(len(requests), len(self.experts) + 1)
        for row, request in enumerate(requests):
            words = set(request.text.lower().split())
            hits = [i for i, e in enumerate(self.experts) if self.keywords[e] in words]
            probs[row, hits[0] if hits else -1] = 1.0
        return probs

    def spec(self):
        return {**super().spec(), "keywords": self.keywords}

    def save(self, folder: Path) -> list[str]:
        write_spec(folder, self.spec())
        return ["router.json"]

    @classmethod
    def load(cls, folder: Path) -> KeywordRouter:
        spec = read_spec(folder, cls.kind)
        return cls(spec["experts"], spec["keywords"], spec["tau"], spec["top_k"])


def fit_keywords(training, cfg, seed, layer) -> KeywordRouter:
    """Each expert's keyword: the word its training prompts use most often beyond every other class."""
    counts = [Counter() for _ in range(len(training.experts) + 1)]
    for request, label in zip(training.train, training.labels.tolist()):
        counts[label].update(set(request.text.lower().split()))
    keywords = {}
    for i, expert in enumerate(training.experts):
        others = [c for j, c in enumerate(counts) if j != i]
        keywords[expert] = max(counts[i], key=lambda w: counts[i][w] - max(c[w] for c in others))
    return KeywordRouter(training.experts, keywords)


@pytest.fixture
def keyword_router():
    register_router(
        name="keyword",
        description="the first expert whose keyword the prompt contains",
        fit=fit_keywords,
        load=KeywordRouter.load,
        files=("router.json",),
        capabilities=RouterCapabilities(reads_model=False, ships=True, joins=False),
    )
    yield
    unregister_router("keyword")


def test_a_router_registered_in_one_module_runs_the_study_the_report_and_a_device(
    keyword_router, tmp_path, capsys
):
    config = CONFIGS / "smoke-router.yaml"
    overrides = [
        f"out_dir={tmp_path}",
        "router.kind=keyword",
        "router.seeds=[0]",
        "router.baselines=[base, oracle]",
        "router.compare_layers=[]",
        "library.multitask=false",
        "library.general_adapter=false",
    ]
    assert main(["library", "build", str(config), *overrides]) == 0
    library = tmp_path / "smoke-router" / "library"
    spec = json.loads((library / "router.json").read_text())
    assert spec["kind"] == "keyword" and set(spec["keywords"]) == {"medical", "legal", "math"}
    assert main(["route", "eval", str(config), *overrides]) == 0
    routing = json.loads((tmp_path / "smoke-router" / "routing.json").read_text())
    assert set(routing["summary"]["routing"]) == {"keyword"} and "keyword-seed0" in routing["systems"]
    assert routing.get("new_expert") is None  # this kind takes no expert without retraining
    assert "The keyword router across 1 seeds" in (tmp_path / "smoke-router" / "routing.md").read_text()
    for runtime in RUNTIME_NAMES:  # shipped to a device of every runtime, and routing there
        package, device = tmp_path / f"lib-{runtime}.eaupd", tmp_path / f"device-{runtime}"
        to = ["--runtime", runtime]
        assert main(["package", "export", str(library), "--library", *to, "--out", str(package)]) == 0
        assert main(["device", "init", "--device-dir", str(device), "--model", "tiny-random", *to]) == 0
        assert main(["device", "apply", str(package), "--device-dir", str(device), "--allow-unsigned"]) == 0
        capsys.readouterr()
        prompt = f"tell me about {spec['keywords']['legal']} please"
        assert main(["device", "generate", "--device-dir", str(device), prompt, "--max-new-tokens", "3"]) == 0
        assert capsys.readouterr().out.startswith("[expert: legal]"), runtime


# --- a benchmark: the mean length of the greedy answers to the general probes, in words --------------------


def prepare_lengths(data, tokenizer, cfg):
    from edgeadapt.evaluation.sets import user_prompt

    return [user_prompt(tokenizer, r["prompt"]) for r in data.probes[:6]]


def score_lengths(predictor, prompts, cfg, context):
    answers = predictor.generate(prompts, cfg.probe_new_tokens, cfg.generate_batch_size, "answer length")
    return {"answer_length": sum(len(a.split()) for a in answers) / len(answers)}


@pytest.fixture
def answer_length():
    register_benchmark(
        name="answer_length",
        description="mean words per greedy answer to six general probes",
        metrics=(Metric("answer_length", "answer words", "{:.1f}", None, "forgetting", order=90),),
        prepare=prepare_lengths,
        score=score_lengths,
    )
    yield
    unregister_benchmark("answer_length")


def test_a_benchmark_registered_in_one_module_runs_in_the_study_and_its_report(answer_length, tmp_path):
    assert main(["compare", str(SMOKE), f"out_dir={tmp_path}", "methods={lora: {lr: 0.001}}"]) == 0
    results = json.loads((tmp_path / "smoke" / "results.json").read_text())
    for model in (results["base"], results["methods"]["lora"]):
        assert 0 <= model["answer_length"] <= results["config"]["eval"]["probe_new_tokens"]
    report = (tmp_path / "smoke" / "report.md").read_text()
    header = next(line for line in report.splitlines() if "general PPL" in line)
    assert "answer words" in header  # its column, in its group's table


# --- a method: only the RMSNorm weights train; the update is those weights --------------------------------


@dataclass
class NormConfig:
    lr: float = 1e-3


def norm_names(model) -> list[str]:
    return [n for n, _ in model.named_parameters() if "norm" in n]


def prepare_norms(model, cfg, calibration=None):
    for name, param in model.named_parameters():
        param.requires_grad_(name in norm_names(model))
    return model


def save_norms(model, out_dir: Path) -> list[Path]:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {n: p.detach().contiguous() for n, p in model.named_parameters() if n in norm_names(model)}
    save_file(weights, str(out_dir / "norms.safetensors"))
    return [out_dir / "norms.safetensors"]


def load_norms(base, update_dir: Path):
    from safetensors.torch import load_file

    base.load_state_dict(load_file(str(Path(update_dir) / "norms.safetensors")), strict=False)
    return base


@contextmanager
def scaled_norms(tuned, base, s):
    saved = {n: p.detach().clone() for n, p in tuned.named_parameters()}
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            param.copy_(
                dict(base.named_parameters())[name] + s * (saved[name] - dict(base.named_parameters())[name])
            )
    yield tuned
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            param.copy_(saved[name])


@pytest.fixture
def norm_method():
    updates.register(
        name="normonly",
        description="only the RMSNorm weights train (a test's method)",
        Config=NormConfig,
        prepare=prepare_norms,
        save_update=save_norms,
        loader="normonly",
        load_tuned=load_norms,
        merge=lambda model: model,
        scaled=scaled_norms,
        capabilities=updates.Capabilities(lora_family=False, mergeable=True, gguf=None, device_holds="norms"),
        check_files=lambda folder, base: [],
    )
    yield
    updates.METHODS.pop("normonly")
    updates.LOADERS.pop("normonly")


def test_a_method_registered_in_one_module_trains_evaluates_and_reports(norm_method, tmp_path):
    assert main(["compare", str(SMOKE), f"out_dir={tmp_path}", "methods={normonly: {lr: 0.01}}"]) == 0
    results = json.loads((tmp_path / "smoke" / "results.json").read_text())
    method = results["methods"]["normonly"]
    assert method["trainable_params"] == 5 * 64  # four norms in two layers and the final one, 64 wide
    assert method["general_ppl"] != results["base"]["general_ppl"]  # the update changed the model
    assert "| normonly |" in (tmp_path / "smoke" / "report.md").read_text()
