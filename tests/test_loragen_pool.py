"""The pool generator (`loragen.kind: pool`, LoRA-Gen's own design): the top-k gate, the load-balancing term,
the reader's meta tokens on cached description prefixes, the adapter materialized from the gated experts (a
plain PEFT LoRA equal to the hand-computed gated sum), training through the one loop on the tiny model, and
`loragen make`'s refusals (an unknown design, a reader that is not installed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from edgeadapt import models
from edgeadapt.cli import main
from edgeadapt.core import config
from edgeadapt.core.errors import UserError
from edgeadapt.loragen import pool
from edgeadapt.loragen.generated import write_adapter
from edgeadapt.loragen.make import Generator
from edgeadapt.loragen.pool import PoolConfig, PoolLoRA, balance_term, top_k_gates
from edgeadapt.loragen.registry import GeneratorSetup, get_generator

SMOKE = Path(__file__).parents[1] / "configs" / "smoke-loragen.yaml"
POOL = ["loragen.kind=pool", "loragen.compare_encoders=[]"]
DESCRIPTIONS = ["Reverse the list.", "Give the first element of the list, please.", "Sort the numbers now."]


def tiny_base():
    # on the CPU where a GPU is visible too: the tests feed it CPU tensors
    return models.load(models.resolve("tiny-random"), device=torch.device("cpu"))[0].eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Only the pool generator of the smoke study (no baselines): its folder."""
    from edgeadapt.studies.loragen import collection_of, train_generator

    cfg = config.load(SMOKE, [*POOL, f"out_dir={tmp_path_factory.mktemp('pool-runs')}"])
    return train_generator(cfg, collection_of(cfg), cfg.loragen.encoder)


@pytest.fixture(scope="module")
def built():
    """An untrained pool over the tiny model, three descriptions read."""
    cfg = config.load(SMOKE, POOL).loragen
    setup = GeneratorSetup(cfg, "model:tiny-random", DESCRIPTIONS, tiny_base(), "tiny-random")
    return get_generator("pool").build(setup)


def test_the_top_k_gate_keeps_the_largest_and_renormalizes():
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]])
    probs, gates, chosen = top_k_gates(logits, 2)
    assert chosen.tolist() == [[1, 2]]
    torch.testing.assert_close(gates.sum(-1), torch.ones(1))
    torch.testing.assert_close(gates[0, 0] / gates[0, 1], probs[0, 1] / probs[0, 2])


def test_the_balance_term_is_one_when_balanced_and_grows_as_experts_collapse():
    experts = 4
    even = torch.full((4, 3, experts), 0.25)  # 4 rows, 3 layers: each row takes another pair of experts
    spread = torch.tensor([[0, 1], [2, 3], [0, 1], [2, 3]])[:, None, :].expand(4, 3, 2)
    torch.testing.assert_close(balance_term(even, spread, experts), torch.tensor(1.0))
    collapsed = torch.tensor([0.5, 0.5, 0.0, 0.0]).expand(4, 3, experts)
    same = torch.tensor([0, 1]).expand(4, 3, 2)
    torch.testing.assert_close(balance_term(collapsed, same, experts), torch.tensor(experts / 2))


def test_meta_tokens_on_cached_prefixes_equal_reading_the_whole_sequence(built):
    batched = built.meta_states(built.prefixes)  # left-padded to the longest description, masked
    assert len({length for _, length in built.prefixes}) == 3  # the padding is under test
    reader = built.reader
    for index, text in enumerate(DESCRIPTIONS):
        ids = reader.tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            embeds = torch.cat([reader.model.get_input_embeddings()(ids), built.meta[None]], dim=1)
            whole = reader.model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1]
            alone = reader.model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
        torch.testing.assert_close(batched[index], whole[0, ids.shape[1] :], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            built.read([text])[0], batched[index], atol=1e-5, rtol=1e-4
        )  # `make`'s pass
        # the reader reads without the LM head (its body): the states the whole causal LM has
        torch.testing.assert_close(reader([text])[0], torch.nn.functional.normalize(alone[0].mean(0), dim=-1))


def test_the_materialized_adapter_is_the_gated_sum_of_the_experts(tmp_path):
    from peft import PeftModel

    base = tiny_base()
    from edgeadapt.loragen.generated import target_modules

    shapes, paths = target_modules(base, ["q_proj", "v_proj"])
    cfg = PoolConfig("model:tiny-random", 16, shapes, paths, experts=4, expert_rank=2, top_k=2, meta_tokens=2)
    torch.manual_seed(0)
    pool = PoolLoRA(cfg)
    with torch.no_grad():
        for b in pool.lora_B.values():
            b.normal_(std=0.1)
    read = torch.randn(1, 2, 16)
    weights = pool.weights(read)
    for name, (a, b) in weights.items():
        assert a.shape[2] == b.shape[3] == cfg.rank == 4
        for layer, meta in enumerate(cfg.meta_of_layers()):  # by hand: gate, top 2, renormalize, sum
            logits = pool.norm(read[0, meta]) @ pool.gates[name][layer].T
            probs = logits.softmax(-1)
            top = probs.topk(2)
            gates = top.values / top.values.sum()
            expected = sum(
                g * pool.lora_B[name][layer, k] @ pool.lora_A[name][layer, k]
                for g, k in zip(gates, top.indices)
            )
            torch.testing.assert_close(b[0, layer] @ a[0, layer], expected, atol=1e-6, rtol=1e-5)
    # written as a PEFT folder (rank 4, alpha keeping the experts' scaling), PEFT's merge adds exactly that
    from edgeadapt.loragen.generated import adapter_tensors

    write_adapter(pool, adapter_tensors(pool, read), tmp_path, {"description": "x"})
    merged = PeftModel.from_pretrained(tiny_base(), str(tmp_path)).merge_and_unload()
    path = paths["v_proj"][1]
    a, b = weights["v_proj"]
    delta = merged.get_submodule(path).weight - base.get_submodule(path).weight
    torch.testing.assert_close(delta, cfg.scaling * b[0, 1] @ a[0, 1], atol=1e-6, rtol=1e-5)


def test_the_pool_trains_through_the_reader_and_makes_a_plain_lora(trained, tmp_path):
    from peft import PeftModel

    result = json.loads((trained / "train_result.json").read_text())
    balance = result["regularizers"]["expert_balance"]
    assert balance["weight"] == 0.01 and balance["mean_term"] >= 1.0
    generator = Generator.open(trained)
    assert generator.cfg.kind == "pool" and generator.cfg.meta_tokens == 2  # one per tiny-model layer
    from safetensors.torch import load_file

    weights = load_file(str(trained / "generator.safetensors"))
    assert any(float(v.abs().max()) > 0 for k, v in weights.items() if k.startswith("lora_B"))
    built = get_generator("pool").build(  # the same start: the meta tokens moved, so the gradient
        GeneratorSetup(  # went back through the frozen reader
            config.load(SMOKE, POOL).loragen,
            "model:tiny-random",
            generator.cfg.training_descriptions,
            tiny_base(),
            "tiny-random",
        )
    )
    assert not torch.allclose(built.meta, weights["meta"])
    out = tmp_path / "adapter"
    assert (
        main(["loragen", "make", str(trained), "Write the letters in reverse order.", "--out", str(out)]) == 0
    )
    info = json.loads((out / "edgeadapt.json").read_text())
    assert info["generator_kind"] == "pool" and info["description"] == "Write the letters in reverse order."
    peft = PeftModel.from_pretrained(tiny_base(), str(out))
    assert peft.peft_config["default"].r == generator.cfg.rank
    one = generator.generate("Write the letters in reverse order.")[0]
    other = generator.generate("Reply with the first letter only.")[0]
    assert one.keys() == other.keys() and any(not torch.equal(one[k], other[k]) for k in one)


def train_again(*args, **kwargs):
    raise RuntimeError("trained again")


def test_resume_trains_again_only_a_generator_whose_own_settings_changed(trained, monkeypatch):
    from edgeadapt.studies import loragen

    monkeypatch.setattr(loragen, "train", train_again)
    runs = f"out_dir={trained.parents[2]}"
    lines: list[str] = []
    for edit in ([], ["loragen.hidden=8", "loragen.eval_rows=3"]):  # the hypernetwork's, the evaluation's
        cfg = config.load(SMOKE, [*POOL, runs, *edit])
        assert loragen.train_generator(
            cfg, loragen.collection_of(cfg), cfg.loragen.encoder, True, lines.append
        )
    assert all("already trained" in line for line in lines)
    kept = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    try:
        cfg = config.load(SMOKE, [*POOL, runs, "loragen.experts=3"])
        with pytest.raises(RuntimeError, match="trained again"):
            loragen.train_generator(cfg, loragen.collection_of(cfg), cfg.loragen.encoder, True, lines.append)
        assert any("trained under other settings (loragen.experts): training again" in line for line in lines)
        assert not (trained / "train_result.json").exists()  # neither the result nor checkpoints are resumed
    finally:
        for path, data in kept.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def test_a_pool_trained_in_bf16_multiplies_in_bf16_and_makes_an_fp32_lora(tmp_path, monkeypatch):
    """train.precision=bf16 reaches the generator's training: the edge model's products run in bf16, the
    generator's (the reader's meta tokens, the gate logits) and the generated adapter's path in fp32; the
    result and trained_under.json record bf16, the adapter it makes is fp32."""
    from safetensors.torch import load_file

    from edgeadapt.studies import loragen
    from edgeadapt.studies.loragen import TRAINED_UNDER, collection_of, train_generator

    cfg = config.load(SMOKE, [*POOL, f"out_dir={tmp_path}", "train.precision=bf16", "loragen.steps=2"])
    linear: dict[str, set[torch.dtype]] = {"edge": set(), "reader": set()}
    products: dict[str, set[torch.dtype]] = {}
    einsum, open_reader, readers = torch.einsum, pool.open_reader, []

    def record_einsum(equation, *operands):
        out = einsum(equation, *operands)
        if torch.is_grad_enabled():
            products.setdefault(equation, set()).add(out.dtype)
        return out

    def open_and_keep(*args):
        readers.append(open_reader(*args))  # the reader is its own copy of the tiny model
        return readers[-1]

    monkeypatch.setattr(torch, "einsum", record_einsum)
    monkeypatch.setattr(pool, "open_reader", open_and_keep)

    def record(module, args, output):
        if isinstance(module, torch.nn.Linear) and torch.is_grad_enabled():
            of_reader = any(module is m for r in readers for m in r.model.modules())
            linear["reader" if of_reader else "edge"].add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        folder = train_generator(cfg, collection_of(cfg), cfg.loragen.encoder, log=lambda line: None)
    finally:
        hook.remove()
    assert linear == {"edge": {torch.bfloat16}, "reader": {torch.float32}}  # the reader: meta tokens' pass
    assert products == {
        "nld,lkd->nlk": {torch.float32},
        "bti,bri->btr": {torch.float32},
        "btr,bor->bto": {torch.float32},
    }
    result = json.loads((folder / "train_result.json").read_text())
    assert result["precision"] == "bf16" and all(
        torch.isfinite(torch.tensor(p["domain_loss"])) for p in result["curve"]
    )
    under = json.loads((folder / TRAINED_UNDER).read_text())
    assert under["train.precision"] == "bf16" and under["generator_precision"] == "fp32"
    out = tmp_path / "adapter"
    assert (
        main(["loragen", "make", str(folder), "Write the letters in reverse order.", "--out", str(out)]) == 0
    )
    assert {t.dtype for t in load_file(str(out / "adapter_model.safetensors")).values()} == {torch.float32}
    # one trained before the generator stayed fp32 records bf16 alone: --resume trains it again
    del under["generator_precision"]
    (folder / TRAINED_UNDER).write_text(json.dumps(under))
    lines: list[str] = []
    monkeypatch.setattr(loragen, "train", train_again)
    with pytest.raises(RuntimeError, match="trained again"):
        train_generator(cfg, collection_of(cfg), cfg.loragen.encoder, True, lines.append)
    assert any("trained under other settings (generator_precision)" in line for line in lines)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"kind": "poool"}, "Unknown generator kind 'poool'. Did you mean 'pool'?"),
        ({"encoder": "model:gemma3-270m"}, "not fetched yet: run `edgeadapt models fetch gemma3-270m`"),
    ],
)
def test_make_refuses_an_unknown_design_or_a_missing_reader(
    trained, tmp_path, capsys, monkeypatch, edit, message
):
    from edgeadapt.models import registry

    fetched = registry.is_fetched
    monkeypatch.setattr(registry, "is_fetched", lambda name: name != "gemma3-270m" and fetched(name))
    folder = tmp_path / "generator"
    shutil.copytree(trained, folder)
    spec = json.loads((folder / "generator.json").read_text())
    (folder / "generator.json").write_text(json.dumps({**spec, **edit}))
    capsys.readouterr()
    assert main(["loragen", "make", str(folder), "Reverse it.", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_training_refuses_an_unknown_design_before_anything_trains(tmp_path, capsys):
    argv = ["loragen", "train", str(SMOKE), "loragen.kind=poll", f"out_dir={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "loragen.kind: Unknown generator kind 'poll'. Did you mean 'pool'?" in err
    assert not (tmp_path / "smoke-loragen" / "generators").exists()


def test_a_pool_reads_with_a_causal_model_or_a_sentence_embedder(tmp_path):
    cfg = config.load(SMOKE, POOL).loragen
    setup = GeneratorSetup(cfg, "bert:tiny", DESCRIPTIONS, tiny_base(), "tiny-random")
    with pytest.raises(
        UserError, match="reads with a causal model .* or the sentence embedder minilm \\(minilm-tok"
    ):
        get_generator("pool").build(setup)
    # over MiniLM: no meta tokens, every gate reads the description's embedding, kept from the start
    pool = get_generator("pool").build(
        GeneratorSetup(cfg, "minilm", DESCRIPTIONS, tiny_base(), "tiny-random")
    )
    assert pool.meta is None and pool.cfg.meta_tokens == 1 and set(pool.cfg.meta_of_layers()) == {0}
    with torch.no_grad():
        for b in pool.lora_B.values():
            b.normal_(std=0.1)
    pool.eval()
    read = pool.read(DESCRIPTIONS)
    assert read.shape == (3, 1, pool.cfg.reader_dim)
    for (a, b), (a2, b2) in zip(
        pool.for_descriptions(torch.tensor([2, 0])).values(), pool.weights(read[[2, 0]]).values()
    ):
        torch.testing.assert_close(a, a2)
        torch.testing.assert_close(b, b2)
    pool.save(tmp_path)
    again = Generator.open(tmp_path)
    torch.testing.assert_close(
        again.generate(DESCRIPTIONS[1])[0], Generator(tmp_path, pool, None).generate(DESCRIPTIONS[1])[0]
    )


def test_the_share_of_the_in_context_gain_counts_only_tasks_where_the_base_gains():
    from edgeadapt.studies.loragen_summary import in_context_gain, paired_gap

    def scores(**by_task):
        return {n: {"score": v} for n, v in by_task.items()}

    results = {
        "prompting": {"zero-shot": scores(a=0.2, b=0.5, c=0.1), "in-context": scores(a=0.6, b=0.4, c=0.3)},
        "generated": {"pool:x": {"tasks": scores(a=0.4, b=0.9, c=0.4)}},
    }
    gain = in_context_gain(results, "pool:x", ["a", "b", "c"])  # b: the description does not help the base
    assert gain["tasks_with_gain"] == 2 and gain["tasks"] == 3
    assert gain["per_task"] == pytest.approx({"a": 0.5, "c": 1.5})
    assert gain["mean_share"] == pytest.approx(1.0)
    gap = paired_gap({"a": 0.4, "b": 0.9, "c": 0.4}, {"a": 0.2, "b": 0.9, "c": 0.5})
    assert gap["gap_points"] == pytest.approx(10 / 3) and gap["wins_losses"] == [1, 1]
    assert gap["gap_stderr"] == pytest.approx(torch.tensor([20.0, 0.0, -10.0]).std().item() / 3**0.5)


def test_a_pool_adapter_ships_like_a_trained_lora(trained, tmp_path):
    from edgeadapt.deploy.build import verify

    out, package = tmp_path / "adapter", tmp_path / "reverse.eaupd"
    assert (
        main(["loragen", "make", str(trained), "Write the letters in reverse order.", "--out", str(out)]) == 0
    )
    assert main(["package", "export", str(out), "--out", str(package)]) == 0
    verified = verify(package, allow_unsigned=True)
    verified.opened.close()
    assert verified.manifest["description"] == "Write the letters in reverse order."
    assert verified.manifest["method"] == "lora" and verified.manifest["rank"] == 4  # 2 experts of rank 2
    device = tmp_path / "device"
    assert main(["device", "init", "--device-dir", str(device), "--model", "tiny-random"]) == 0
    assert main(["device", "apply", str(package), "--device-dir", str(device), "--allow-unsigned"]) == 0
    gguf = tmp_path / "a.gguf"
    assert (
        main(["export", "gguf", str(out), "--adapter", "--out", str(gguf)]) == 0 and gguf.stat().st_size > 0
    )
