"""ADAPT-Q: block profiling and selection, frozen low-precision blocks, and reproducibility."""

import pytest
import torch
from torch import nn

from edgeadapt import updates
from edgeadapt.core.errors import UserError
from edgeadapt.models.quantize import quantized, weight_bytes
from edgeadapt.updates import adaptq
from tests.helpers import batch, one_step

ROWS = [{"input_ids": list(range(5, 5 + n))} for n in (3, 11, 7, 16)]


def configured(**options):
    return updates.parse_configs({"a": {"method": "adaptq", **options}})["a"]


def test_profile_matches_a_hand_computation_from_hooked_activations(make_tiny):
    model = make_tiny()
    outputs = {i: [] for i in range(model.config.num_hidden_layers)}
    hooks = [
        layer.register_forward_hook(
            lambda m, a, out, i=i: outputs[i].append(out[0] if isinstance(out, tuple) else out)
        )
        for i, layer in enumerate(model.model.layers)
    ]
    with torch.no_grad():
        for row in ROWS:  # one row at a time: no padding to get wrong
            model(input_ids=torch.tensor([row["input_ids"]]))
    for hook in hooks:
        hook.remove()
    by_hand = [
        sum(float(h.abs().sum()) for h in outputs[i]) / sum(h.numel() for h in outputs[i]) for i in outputs
    ]
    scores = adaptq.profile(model, ROWS, batch_size=3)  # padded batches
    assert scores == pytest.approx(by_hand, rel=1e-5)
    expected = sorted(range(len(by_hand)), key=lambda i: -by_hand[i])[:1]
    assert adaptq.select(scores, configured(alpha=0.5)) == expected


@pytest.mark.parametrize(
    ("selection", "alpha", "expected"),
    [("first", 0.5, [0, 1]), ("last", 0.5, [2, 3]), ("activation", 0.5, [1, 3]), ("activation", 0.1, [3])],
)
def test_selection_strategies(selection, alpha, expected):
    scores = [0.1, 0.5, 0.2, 0.9]
    assert adaptq.select(scores, configured(selection=selection, alpha=alpha)) == expected


def test_random_selection_is_seeded():
    scores = [0.0] * 10
    picks = {tuple(adaptq.select(scores, configured(selection="random", seed=s))) for s in range(5)}
    assert adaptq.select(scores, configured(selection="random", seed=3)) == adaptq.select(
        scores, configured(selection="random", seed=3)
    )
    assert len(picks) > 1 and all(len(p) == 5 for p in picks)


def test_named_layers_override_selection_and_are_checked():
    assert adaptq.select([1.0, 2.0, 3.0], configured(layers=[2, 0])) == [0, 2]
    with pytest.raises(UserError, match="block 7 does not exist"):
        adaptq.select([1.0, 2.0, 3.0], configured(layers=[7]))


def test_frozen_blocks_are_4bit_get_no_gradient_and_do_not_change(make_tiny):
    model = adaptq.prepare(make_tiny(), configured(alpha=0.5), ROWS)
    chosen = model.edgeadapt_adaptq["selected_layers"]
    frozen = [i for i in range(len(model.model.layers)) if i not in chosen]
    assert len(chosen) == 1 and len(frozen) == 1
    q_frozen = model.model.layers[frozen[0]].self_attn.q_proj
    assert q_frozen.weight.dtype == torch.uint8
    assert q_frozen.weight.numel() * q_frozen.weight.element_size() == 64 * 64 // 2  # two weights per byte
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    one_step(model)
    for name, param in model.named_parameters():
        block = int(name.split(".")[2]) if name.startswith("model.layers.") else None
        trains = block in chosen and type(model.get_submodule(name.rsplit(".", 1)[0])) is nn.Linear
        assert param.requires_grad == trains, name
        assert (param.grad is not None) == trains, name
        assert torch.equal(param, before[name]) != trains, name


def test_lora_update_trains_only_adapters_on_the_selected_blocks(make_tiny):
    model = adaptq.prepare(make_tiny(), configured(update="lora", layers=[1]), ROWS)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".layers.1." in n for n in trainable)
    assert model.base_model.model.model.layers[0].mlp.up_proj.weight.dtype == torch.uint8


def test_same_seed_same_selection_same_numbers(make_tiny):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = adaptq.prepare(make_tiny(), configured(selection="random", seed=1), ROWS)
        one_step(model)
        runs.append((model.edgeadapt_adaptq["selected_layers"], model(batch()).logits.detach()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize(
    ("bits", "weight", "stats"),
    [(4, 512 * 256 // 2, True), (8, 512 * 256, True), (16, 512 * 256 * 2, False), (32, 512 * 256 * 4, False)],
)
def test_weight_bytes_count_the_stored_precision(bits, weight, stats):
    layer = quantized(nn.Linear(512, 256, bias=False), bits)
    extra = weight_bytes(layer) - weight
    assert (extra > 0) == stats
    assert extra < weight / 4  # block absmax (4 bit) or one scale per row (8 bit)


def test_scale_zero_is_the_quantized_base(make_tiny):
    untrained = adaptq.prepare(make_tiny(), configured(), ROWS)  # the base as deployed: frozen blocks in NF4
    tuned = adaptq.prepare(make_tiny(), configured(), ROWS)
    one_step(tuned)
    with adaptq.scaled(tuned, make_tiny(), 0.0) as model:
        torch.testing.assert_close(model(batch()).logits, untrained(batch()).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 0}, "alpha: must be in"),
        ({"frozen_bits": 3}, "frozen_bits: must be one of 4, 8, 16, 32"),
        ({"selection": "best"}, "selection: must be one of"),
        ({"update": "partial"}, "update: must be one of full, lora"),
        ({"layers": []}, "layers: list block indices"),
        ({"fozen_bits": 4}, "Did you mean 'frozen_bits'"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(UserError, match=message):
        configured(**options)


def test_variants_name_their_method():
    parsed = updates.parse_configs({"lora_r64": {"method": "lora", "rank": 64}, "lora": {}})
    assert parsed["lora_r64"].rank == 64 and parsed["lora"].rank == 8
    with pytest.raises(UserError, match=r"Unknown method 'lora_r64'.*\{method: lora"):
        updates.parse_configs({"lora_r64": {"rank": 64}})
    with pytest.raises(UserError, match="a variant name is letters"):
        updates.parse_configs({"bad/name": {"method": "lora"}})


def test_4bit_layer_computes_the_same_in_inference_and_training():
    # bitsandbytes may switch a 4-bit layer to another kernel (bf16 block scales) for inference on CPUs with
    # AVX512-BF16; evaluation must see the numerics training saw, on every CPU.
    layer = quantized(nn.Linear(64, 64), 4)
    x = torch.randn(3, 64)
    with torch.no_grad():
        inference = layer.eval()(x)
    training = layer.train()(x.clone().requires_grad_(True))
    torch.testing.assert_close(inference, training.detach(), rtol=0, atol=0)
    assert weight_bytes(layer) > 64 * 64 // 2
