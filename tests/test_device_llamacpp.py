"""The llama.cpp device runtime on the tiny model: a GGUF base, signed GGUF updates (a LoRA applied at run
time, a whole model for SFT), a library routed per request with every adapter named at its scale, the
recovery scale, the health check in a child process, and every refusal one line with the device unchanged.
The same update answers on both runtimes with the same greedy token ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeadapt import models
from edgeadapt.core.errors import UserError
from edgeadapt.deploy import build, device, library_packages
from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.llamacpp import LlamaCpp
from edgeadapt.routing.scar import ScarRouter
from edgeadapt.updates.library import Expert, Library
from tests.device_helpers import cli_apply, export, files_of, fresh_device, refused

PROMPTS = ["hello world, this is a test", "ICD-10-CM category of: fracture of the wrist"]


def llama_device(tmp_path: Path, name: str = "llama") -> Path:
    return fresh_device(tmp_path, name, runtime="llamacpp")


def package(opened, variant: str, out: Path, version: int, runtime: str = "llamacpp", **extra) -> Path:
    """An unsigned package, for a llama.cpp device unless `runtime` says otherwise."""
    return export(opened, variant, out, version, None, runtime=runtime, **extra)


def test_a_llamacpp_device_holds_a_gguf_base_and_no_checkpoint(tmp_path):
    dev = llama_device(tmp_path)
    assert (dev / "base" / "base.gguf").is_file() and not list((dev / "base").glob("*.safetensors"))
    info = json.loads((dev / "device.json").read_text())
    assert info["runtime"] == "llamacpp" and info["gguf_type"] == "f16"
    assert device.status(dev)["active"] is None


def test_llamacpp_is_the_default_runtime_and_what_it_cannot_run_names_the_fix(opened, tmp_path, capsys):
    """`device init` and `package export` with no --runtime make a llama.cpp device and a GGUF package that
    it takes; adaptq, and a --dtype only PyTorch files have, are refused naming --runtime transformers, and
    write nothing."""
    from edgeadapt.cli import main

    run, _ = opened
    dev, out = tmp_path / "dev", tmp_path / "lora.eaupd"
    assert main(["device", "init", "--device-dir", str(dev), "--model", "tiny-random"]) == 0
    assert json.loads((dev / "device.json").read_text())["runtime"] == "llamacpp"
    assert main(["package", "export", str(run.dir), "--method", "lora", "--out", str(out)]) == 0
    assert cli_apply(out, dev, "--allow-unsigned").returncode == 0
    active = device.status(dev)["active"]
    assert active["runtime"] == "llamacpp" and (dev / "updates" / active["id"] / "adapter.gguf").is_file()
    for extra in (["--method", "adaptq"], ["--method", "lora", "--dtype", "int8"]):
        capsys.readouterr()
        refused_out = tmp_path / "refused.eaupd"
        code = main(["package", "export", str(run.dir), *extra, "--out", str(refused_out)])
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "--runtime transformers" in lines[0], lines
        assert not refused_out.exists()


LOADED = """
import sys
from edgeadapt.cli import main
code = main(sys.argv[1:])
print([m for m in ("torch", "peft", "transformers") if m in sys.modules])
sys.exit(code)
"""


def test_a_llamacpp_device_holding_an_update_never_loads_torch(opened, tmp_path):
    """A llama.cpp device runs no PyTorch model: applying an update, answering with it, reading the state and
    rolling back import neither torch nor PEFT (each command paid 1.2 s for them before), and only applying
    and answering import transformers, for the tokenizer."""
    dev, pkg = llama_device(tmp_path), package(opened, "lora", tmp_path / "l.eaupd", 1)
    commands = {
        "apply": [str(pkg), "--allow-unsigned"],
        "generate": ["hello world"],
        "status": [],
        "rollback": [],
    }
    for action, extra in commands.items():
        done = subprocess.run(
            [sys.executable, "-c", LOADED, "device", action, "--device-dir", str(dev), *extra],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        loaded = done.stdout.splitlines()[-1]
        assert loaded == ("['transformers']" if action in ("apply", "generate") else "[]"), (action, loaded)
    assert device.status(dev)["active"] is None


@pytest.mark.parametrize("variant", ["lora", "sft"])
def test_an_update_answers_on_llamacpp_as_on_transformers(opened, tmp_path, variant):
    llama, torch_dev = llama_device(tmp_path), tmp_path / "torch"
    device.init(torch_dev, models.resolve("tiny-random"), runtime="transformers")
    device.apply(package(opened, variant, tmp_path / "l.eaupd", 1), llama, None, allow_unsigned=True)
    device.apply(
        package(opened, variant, tmp_path / "t.eaupd", 1, "transformers"),
        torch_dev,
        None,
        allow_unsigned=True,
    )
    kind = device.status(llama)["active"]
    assert kind["runtime"] == "llamacpp" and kind["variant"] == variant
    name = "adapter.gguf" if variant == "lora" else "model.gguf"
    assert (llama / "updates" / kind["id"] / name).is_file()
    for prompt in PROMPTS:
        assert device.generate(llama, prompt, 8)[0] == device.generate(torch_dev, prompt, 8)[0], prompt


def test_a_package_for_the_other_runtime_or_base_is_one_line_and_changes_nothing(opened, tmp_path):
    llama = llama_device(tmp_path)
    before = files_of(llama)
    refused(
        cli_apply(
            package(opened, "lora", tmp_path / "t.eaupd", 1, "transformers"), llama, "--allow-unsigned"
        ),
        "this device runs llamacpp",
    )
    torch_dev = tmp_path / "torch"
    device.init(torch_dev, models.resolve("tiny-random"), runtime="transformers")
    refused(
        cli_apply(package(opened, "lora", tmp_path / "l.eaupd", 1), torch_dev, "--allow-unsigned"),
        "this device runs transformers",
    )
    good = package(opened, "lora", tmp_path / "s.eaupd", 2)
    refused(cli_apply(good, llama, "--allow-unsigned", "--scale", "3"), "a scale in [0, 2]")
    with pytest.raises(PackageError, match="manifest scale must be in"):  # our exporter never writes one
        package(opened, "lora", tmp_path / "x.eaupd", 3, scale=2.5)
    assert files_of(llama) == before
    with pytest.raises(UserError, match="cannot run it"):
        package(opened, "adaptq", tmp_path / "a.eaupd", 3)


def test_a_gguf_llamacpp_cannot_load_never_becomes_active(opened, keyring, tmp_path):
    from edgeadapt.deploy.runtimes import llamacpp_runtime

    good = package(opened, "lora", tmp_path / "g.eaupd", 1)
    verified = build.verify(good, allow_unsigned=True)
    folder = tmp_path / "x"
    build.extract(verified, folder)
    verified.opened.close()
    (folder / "adapter.gguf").write_bytes((folder / "adapter.gguf").read_bytes()[:200])  # cut short
    dev = llama_device(tmp_path)
    with pytest.raises(PackageError, match="refused before activation"):
        llamacpp_runtime.check(folder, verified.manifest, dev)
    spec = llamacpp_runtime.job(tmp_path / "none", {"gguf": {"kind": "model"}}, dev / "base")
    spec["update"]["model"] = str(tmp_path / "garbage.gguf")
    (tmp_path / "garbage.gguf").write_bytes(
        b"GGUF" + bytes(100)
    )  # past the Python checks: llama.cpp's loader
    with pytest.raises(PackageError, match="llama.cpp (crashed|failed)"):
        llamacpp_runtime.run_check(spec)
    assert device.status(dev)["active"] is None


@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0])
def test_a_lora_at_scale_s_answers_as_the_transformers_model_scaled_to_s(opened, tmp_path, scale):
    from edgeadapt.deploy.gguf import export_run
    from edgeadapt.updates import lora

    run, _ = opened
    base = export_run(str(run.dir), "base", tmp_path / "base.gguf", "f32")["path"]
    adapter = export_run(str(run.dir), "lora", tmp_path / "a.gguf", adapter=True)["path"]
    tuned = run.open("lora", torch.float32, merge=False).model
    ids = run.tokenizer(PROMPTS[0])["input_ids"]
    with lora.scaled(tuned, None, scale) as model, torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None
        )
        expected = out[0, len(ids) :].tolist()
        logits = model(torch.tensor([ids])).logits[0, -1]
    with LlamaCpp(Path(base), Path(adapter), scale=scale) as llama:
        got, logprobs = llama.greedy(ids, 6)
    assert got == expected
    assert logprobs[0] == pytest.approx(float(torch.log_softmax(logits, -1)[expected[0]]), abs=1e-3)


def test_the_recommended_scale_is_signed_shown_and_overridden_by_the_operator(opened, keyring, tmp_path):
    dev = llama_device(tmp_path)
    signed = package(opened, "lora", tmp_path / "s.eaupd", 1, scale=0.5)
    assert build.verify(signed, allow_unsigned=True).manifest["scale"] == 0.5
    device.apply(signed, dev, None, allow_unsigned=True)
    assert device.status(dev)["active"]["scale"] == 0.5
    device.apply(
        package(opened, "lora", tmp_path / "t.eaupd", 2, scale=0.5),
        dev,
        None,
        allow_unsigned=True,
        scale=0.25,
    )
    assert device.status(dev)["active"]["scale"] == 0.25


def small_library(
    opened, folder: Path, layer: int = 1, experts=(("alpha", "lora"), ("beta", "hlora"))
) -> Path:
    run, _ = opened
    library = Library.create(folder, "tiny-random", models.resolve("tiny-random"))
    for name, variant in experts:
        library.add(name, Expert(name, name, "lora", 8), run.update_dir(variant))
    torch.manual_seed(0)
    names = [name for name, _ in experts]
    router = ScarRouter(
        names, torch.randn(len(names) + 1, 64), torch.zeros(64), torch.ones(64), layer, 0.1, 0.34, 2
    )
    library.router, library.router_id = router.save(folder), router.identity()
    library.save()
    return folder


def test_a_routed_library_keeps_the_base_route_byte_identical_to_the_base_gguf(opened, tmp_path):
    dev = llama_device(tmp_path)
    lib = small_library(opened, tmp_path / "lib")
    out = tmp_path / "lib.eaupd"
    library_packages.export_library(lib, out, release=build.release(1), runtime="llamacpp")
    device.apply(out, dev, None, allow_unsigned=True)
    active = dev / "updates" / device.status(dev)["active"]["id"]
    experts = [active / "experts" / n / "adapter.gguf" for n in ("alpha", "beta")]
    ids = models.load_tokenizer(dev / "base")(PROMPTS[1])["input_ids"]
    with LlamaCpp(dev / "base" / "base.gguf") as plain:
        base_ids, base_lps = plain.greedy(ids, 6)
    with LlamaCpp(dev / "base" / "base.gguf", experts) as routed:
        for scales in ([0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]):
            got_ids, got_lps = routed.greedy(ids, 6, scales)
            if scales == [0.0, 0.0]:  # the base route, between expert routes: exactly the base GGUF
                assert (got_ids, got_lps) == (base_ids, base_lps)
    answer, route, *_ = device.generate(dev, PROMPTS[1], 4)
    assert route is not None and set(route.experts) <= {"alpha", "beta"}


def test_an_answer_on_llamacpp_does_not_depend_on_what_was_asked_before(opened, tmp_path):
    """llama.cpp's server would reuse the cached prefix a prompt shares with earlier prompts (with it, this
    sequence parts the third and the sixth answers' log-probabilities from their own; on the router study's
    library 9 of 343 base-routed answers parted from the plain base GGUF's). Every request is computed
    whole: a prompt at given scales answers as it does when asked first."""
    dev = llama_device(tmp_path)
    lib = small_library(opened, tmp_path / "lib")
    library_packages.export_library(lib, tmp_path / "l.eaupd", release=build.release(1), runtime="llamacpp")
    device.apply(tmp_path / "l.eaupd", dev, None, allow_unsigned=True)
    active = dev / "updates" / device.status(dev)["active"]["id"]
    experts = [active / "experts" / n / "adapter.gguf" for n in ("alpha", "beta")]
    tokenizer = models.load_tokenizer(dev / "base")
    clinic = "ICD-10-CM category of a fracture of the lower end of the radius, seen in clinic, case " * 3
    paris = "What is the capital of France and why is it famous for its art museums? " * 3
    asked = [  # prompts sharing long prefixes, on expert and base routes in turn
        (f"{clinic} 1", [1.0, 0.0]),
        (paris, [0.0, 0.0]),
        (f"{clinic} 2", [0.0, 0.0]),
        (f"{paris} x", [0.0, 1.0]),
        (f"{clinic} 3", [0.0, 0.0]),
        (f"{paris} y", [0.0, 0.0]),
    ]
    ids = [tokenizer(text)["input_ids"] for text, _ in asked]
    first = []
    for prompt, (_, scales) in zip(ids, asked):  # each asked first, in a server of its own
        with LlamaCpp(dev / "base" / "base.gguf", experts) as alone:
            first.append(alone.greedy(prompt, 6, scales))
    with LlamaCpp(dev / "base" / "base.gguf", experts) as served:
        assert [served.greedy(prompt, 6, scales) for prompt, (_, scales) in zip(ids, asked)] == first


def test_an_expert_joins_the_library_a_llamacpp_device_holds(opened, tmp_path):
    dev = llama_device(tmp_path)
    held = tmp_path / "lib.eaupd"
    library_packages.export_library(
        small_library(opened, tmp_path / "lib"), held, release=build.release(1), runtime="llamacpp"
    )
    device.apply(held, dev, None, allow_unsigned=True)
    # a library of the same router settings (its keys comparable) that has one more expert
    more = small_library(
        opened, tmp_path / "more", experts=(("alpha", "lora"), ("beta", "hlora"), ("gamma", "lora"))
    )
    library_packages.export_expert(
        more, "gamma", tmp_path / "p.eaupd", release=build.release(2), runtime="transformers"
    )
    with pytest.raises(
        PackageError, match="a package for the transformers runtime; this device runs llamacpp"
    ):
        device.apply(tmp_path / "p.eaupd", dev, None, allow_unsigned=True)
    joined = library_packages.export_expert(
        more, "gamma", tmp_path / "g.eaupd", release=build.release(2), runtime="llamacpp"
    )
    assert joined["manifest"]["runtime"] == "llamacpp"
    device.apply(tmp_path / "g.eaupd", dev, None, allow_unsigned=True)
    active = dev / "updates" / device.status(dev)["active"]["id"]
    assert sorted(p.name for p in (active / "experts" / "gamma").iterdir()) == ["adapter.gguf"]
    assert json.loads((active / "router.json").read_text())["experts"] == ["alpha", "beta", "gamma"]
    answer, route, *_ = device.generate(dev, PROMPTS[1], 4)
    assert route is not None and set(route.scores) == {"alpha", "beta", "gamma", "null"}
    # an expert whose update a GGUF LoRA cannot hold (DoRA's magnitudes) is refused at export, not dropped
    dora = small_library(opened, tmp_path / "dora", experts=(("alpha", "lora"), ("delta", "dora")))
    with pytest.raises(UserError, match="DoRA adapter's magnitude vectors have no GGUF LoRA form"):
        library_packages.export_library(
            dora, tmp_path / "d.eaupd", release=build.release(3), runtime="llamacpp"
        )


def test_a_library_whose_router_needs_a_layer_the_device_cannot_compute_is_refused(opened, tmp_path):
    dev = llama_device(tmp_path)
    lib = small_library(opened, tmp_path / "lib", layer=2)
    out = tmp_path / "lib.eaupd"
    library_packages.export_library(lib, out, release=build.release(1), runtime="llamacpp")
    before = files_of(dev)
    refused(cli_apply(out, dev, "--allow-unsigned"), "layer 0 or 1")
    assert files_of(dev) == before


def test_the_router_reads_the_same_queries_from_the_gguf_as_from_the_model(opened, tmp_path):
    from edgeadapt.deploy.gguf import export_run
    from edgeadapt.deploy.gguf_queries import GgufQueries
    from edgeadapt.routing.queries import prompt_queries

    run, _ = opened
    gguf = Path(export_run(str(run.dir), "base", tmp_path / "b.gguf", "f32")["path"])
    model = run.load_model(torch.float32)
    prompts = [run.tokenizer(p)["input_ids"] for p in PROMPTS]
    for layer in (0, 1):
        torch.testing.assert_close(
            GgufQueries(gguf, layer)(prompts),
            prompt_queries(model, run.tokenizer, prompts, layer),
            atol=1e-5,
            rtol=1e-4,
        )


def apply_process(package_file: Path, dev: Path, crash: str | None = None):
    import os
    import subprocess
    import sys

    # TMPDIR beside the device: a SIGKILL runs no cleanup, and what it leaves is looked for there.
    env = {**os.environ, "TMPDIR": str(dev.parent), **({build.CRASH_ENV: crash} if crash else {})}
    cmd = [
        sys.executable,
        "-m",
        "edgeadapt.cli",
        "device",
        "apply",
        str(package_file),
        "--device-dir",
        str(dev),
        "--allow-unsigned",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("point", ["extracted", "before_switch", "switched"])
def test_a_killed_llamacpp_apply_leaves_the_old_or_the_new_update_complete(opened, tmp_path, point):
    dev = llama_device(tmp_path)
    device.apply(package(opened, "lora", tmp_path / "v1.eaupd", 1), dev, None, allow_unsigned=True)
    v2 = package(opened, "sft", tmp_path / "v2.eaupd", 2)
    killed = apply_process(v2, dev, point)
    assert killed.wait(timeout=600) == -9, killed.stderr.read()[-2000:]
    state = device.status(dev)  # re-hashes every installed file
    assert state["active"]["variant"] == ("sft" if point == "switched" else "lora")
    if point != "switched":
        assert apply_process(v2, dev).wait(timeout=600) == 0
        assert sorted(p.name for p in dev.parent.glob("edgeadapt-*")) == []  # the retry removed the kill's
    assert device.status(dev)["active"]["variant"] == "sft" and device.status(dev)["incomplete_staging"] == []


def test_two_llamacpp_applies_at_once_land_in_version_order_or_the_lower_is_refused(opened, tmp_path):
    dev = llama_device(tmp_path)
    v1, v2 = (
        package(opened, "lora", tmp_path / "v1.eaupd", 1),
        package(opened, "sft", tmp_path / "v2.eaupd", 2),
    )
    procs = [apply_process(v1, dev), apply_process(v2, dev)]
    codes = [p.wait(timeout=600) for p in procs]
    assert device.status(dev)["active"]["variant"] == "sft" and device.status(dev)["highest"] == {
        "default": 2
    }
    assert codes in ([0, 0], [2, 0]), [p.stderr.read()[-500:] for p in procs]


def test_every_llamacpp_request_computes_its_prompt_whole():
    """With llama.cpp's prompt cache, 9 of 343 base-routed answers on the router study's library parted from
    the plain base GGUF's (bench/device_library.py); every request turns it off, scored texts past their
    first token aside (each extends its own prefix)."""
    from types import SimpleNamespace

    served = SimpleNamespace(adapters=[Path("a.gguf")], scales=[0.0])
    body = LlamaCpp.request(served, [1, 2, 3], 4, [1.0])
    assert body["cache_prompt"] is False and body["lora"] == [{"id": 0, "scale": 1.0}]


@pytest.mark.parametrize("runtime", ["llamacpp", "transformers"])
def test_explain_shows_the_speed_per_answer_token_apart_from_the_prompt_where_the_runtime_times_it(
    tmp_path, capsys, runtime
):
    """llama.cpp times the prompt's processing and the answer's tokens apart: `--explain` shows both, the
    prompt counted in tokens as the device's chat template makes it; transformers says its figure includes
    the prompt."""
    import re

    from edgeadapt.cli import main
    from edgeadapt.data.format import prompt_ids
    from edgeadapt.models.loading import load_tokenizer

    dev = fresh_device(tmp_path, runtime=runtime)
    capsys.readouterr()
    argv = ["device", "generate", "--device-dir", str(dev), "--explain", "--max-new-tokens", "5", PROMPTS[1]]
    assert main(argv) == 0
    speed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("speed: ")]
    assert len(speed) == 1, speed
    if runtime == "transformers":
        assert "the prompt's processing included (transformers)" in speed[0]
        return
    found = re.fullmatch(
        r"speed: ([\d.]+) ms per answer token \((\d+) tokens\); the prompt, (\d+) tokens, in (\d+) ms; "
        r"([\d.]+) ms per answer token in all \(llamacpp\)",
        speed[0],
    )
    assert found, speed[0]
    per_token, answer_tokens, prompt_tokens, _, in_all = found.groups()
    tokenizer = load_tokenizer(dev / "base")
    assert int(prompt_tokens) == len(prompt_ids(tokenizer, [{"role": "user", "content": PROMPTS[1]}]))
    assert 1 <= int(answer_tokens) <= 5
    assert float(per_token) <= float(in_all)  # the prompt's time is part of the wall time, not of a token's
