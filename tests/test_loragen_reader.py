"""The pool's attending reader (`loragen.encoder: minilm-tokens`): learned queries over MiniLM's token states,
and bench/loragen_reader_attention.py, which says what a trained one reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeadapt.core import config
from edgeadapt.loragen.make import Generator
from edgeadapt.loragen.registry import GeneratorSetup, get_generator

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "smoke-loragen.yaml"
ATTENDING = ["loragen.kind=pool", "loragen.encoder=minilm-tokens", "loragen.compare_encoders=[]"]
DESCRIPTIONS = ["Reverse the list.", "Give the first element of the list, please.", "Sort the numbers now."]


def tiny_base():
    from edgeadapt import models

    return models.load(models.resolve("tiny-random"), device=torch.device("cpu"))[0].eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The smoke study's attending pool, trained (no baselines): the run's out_dir."""
    from edgeadapt.studies.loragen import collection_of, train_generator

    out_dir = tmp_path_factory.mktemp("attending-runs")
    cfg = config.load(SMOKE, [*ATTENDING, f"out_dir={out_dir}"])
    train_generator(cfg, collection_of(cfg), cfg.loragen.encoder, log=lambda line: None)
    return out_dir


def test_the_attending_reader_weighs_minilm_token_states_by_learned_queries(tmp_path):
    cfg = config.load(SMOKE, ATTENDING[:1]).loragen
    pool = get_generator("pool").build(
        GeneratorSetup(cfg, "minilm-tokens", DESCRIPTIONS, tiny_base(), "tiny-random")
    )
    layers = pool.cfg.layers
    assert pool.meta.shape == (layers, pool.cfg.reader_dim)
    assert pool.cfg.meta_of_layers() == list(range(layers))
    states, mask = pool.reader.tokens(DESCRIPTIONS)
    assert mask.sum(1).tolist() == [len(pool.token_ids(t)[0]) for t in DESCRIPTIONS] != [states.shape[1]] * 3
    with torch.no_grad():
        pool.meta.zero_()  # no preference: every query reads the plain mean of the description's tokens
        read = pool.read(DESCRIPTIONS)
        first = states[0, : int(mask[0].sum())].mean(0)
        torch.testing.assert_close(read[0], first.expand(layers, -1))
        # a query along one token's key reads that token; padding never takes weight (read alone = in a batch)
        keys = torch.nn.functional.layer_norm(states, states.shape[-1:])
        pool.meta[1] = 50 * keys[1, 2]
        read = pool.read(DESCRIPTIONS)
        torch.testing.assert_close(read[1, 1], states[1, 2], atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(pool.read([DESCRIPTIONS[0]])[0], read[0], atol=1e-5, rtol=1e-5)
        for b in pool.lora_B.values():
            b.normal_(std=0.1)
    # training reads the kept token states exactly as making an adapter reads the text, and learns the queries
    for (a, b), (a2, b2) in zip(
        pool.for_descriptions(torch.tensor([2, 0])).values(), pool.weights(read[[2, 0]]).values()
    ):
        torch.testing.assert_close(a, a2)
        torch.testing.assert_close(b, b2)
    sum(b.sum() for _, b in pool.for_descriptions(torch.tensor([0, 1])).values()).backward()
    assert pool.meta.grad is not None and pool.meta.grad.abs().sum() > 0
    pool.save(tmp_path)
    again = Generator.open(tmp_path)
    torch.testing.assert_close(
        again.generate(DESCRIPTIONS[1])[0],
        Generator(tmp_path, pool.eval(), None).generate(DESCRIPTIONS[1])[0],
    )


def test_the_reader_attention_bench_reads_what_the_queries_weigh(trained, tmp_path):
    """bench/loragen_reader_attention.py: with no preference the naming words get the share a mean gives them,
    a query along a naming word's key gives them all; on a trained pool every seen task with an untrained
    paraphrase is reported; another run's settings are one error line, exit 2."""
    import importlib.util

    from edgeadapt.studies.loragen import open_trained

    spec = importlib.util.spec_from_file_location("attention", ROOT / "bench" / "loragen_reader_attention.py")
    attention = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(attention)
    naming_share = attention.naming_share

    cfg = config.load(SMOKE, [*ATTENDING, f"out_dir={trained}"])
    net = open_trained(cfg, "minilm-tokens").net
    text = "Reverse the list."
    ids = net.reader.tokenizer(text)["input_ids"]
    frame = set(ids) - {ids[1]}  # "reverse" the one naming word
    with torch.no_grad():
        net.meta.zero_()
        assert naming_share(net, text, frame)["attended"] == pytest.approx(1 / len(ids))
        assert naming_share(net, text, frame)["mean"] == pytest.approx(1 / len(ids))
        states, _ = net.reader.tokens([text])
        net.meta[:] = 50 * torch.nn.functional.layer_norm(states[0, 1], states.shape[-1:])
        share = naming_share(net, text, frame)
    assert share["attended"] > 0.99 and share["top"][0] == "reverse"

    def bench(*more: str) -> subprocess.CompletedProcess:
        script = str(ROOT / "bench" / "loragen_reader_attention.py")
        args = [str(SMOKE), "minilm-tokens", *ATTENDING, f"out_dir={trained}", *more]
        return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)

    done = bench("--out", str(tmp_path / "a.json"))
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["families"]["all"]["tasks"] == len(record["per_task"]) > 0
    for row in record["per_task"].values():
        assert (
            0 <= row["untrained"]["attended"] <= 1
            and len(row["trained"]) == 1 + cfg.loragen.train_paraphrases
        )
        assert set(row["recognition"]) == {"attended", "mean"}
    assert "own nearest" in done.stdout
    refused = bench("loragen.rank=3", "--out", str(tmp_path / "no.json"))
    assert refused.returncode == 2 and "trained under other settings (loragen.rank)" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "no.json").exists()
