"""GGUF export (read back with gguf's reader and with transformers) and the edge budget check."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch

from edgeadapt.cli import main
from edgeadapt.core.config import load
from edgeadapt.core.errors import UserError
from edgeadapt.deploy import gguf as export_gguf
from edgeadapt.deploy.edge import verdict
from edgeadapt.inference.timing import decode_times
from edgeadapt.runs.run import reopen


def merged(run, variant):
    method = run.method(variant)
    return method.merge(method.load_tuned(run.load_model(torch.float32), run.dir / variant / "update")).eval()


@pytest.mark.parametrize("variant", ["lora", "sft"])
def test_gguf_holds_every_merged_tensor_and_loads_back_in_transformers(smoke_run, tmp_path, variant):
    import gguf
    from transformers import AutoModelForCausalLM

    out = tmp_path / "m.gguf"
    assert (
        main(["export", "gguf", str(smoke_run), "--method", variant, "--out", str(out), "--dtype", "f32"])
        == 0
    )
    run, _ = reopen(str(smoke_run), [], "export")
    model = merged(run, variant)
    reader = gguf.GGUFReader(str(out))
    cfg = model.config
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    read = {t.name: np.asarray(t.data).reshape(tuple(reversed(t.shape.tolist()))) for t in reader.tensors}
    assert len(read) == 2 + 9 * cfg.num_hidden_layers  # tied embeddings: no separate output tensor
    assert np.array_equal(read["token_embd.weight"], state["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        for hf, name in export_gguf.BLOCK_TENSORS.items():
            expected = state[f"model.layers.{i}.{hf}.weight"]
            if name == "attn_q":
                expected = export_gguf.permute(expected, cfg.num_attention_heads)
            if name == "attn_k":
                expected = export_gguf.permute(expected, cfg.num_key_value_heads)
            assert np.array_equal(read[f"blk.{i}.{name}.weight"], expected), name
    assert reader.fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == run.tokenizer.eos_token_id
    assert len(reader.fields["tokenizer.ggml.tokens"].contents()) == len(run.tokenizer)
    # An independent reader: transformers' GGUF loader undoes the permutation and must give the same logits.
    loaded = AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file="m.gguf", dtype=torch.float32
    ).eval()
    ids = torch.tensor([[1, 5, 9, 33, 70, 2, 100]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)


def test_our_own_gguf_converts_back_to_the_same_model_and_a_broken_one_is_a_line(smoke_run, tmp_path, capsys):
    from edgeadapt import models

    out = tmp_path / "sub" / "m.gguf"  # a folder that does not exist yet is made
    assert (
        main(["export", "gguf", str(smoke_run), "--method", "lora", "--out", str(out), "--dtype", "f32"]) == 0
    )
    assert main(["models", "convert", str(out), "--name", "round-trip"]) == 0
    run, _ = reopen(str(smoke_run), [], "export")
    converted, tokenizer = models.load(models.resolve("round-trip"), torch.float32)
    text = "Which ICD-10 code is I63? <|im_end|>"
    assert tokenizer(text)["input_ids"] == run.tokenizer(text)["input_ids"]
    assert tokenizer.chat_template == run.tokenizer.chat_template
    ids = torch.tensor([[1, 5, 9, 33, 70, 2, 100]])
    with torch.no_grad():
        torch.testing.assert_close(
            converted.eval()(ids).logits, merged(run, "lora")(ids).logits, atol=1e-5, rtol=1e-5
        )
    (tmp_path / "junk.gguf").write_bytes(b"GGUF" + bytes(64))
    assert main(["models", "convert", str(tmp_path / "junk.gguf"), "--name", "junk"]) == 2
    err = capsys.readouterr().err
    assert (
        len([line for line in err.splitlines() if line.startswith("error:")]) == 1 and "cannot convert" in err
    )


def test_gguf_f16_halves_the_file_and_adaptq_is_refused(smoke_run, tmp_path):
    f32, f16 = tmp_path / "a.gguf", tmp_path / "b.gguf"
    export_gguf.export_run(str(smoke_run), "base", f32, "f32")
    export_gguf.export_run(str(smoke_run), "base", f16, "f16")
    assert f16.stat().st_size < 0.75 * f32.stat().st_size
    with pytest.raises(UserError, match="4-bit"):
        export_gguf.export_run(str(smoke_run), "adaptq", tmp_path / "c.gguf")
    with pytest.raises(UserError, match="Did you mean 'lora'"):
        export_gguf.export_run(str(smoke_run), "lorra", tmp_path / "c.gguf")


def test_decode_times_one_per_generated_token(tiny_model):
    forward, calls = tiny_model.forward, []

    def slow(*args, **kwargs):  # every forward pass takes 10 ms more: each step's time must show it
        calls.append(kwargs.get("cache") is not None)
        time.sleep(0.01)
        return forward(*args, **kwargs)

    tiny_model.forward = slow
    times = decode_times(tiny_model, [1, 5, 9], 5)
    assert calls == [False] + [True] * 5  # the prefill (not timed), then one cached step per token
    assert len(times) == 5 and all(t >= 0.01 for t in times)


@pytest.mark.parametrize(
    "metrics, failed",
    [
        ({"params": 10, "peak_rss_bytes": 2**20, "ms_per_token": 1.0}, []),
        ({"params": 2000, "peak_rss_bytes": 2**20, "ms_per_token": 1.0}, ["params"]),
        ({"params": 10, "peak_rss_bytes": 3 * 2**20, "ms_per_token": 5.0}, ["memory", "ms/token"]),
    ],
)
def test_verdict_names_each_limit_exceeded(metrics, failed):
    result = verdict(metrics, {"max_params": 1000, "max_memory_mb": 2, "max_ms_per_token": 2})
    assert result["passed"] == (not failed)
    assert [f.split(" ")[0] for f in result["failed"]] == failed


def test_edge_check_probes_each_model_in_its_own_process(smoke_run, tmp_path, capsys):
    run_copy = tmp_path / "smoke"
    shutil.copytree(smoke_run, run_copy)
    overrides = ["edge.new_tokens=4", "edge.threads=1", "edge.llamacpp_threads=[2]"]
    probed = ["lora", "adaptq", "qlora"]  # the kinds that differ: plain, 4-bit blocks, 4-bit base
    assert main(["edge-check", str(run_copy), *overrides, "--method", ",".join(probed)]) == 0
    results = json.loads((run_copy / "results.json").read_text())
    edge = results["edge"]
    assert set(edge["models"]) == {"base", *probed}
    for m in edge["models"].values():
        assert m["tokens"] == 4 and m["ms_per_token"] > 0 and m["passed"]
        assert (
            m["peak_rss_bytes"] > 0 and m["process_peak_rss_bytes"] > 0
        )  # sampled vs kernel high-water mark
    assert edge["models"]["adaptq"]["weight_bytes"] < edge["models"]["base"]["weight_bytes"]
    # 4-bit blocks count as the weights they hold, not as their packed storage
    base_params = edge["models"]["base"]["params"]
    assert edge["models"]["adaptq"]["params"] == base_params
    assert edge["models"]["qlora"]["params"] == base_params + results["methods"]["qlora"]["trainable_params"]
    assert set(edge["models"]["lora"]["llamacpp_by_threads"]) == {"1", "2"}  # edge.threads and the list
    # llama.cpp's own speed beside transformers', for every model GGUF can hold (not adaptq's 4-bit blocks)
    assert all(edge["models"][n]["llamacpp_tokens_per_s"] > 0 for n in ("base", "lora"))
    assert edge["models"]["adaptq"]["llamacpp_tokens_per_s"] is None
    assert "## Edge budget check" in (run_copy / "report.md").read_text()
    assert "| base |" in capsys.readouterr().out


def test_edge_check_of_some_methods_keeps_the_others_earlier_figures(smoke_run, tmp_path, monkeypatch):
    from edgeadapt.deploy import edge

    run_copy = tmp_path / "smoke"
    shutil.copytree(smoke_run, run_copy)
    probed = []

    def fake_probe(entry):  # what a probe measures, keyed by the model it ran (no process started)
        probed.append(entry["method"])
        size = 1000 + len(probed)
        return {
            "params": size,
            "weight_bytes": size,
            "peak_rss_bytes": size,
            "process_peak_rss_bytes": size,
            "ms_per_token": float(size),
            "ms_per_token_p90": float(size),
            "tokens": 2,
            "llamacpp_tokens_per_s": None,
        }

    monkeypatch.setattr(edge, "run_probe", fake_probe)
    assert main(["edge-check", str(run_copy)]) == 0
    first = json.loads((run_copy / "results.json").read_text())["edge"]["models"]
    assert main(["edge-check", str(run_copy), "--method", "lora"]) == 0
    second = json.loads((run_copy / "results.json").read_text())["edge"]["models"]
    assert set(second) == set(first)
    assert second["lora"] != first["lora"] and second["base"] != first["base"]  # probed again
    assert all(second[n] == first[n] for n in first if n not in ("base", "lora"))  # kept
    with pytest.raises(UserError, match="no evaluated method 'lroa'. Did you mean 'lora'"):
        edge.edge_check(str(run_copy), methods=["lroa"])


def test_edge_profiles_are_validated(tmp_path):
    with pytest.raises(
        UserError, match="edge.profile: 'phnoe' is not in edge.profiles. Did you mean 'phone'"
    ):
        load(
            None,
            [
                "edge.profiles={phone: {max_params: 1, max_memory_mb: 1, max_ms_per_token: 1}}",
                "edge.profile=phnoe",
            ],
        )
    with pytest.raises(UserError, match="give exactly max_params"):
        load(None, ["edge.profiles={default: {max_params: 1}}"])
