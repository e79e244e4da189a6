"""llama.cpp itself (the prebuilt `xllamacpp` wheel, installed by `make install`): exported GGUF files load,
and llama.cpp's greedy tokens and their log-probabilities are transformers' for the same merged model; a
GGUF LoRA applied at run time answers as the merged model does. A missing runtime fails these tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgeadapt.cli import main
from edgeadapt.core.errors import UserError
from edgeadapt.deploy.gguf import export_run
from edgeadapt.deploy.llamacpp import LlamaCpp
from edgeadapt.inference.predictor import ModelPredictor
from edgeadapt.runs.run import reopen

PROMPTS = ["hello world, this is a test", "ICD-10-CM category of: fracture of the wrist", "zq 17 + 25"]
TOKENS = 8


def transformers_greedy(model, prompt: list[int]) -> tuple[list[int], list[float]]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=TOKENS,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
            output_scores=True,
            return_dict_in_generate=True,
        )
    ids = out.sequences[0, len(prompt) :].tolist()
    return ids, [float(torch.log_softmax(score[0], -1)[t]) for score, t in zip(out.scores, ids)]


@pytest.fixture(scope="module")
def exported(smoke_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    files = {"base": export_run(str(smoke_run), "base", folder / "base.gguf", "f32")}
    for variant in ("lora", "hlora"):
        files[variant] = export_run(str(smoke_run), variant, folder / f"{variant}.gguf", "f32")
        files[f"{variant}-adapter"] = export_run(
            str(smoke_run), variant, folder / f"{variant}-adapter.gguf", adapter=True
        )
    return {k: Path(v["path"]) for k, v in files.items()}


@pytest.mark.parametrize("variant", ["base", "lora", "hlora"])
def test_llamacpp_generates_what_transformers_does(smoke_run, exported, variant):
    run, _ = reopen(str(smoke_run), [], "test")
    model = run.open(None if variant == "base" else variant, torch.float32).model
    with LlamaCpp(exported[variant]) as llama:
        for text in PROMPTS:
            prompt = run.tokenizer(text)["input_ids"]
            ids, logprobs = transformers_greedy(model, prompt)
            got_ids, got_logprobs = llama.greedy(prompt, TOKENS)
            assert got_ids == ids, text
            assert got_logprobs == pytest.approx(logprobs, abs=1e-3), text


def test_a_text_prompt_is_tokenized_by_llamacpp_as_by_the_tokenizer(smoke_run, exported):
    # bench/gguf_speed.py times GGUF files the project has no tokenizer of by sending text
    run, _ = reopen(str(smoke_run), [], "test")
    with LlamaCpp(exported["base"]) as llama:
        for text in PROMPTS:
            from_text = llama.greedy_ids(text, TOKENS)
            assert from_text == llama.greedy_ids(run.tokenizer(text)["input_ids"], TOKENS), text
            assert len(from_text) == TOKENS


@pytest.mark.parametrize("variant", ["lora", "hlora"])
def test_a_gguf_lora_on_the_base_answers_as_the_merged_model(smoke_run, exported, variant):
    run, _ = reopen(str(smoke_run), [], "test")
    with (
        LlamaCpp(exported[variant]) as merged,
        LlamaCpp(exported["base"], lora=exported[f"{variant}-adapter"]) as applied,
    ):
        for text in PROMPTS:
            prompt = run.tokenizer(text)["input_ids"]
            merged_ids, merged_lp = merged.greedy(prompt, TOKENS)
            applied_ids, applied_lp = applied.greedy(prompt, TOKENS)
            assert applied_ids == merged_ids and applied_lp == pytest.approx(merged_lp, abs=1e-3), text
    assert exported[f"{variant}-adapter"].stat().st_size < exported[variant].stat().st_size / 2


@pytest.mark.parametrize("variant", ["base", "lora"])
def test_the_llamacpp_predictor_scores_as_the_transformers_one(smoke_run, exported, variant):
    run, _ = reopen(str(smoke_run), [], "test")
    reference = ModelPredictor(
        run.open(None if variant == "base" else variant, torch.float32).model, run.tokenizer
    )
    prompts = [run.tokenizer(text)["input_ids"] for text in PROMPTS]
    rows = [{"input_ids": ids, "labels": [-100] * 4 + ids[4:]} for ids in prompts]
    lora = None if variant == "base" else exported["lora-adapter"]
    with LlamaCpp(exported["base"], lora=lora) as llama:
        predictor = llama.predictor(run.tokenizer)
        assert predictor.generate(prompts, TOKENS) == reference.generate(prompts, TOKENS, 4)
        got, expected = predictor.loglikelihood(rows), reference.loglikelihood(rows, 4)
    assert [n for _, n in got] == [n for _, n in expected] == [len(ids) - 4 for ids in prompts]
    assert [nll for nll, _ in got] == pytest.approx([nll for nll, _ in expected], abs=1e-2)
    assert len({round(nll, 3) for nll, _ in got}) == len(got)  # three different rows, three different scores


def test_quantized_export_loads_in_llamacpp_and_is_smaller(smoke_run, exported, tmp_path):
    run, _ = reopen(str(smoke_run), [], "test")
    info = export_run(str(smoke_run), "lora", tmp_path / "q8.gguf", "q8_0")
    assert info["bytes"] < exported["lora"].stat().st_size / 2
    with LlamaCpp(Path(info["path"])) as llama:
        assert len(llama.greedy_ids(run.tokenizer(PROMPTS[0])["input_ids"], TOKENS)) == TOKENS


def test_a_gguf_lora_is_half_the_bytes_in_f16_and_answers_as_in_f32(smoke_run, exported, tmp_path):
    """An adapter is written f16 unless f32 is asked for: every tensor half the bytes, the same answers."""
    import gguf

    run, _ = reopen(str(smoke_run), [], "test")
    wide = Path(export_run(str(smoke_run), "lora", tmp_path / "f32.gguf", "f32", adapter=True)["path"])
    tensors = {
        kind: {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
        for kind, path in (("f16", exported["lora-adapter"]), ("f32", wide))
    }
    assert set(tensors["f16"]) == set(tensors["f32"]) and tensors["f16"]
    for name, tensor in tensors["f16"].items():
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F16, name
        assert tensors["f32"][name].tensor_type == gguf.GGMLQuantizationType.F32, name
        assert tensor.n_bytes * 2 == tensors["f32"][name].n_bytes, name
    with (
        LlamaCpp(exported["base"], lora=exported["lora-adapter"]) as half,
        LlamaCpp(exported["base"], lora=wide) as full,
    ):
        for text in PROMPTS:
            prompt = run.tokenizer(text)["input_ids"]
            half_ids, half_lp = half.greedy(prompt, TOKENS)
            full_ids, full_lp = full.greedy(prompt, TOKENS)
            assert half_ids == full_ids and half_lp == pytest.approx(full_lp, abs=1e-3), text


def test_what_cannot_be_exported_says_why(smoke_run, tmp_path, capsys):
    with pytest.raises(UserError, match="llama-quantize"):
        export_run(str(smoke_run), "lora", tmp_path / "x.gguf", "q4_k_m")
    with pytest.raises(UserError, match="not an adapter"):
        export_run(str(smoke_run), "sft", tmp_path / "x.gguf", adapter=True)
    quantized = ["export", "gguf", str(smoke_run), "--method", "lora", "--adapter", "--quantize", "q8_0"]
    assert main([*quantized, "--out", str(tmp_path / "q.gguf")]) == 2
    assert "a GGUF LoRA is written f16 or f32, not q8_0" in capsys.readouterr().err
    assert not (tmp_path / "q.gguf").exists()
    assert (
        main(
            [
                "export",
                "gguf",
                str(smoke_run),
                "--method",
                "lora",
                "--adapter",
                "--out",
                str(tmp_path / "a.gguf"),
            ]
        )
        == 0
    )


@pytest.fixture(scope="module")
def real_lora_run(tmp_path_factory) -> Path:
    """The real default model, a short LoRA run (two steps on eight rows), shared by the real-model tests."""
    from edgeadapt import models

    models.fetch("smollm2-135m-instruct")  # once per session (the isolated cache of the tests)
    out = tmp_path_factory.mktemp("real")
    config = str(Path(__file__).parents[1] / "configs" / "smoke.yaml")
    args = ["compare", config, "name=real", f"out_dir={out}", "methods={lora: {lr: 2.0e-3}}"]
    args += ["model.name=smollm2-135m-instruct", "train.steps=2", "train.eval_every=2", "train.batch_size=2"]
    args += ["data.train_rows=8", "data.test_rows=3", "eval.probes=13", "eval.general_chunks=2"]
    args += ["eval.max_new_tokens=16", "eval.facts=off"]
    assert main(args) == 0
    return out / "real"


@pytest.mark.slow
def test_real_model_exports_answer_in_llamacpp_as_results_json_says(real_lora_run, tmp_path):
    """The real default model: a short LoRA run, its lora merged and exported (f32), and llama.cpp's greedy
    answers to the run's sample domain questions are the answers results.json recorded from transformers."""
    from edgeadapt.evaluation.sets import eval_sets

    run_dir = real_lora_run
    run, results = reopen(str(run_dir), [], "test")
    prompts = eval_sets(run.data, run.tokenizer, run.cfg).domain_prompts
    # the base's answers agree too: the end-to-end device test compares them across runtimes
    for variant, scores in (("lora", results["methods"]["lora"]),):
        gguf = export_run(str(run_dir), variant, tmp_path / f"{variant}.gguf", "f32")
        expected = [s["answer"] for s in scores["samples"]["domain"]]
        with LlamaCpp(Path(gguf["path"])) as llama:
            got = [
                run.tokenizer.decode(llama.greedy_ids(p, 16), skip_special_tokens=True).strip()
                for p in prompts
            ]
        assert got[: len(expected)] == expected, variant
        Path(gguf["path"]).unlink()


@pytest.mark.slow
def test_a_llamacpp_devices_tokenizer_files_give_the_ids_and_text_autotokenizer_gives(tmp_path):
    """The real default model's tokenizer, saved as `device init` saves it beside base.gguf and read back from
    its files alone (no torch): the same chat-formatted prompt ids, health ids and decoded text."""
    from edgeadapt import models
    from edgeadapt.data.format import prompt_ids
    from edgeadapt.deploy.health_rules import HEALTH_PROMPTS, HEALTH_TEXT
    from edgeadapt.models.loading import load_tokenizer, load_tokenizer_files

    auto = load_tokenizer(models.fetch("smollm2-135m-instruct"))
    auto.save_pretrained(tmp_path / "base")
    files = load_tokenizer_files(tmp_path / "base")
    texts = [
        *HEALTH_PROMPTS,
        "ICD-10-CM category of: Acute appendicitis",
        "naïve café, 北京 😀\tand\nlines",
        "  x",
        "",
    ]
    for text in texts:
        message = [{"role": "user", "content": text}]
        assert prompt_ids(files, message) == prompt_ids(auto, message), text
    assert (
        files(HEALTH_TEXT, add_special_tokens=False)["input_ids"]
        == auto(HEALTH_TEXT, add_special_tokens=False)["input_ids"]
    )
    ids = prompt_ids(auto, [{"role": "user", "content": texts[-3]}]) + list(range(200, 260))
    for skip in (True, False):
        assert files.decode(ids, skip_special_tokens=skip) == auto.decode(ids, skip_special_tokens=skip)
    assert (files.pad_token_id, files.eos_token_id, files.padding_side) == (
        auto.pad_token_id,
        auto.eos_token_id,
        auto.padding_side,
    )


@pytest.mark.slow
def test_a_real_model_update_end_to_end_on_a_llamacpp_device(real_lora_run, tmp_path):
    """The real default model: a short LoRA run, its update signed and shipped as a GGUF LoRA to a llama.cpp
    device (base f16 GGUF, health check in llama.cpp), applied, and asked a domain question; it answers as the
    same update on a transformers device does, and a rollback returns the base's answer."""
    from edgeadapt.data.format import prompt_text
    from edgeadapt.deploy import device
    from edgeadapt.deploy import keys as keymod

    run, _ = reopen(str(real_lora_run), [], "test")
    private, public = keymod.generate_keys(tmp_path / "keys", "update")
    question = prompt_text(run.data.test[0])
    answers, base_answers = {}, {}
    for runtime in ("llamacpp", "transformers"):
        dev, package = tmp_path / runtime, tmp_path / f"{runtime}.eaupd"
        assert main(["device", "init", "--device-dir", str(dev), "--runtime", runtime]) == 0
        base_answers[runtime] = device.generate(dev, question, 16).text
        export = ["package", "export", str(run.dir), "--method", "lora", "--runtime", runtime]
        assert main([*export, "--sign", str(private), "--out", str(package)]) == 0
        assert main(["device", "apply", str(package), "--device-dir", str(dev), "--pubkey", str(public)]) == 0
        answers[runtime] = device.generate(dev, question, 16).text
    assert answers["llamacpp"] == answers["transformers"]
    assert base_answers["llamacpp"] == base_answers["transformers"] != answers["llamacpp"]
    assert main(["device", "rollback", "--device-dir", str(tmp_path / "llamacpp")]) == 0
    assert device.status(tmp_path / "llamacpp")["active"] is None
    assert device.generate(tmp_path / "llamacpp", question, 16).text == base_answers["llamacpp"]
