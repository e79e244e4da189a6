"""Table-driven checks over every registered method, on the tiny model built in code."""

import pytest
import torch

from edgeadapt import updates
from edgeadapt.core.errors import UserError
from edgeadapt.models import count_parameters
from edgeadapt.updates import hlora
from tests.helpers import batch, one_step, prepared

ADAPTERS = ["lora", "hlora"]
ALL = list(updates.METHODS)


def base_weights(model):
    """The base model's weights by name, whether or not the model is wrapped by PEFT."""
    return {
        n.replace("base_model.model.", "").replace(".base_layer", ""): p.detach().clone()
        for n, p in model.named_parameters()
        if "lora_" not in n
    }


def test_registry_lists_the_methods_with_descriptions():
    assert {"sft", "lora", "hlora", "adaptq"} <= set(updates.METHODS)
    assert all(m.description for m in updates.METHODS.values())


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_at_init_gives_the_base_output(name, make_tiny):
    base = make_tiny()
    expected = base(batch()).logits
    adapted = prepared(name, make_tiny())
    torch.testing.assert_close(adapted(batch()).logits, expected)


@pytest.mark.parametrize("name", ALL)
def test_merge_gives_the_unmerged_output(name, make_tiny):
    base_logits = make_tiny()(batch()).logits.detach()
    model = prepared(name, make_tiny())
    one_step(model)
    unmerged = model(batch()).logits.detach()
    assert not torch.allclose(unmerged, base_logits, atol=1e-4)  # the step moved the model
    merged = updates.get(name).merge(model)
    if merged is model:  # nothing to fold in (sft), or deployed unmerged (qlora, adaptq's 4-bit blocks)
        assert "peft" not in type(model).__module__ or not updates.get(name).capabilities.mergeable
        return
    assert "peft" not in type(merged).__module__  # a plain transformers model, adapters folded in
    torch.testing.assert_close(merged(batch()).logits, unmerged, atol=1e-5, rtol=1e-4)


def test_sft_changes_every_weight(make_tiny):
    model = prepared("sft", make_tiny())
    before = base_weights(model)
    one_step(model)
    after = base_weights(model)
    assert all(not torch.equal(before[n], after[n]) for n in before)


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapters_change_none_of_the_base_weights(name, make_tiny):
    model = prepared(name, make_tiny())
    before = base_weights(model)
    one_step(model)
    after = base_weights(model)
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    assert not torch.equal(model(batch()).logits, make_tiny()(batch()).logits)


@pytest.mark.parametrize("name", ALL)
def test_saved_update_reloads_to_the_same_output(name, make_tiny, tmp_path):
    model = prepared(name, make_tiny())
    one_step(model)
    expected = model(batch()).logits.detach()
    files = updates.get(name).save_update(model, tmp_path)
    assert files and all(f.suffix == ".safetensors" for f in files)
    reloaded = updates.get(name).load_tuned(make_tiny(), tmp_path)
    torch.testing.assert_close(reloaded(batch()).logits, expected)


def test_pissa_initial_adapter_folder_goes_with_the_model(make_tiny, tmp_path):
    import gc
    from pathlib import Path

    model = prepared("pissa", make_tiny())
    one_step(model)
    updates.get("pissa").save_update(model, tmp_path)
    initial = Path(model.edgeadapt_pissa_initial)
    assert (initial / "adapter_model.safetensors").is_file()
    del model
    gc.collect()
    assert not initial.exists()


def test_lora_trainable_count_matches_the_formula(make_tiny):
    model = make_tiny()
    shapes = {
        n: (m.in_features, m.out_features)
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in ("q_proj", "o_proj")
    }
    adapted = prepared("lora", model, rank=4, targets=["q_proj", "o_proj"])
    assert count_parameters(adapted, trainable_only=True) == sum(4 * (i + o) for i, o in shapes.values())


def test_hlora_default_rank_is_two_thirds_of_hidden_rounded_to_8():
    assert hlora.default_rank(576) == 384
    assert hlora.default_rank(640) == 424
    assert hlora.default_rank(64) == 40


@pytest.mark.parametrize(
    ("scaling", "expected"), [("none", 1.0), ("standard", 16 / 8), ("rslora", 16 / 8**0.5)]
)
def test_hlora_scaling_modes(make_tiny, scaling, expected):
    model = prepared("hlora", make_tiny(), rank=8, scaling=scaling)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == pytest.approx(expected)


def test_rank_above_a_module_size_is_capped_with_a_warning(make_tiny):
    # k_proj and v_proj are 64 -> 32 in the tiny model: rank 48 cannot raise their update rank.
    with pytest.warns(UserWarning, match=r"k_proj \(32\)"):
        model = prepared("hlora", make_tiny(), rank=48, targets=["q_proj", "k_proj"])
    attn = model.base_model.model.model.layers[0].self_attn
    assert attn.k_proj.lora_A["default"].weight.shape[0] == 32
    assert attn.q_proj.lora_A["default"].weight.shape[0] == 48
    assert attn.k_proj.scaling["default"] == pytest.approx(1.0)  # factor 1 survives the cap


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rank": 0}, "rank: must be between 1"),
        ({"scaling": "big"}, "scaling: must be one of"),
        ({"lr": -1.0}, "lr: must be > 0"),
        ({"rnak": 8}, "Did you mean 'rank'"),
    ],
)
def test_bad_method_options_are_named(options, message):
    with pytest.raises(UserError, match=message):
        updates.parse_configs({"lora": options})


def test_unknown_method_suggests_the_closest():
    with pytest.raises(UserError, match="Unknown method 'lorra'. Did you mean 'lora'"):
        updates.parse_configs({"lorra": {}})


def test_targets_matching_nothing_are_an_error(make_tiny):
    with pytest.raises(UserError, match="No module matched targets"):
        prepared("lora", make_tiny(), targets=["c_attn"])


@pytest.mark.parametrize("name", ALL)
def test_loss_on_labelled_positions_equals_the_models_loss_and_gradients(name, make_tiny):
    """The training loop computes logits only where a label is scored; loss and gradients must not change."""
    from edgeadapt.data.collate import labelled_positions
    from edgeadapt.models.scoring import accepts_logits_to_keep, labelled_loss

    ids = batch(2)
    labels = ids.clone()
    labels[:, :7] = -100  # a prompt
    labels[1, 10:] = -100  # a shorter row
    grads = []
    for sparse in (False, True):
        model = prepared(name, make_tiny())
        assert accepts_logits_to_keep(model)
        if sparse:
            out = model(input_ids=ids, logits_to_keep=labelled_positions(labels))
            assert out.logits.shape[0] == int((labels[:, 1:] != -100).sum())
            loss = labelled_loss(out, labels, num_items_in_batch=torch.tensor(6))
            reference = loss
        else:
            loss = model(input_ids=ids, labels=labels, num_items_in_batch=torch.tensor(6)).loss
            dense = loss
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert torch.allclose(reference, dense, atol=1e-6)
    for key in grads[0]:
        assert torch.allclose(grads[0][key], grads[1][key], atol=1e-6), key


def test_a_variant_is_logged_with_the_options_that_make_it():
    from edgeadapt.runs.run import non_defaults

    cfg = updates.parse_configs({"v": {"method": "lora", "rank": 4, "lr": 1e-3}})["v"]
    assert non_defaults(cfg) == {"lr": 1e-3, "rank": 4}
    assert non_defaults(updates.parse_configs({"hlora": {}})["hlora"]) == {}


@pytest.mark.parametrize("name", [n for n in ALL if updates.get(n).deploy_variants])
def test_every_deploy_variant_runs_and_leaves_no_adapter(name, make_tiny):
    for variant, make in updates.get(name).deploy_variants.items():
        model = prepared(name, make_tiny())
        one_step(model)
        deployed = make(updates.get(name).merge(model)).eval()
        assert not any("lora_" in n for n, _ in deployed.named_parameters()), variant
        assert torch.isfinite(deployed(batch()).logits).all(), variant


def test_qlora_merged_into_a_full_precision_base_gives_the_unmerged_output(make_tiny):
    from edgeadapt.updates import qlora

    model = prepared("qlora", make_tiny(), bits=32)
    one_step(model, lr=0.5)
    unmerged = model(batch()).logits.detach()
    merged = qlora.merged_into_quantized(model)
    torch.testing.assert_close(merged(batch()).logits, unmerged, atol=1e-5, rtol=1e-4)


def test_qlora_merged_into_a_4bit_base_is_4bit_again(make_tiny):
    import bitsandbytes as bnb

    from edgeadapt.models.quantize import dequantized_weight
    from edgeadapt.updates import qlora

    model = prepared("qlora", make_tiny())
    one_step(model, lr=0.5)
    merged = qlora.merged_into_quantized(model)
    layers = [m for m in merged.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(dequantized_weight(m).shape == (m.out_features, m.in_features) for m in layers)


def test_qlora_refuses_a_bf16_base_it_cannot_put_a_lora_on():
    with pytest.raises(UserError, match=r"methods.qlora.bits: 16 cannot carry a PEFT LoRA"):
        updates.parse_configs({"qlora": {"bits": 16}})
