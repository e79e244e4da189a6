"""The command line: every kind of bad input gives one `error:` line and exit code 2; the smoke run works."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeadapt.cli import main

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def run_cli(*args, cwd=None):
    """Run the real console entry point in a subprocess: exit code and stderr exactly as a user sees them."""
    return subprocess.run(
        [sys.executable, "-m", "edgeadapt.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def run_in_process(monkeypatch, cwd: Path, *args) -> subprocess.CompletedProcess:
    import contextlib
    import io

    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def write_domain(folder: Path, train_lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("\n".join(train_lines) + "\n")
    for split in ("val", "test"):
        (folder / f"{split}.jsonl").write_text('{"prompt": "q", "response": "a"}\n')
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", SMOKE, "methods.lorra={}"], "Unknown method 'lorra'. Did you mean 'lora'"),
        (["compare", SMOKE, "model.name=smollm3"], "Did you mean 'smollm2-135m-instruct'"),
        (
            ["compare", SMOKE, "model.name=gemma3-270m"],
            "not fetched yet: run `edgeadapt models fetch gemma3-270m`",
        ),
        (["compare", SMOKE, "methods.lora.rank=0"], "methods.lora.rank: must be between 1"),
        (
            ["compare", SMOKE, "train.setps=3"],
            "Override 'train.setps=3': train has no key 'setps'. Did you mean 'steps'",
        ),
        (
            ["compare", SMOKE, "foo.bar=1"],
            "Override 'foo.bar=1': top level has no key 'foo'. Keys in top level: name",
        ),
        (["compare", SMOKE, "train.steps=-1"], "command line (train.steps=-1"),
        (
            ["train", SMOKE, "--method", "lroa"],
            "Method 'lroa' is not in this config's methods. Did you mean 'lora'",
        ),
        (["compare", "no/such.yaml"], "Config file not found"),
        (["models", "fetch", "smolm2"], "Did you mean 'smollm2-135m-instruct'"),
        (["data", "build", "legl"], "Did you mean 'legal'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, monkeypatch):
    extra = [f"out_dir={tmp_path}"] if args[0] == "compare" else []
    # The first case through the console entry point in a subprocess, the rest in this process (faster;
    # an exception escaping main() would fail the test as a traceback would show).
    result = (
        run_cli(*args, *extra, cwd=tmp_path)
        if "lorra" in str(args)
        else run_in_process(monkeypatch, tmp_path, *args, *extra)
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_malformed_jsonl_names_file_and_line(tmp_path):
    domain = write_domain(
        tmp_path / "dom", ['{"prompt": "q", "response": "a"}', '{"prompt": "q", "response": ']
    )
    result = run_cli("compare", SMOKE, f"data.domain={domain}", f"out_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{domain / 'train.jsonl'}:2: not valid JSON" in result.stderr
    assert not list(tmp_path.rglob("results.json"))


def test_empty_dataset_is_rejected(tmp_path):
    domain = write_domain(tmp_path / "dom", [""])
    result = run_cli("compare", SMOKE, f"data.domain={domain}", f"out_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2 and "empty" in result.stderr


def test_a_gguf_file_is_refused_with_the_convert_command(tmp_path, capsys):
    gguf_file = tmp_path / "model.gguf"
    gguf_file.write_bytes(b"GGUF")
    assert main(["compare", str(SMOKE), f"model.name={gguf_file}", f"out_dir={tmp_path}"]) == 2
    assert "edgeadapt models convert" in capsys.readouterr().err


def test_methods_and_models_list(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("sft", "lora", "hlora"))
    assert main(["models", "list"]) == 0
    assert "smollm2-135m-instruct" in capsys.readouterr().out


def test_eval_before_train_says_what_to_run(tmp_path, capsys):
    code = main(["eval", str(SMOKE), f"out_dir={tmp_path}"])
    assert code == 2
    assert "has not been trained" in capsys.readouterr().err


def test_smoke_compare_writes_results_and_reports(smoke_run):
    results = json.loads((smoke_run / "results.json").read_text())
    assert set(results["methods"]) == {"sft", "lora", "hlora", "adaptq", "qlora", "dora", "pissa"}
    base = results["base"]
    assert 1 < base["domain_ppl"] and 1 < base["general_ppl"] < 1000  # a random 259-token model: ~vocab
    for key in ("domain_accuracy", "on_topic_rate", "domain_leakage", "fact_recall"):
        assert 0 <= base[key] <= 1, key
    assert base["params"] == 90_624 and base["full_model_bytes"] == {"fp32": 4 * 90_624, "bf16": 2 * 90_624}
    for name, m in results["methods"].items():
        # Every relative figure is the one its definition gives from the absolute ones.
        assert m["general_degradation_pct"] == pytest.approx(
            (m["general_ppl"] - base["general_ppl"]) / base["general_ppl"] * 100
        )
        if base["on_topic_rate"] > 0:
            assert m["topic_retention"] == pytest.approx(m["on_topic_rate"] / base["on_topic_rate"])
        assert 0 <= m["domain_leakage"] <= 1
        assert 0 < m["trainable_params"] <= base["params"]
        assert m["trainable_pct"] == pytest.approx(100 * m["trainable_params"] / base["params"])
        assert m["update_ratio"] == pytest.approx(
            m["update_bytes"]["fp32"] / base["full_model_bytes"]["fp32"]
        )
        assert m["steps"] == 4 and m["lr"] == 1e-3 and m["options"]["method"] == name
        assert [p["step"] for p in m["curve"] if "general_loss" in p] == [0, 2, 4], name
        assert m["update_bytes"]["bf16"] * 2 == m["update_bytes"]["fp32"]
        assert [p["step"] for p in m["curve"]][0] == 0 and "general_loss" in m["curve"][-1]
    assert results["methods"]["sft"]["update_ratio"] == pytest.approx(1.0)
    assert results["methods"]["lora"]["update_ratio"] < 1.0
    # evaluated merged, as a device runs it: the adapter's own weights are folded in, not held beside the base
    assert results["methods"]["lora"]["weight_bytes"] == results["base"]["weight_bytes"]
    adaptq = results["methods"]["adaptq"]
    assert adaptq["selected_layers"] and len(adaptq["layer_scores"]) == 2
    assert adaptq["weight_bytes"] < results["base"]["weight_bytes"]  # frozen block in 4 bit
    assert all(m["peak_rss_bytes"] > 0 for m in results["methods"].values())
    assert results["config"]["name"] == "smoke"
    assert set(results["versions"]) >= {"torch", "transformers", "peft"}
    html = (smoke_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # curves, trade-off, sizes, block scores
    assert "<h2>ADAPT-Q</h2>" in html
    report = (smoke_run / "report.md").read_text()
    assert "| hlora |" in report and "| adaptq | activation | 0.5 | 4 | full |" in report


def copied_run(smoke_run: Path, tmp_path: Path) -> Path:
    """A copy of the session's smoke run (shared with other test files, so never changed in place)."""
    run = tmp_path / "runs" / "smoke"
    shutil.copytree(smoke_run, run)
    return run


def test_resume_reuses_trained_methods_and_report_rebuilds(smoke_run, tmp_path, capsys):
    run = copied_run(smoke_run, tmp_path)
    assert main(["compare", str(SMOKE), f"out_dir={run.parent}", "--resume"]) == 0
    assert "already trained" in capsys.readouterr().out
    (run / "report.md").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.md").is_file()


def test_a_failed_evaluation_leaves_the_earlier_results_as_they_were(smoke_run, tmp_path, capsys):
    # Same trained run, but too little general text for one perplexity chunk: evaluation fails part-way,
    # and the earlier results.json (which says under which settings it was measured) stays untouched.
    run = copied_run(smoke_run, tmp_path)
    before = (run / "results.json").read_bytes()
    general = tmp_path / "gen"
    general.mkdir()
    (general / "text.jsonl").write_text('{"text": "too short"}\n')
    (general / "probes.jsonl").write_text('{"prompt": "q", "topic": "t"}\n')
    code = main(["eval", str(SMOKE), f"out_dir={run.parent}", f"data.general={general}"])
    assert code == 2 and "Not enough general text" in capsys.readouterr().err
    assert (run / "results.json").read_bytes() == before


def test_evaluating_one_method_keeps_every_other_result_and_section(smoke_run, tmp_path, capsys):
    run = copied_run(smoke_run, tmp_path)
    assert main(["recover", str(run), "recovery.scales=[0, 1]"]) == 0
    before = json.loads((run / "results.json").read_text())
    assert main(["eval", str(SMOKE), f"out_dir={run.parent}", "--method", "lora"]) == 0
    after = json.loads((run / "results.json").read_text())
    assert list(after["methods"]) == list(before["methods"])  # the config's order, lora among the others
    for name in before["methods"]:
        if name != "lora":
            assert after["methods"][name] == before["methods"][name], name
    assert after["recovery"] == before["recovery"]
    assert "| sft |" in (run / "report.md").read_text()


def test_evaluating_one_method_under_other_settings_is_refused_with_nothing_changed(
    smoke_run, tmp_path, capsys
):
    run = copied_run(smoke_run, tmp_path)
    before = (run / "results.json").read_bytes()
    code = main(["eval", str(SMOKE), f"out_dir={run.parent}", "--method", "lora", "eval.max_new_tokens=3"])
    err = capsys.readouterr().err
    assert code == 2 and "measured under other model, data or eval settings" in err and "sft" in err
    assert (run / "results.json").read_bytes() == before


def test_retraining_a_method_removes_only_what_no_longer_describes_it(smoke_run, tmp_path, capsys):
    run = copied_run(smoke_run, tmp_path)
    assert main(["train", str(SMOKE), f"out_dir={run.parent}", "--method", "lora", "train.seed=1"]) == 0
    assert "results.json no longer holds lora's results" in capsys.readouterr().out
    after = json.loads((run / "results.json").read_text())
    assert "lora" not in after["methods"] and "sft" in after["methods"]


def test_malformed_probe_names_file_and_line(tmp_path, capsys):
    general = tmp_path / "gen"
    general.mkdir()
    (general / "text.jsonl").write_text('{"text": "some prose"}\n')
    (general / "probes.jsonl").write_text('{"prompt": "q"}\n')
    code = main(["eval", str(SMOKE), f"out_dir={tmp_path}", f"data.general={general}"])
    assert code == 2 and "probes.jsonl:1: a probe needs a non-empty string 'topic'" in capsys.readouterr().err


def test_resume_continues_an_interrupted_method_from_its_checkpoint(tmp_path, capsys):
    args = [str(SMOKE), f"out_dir={tmp_path}", "train.save_every=2", "--method", "lora"]
    assert main(["train", *args]) == 0
    method_dir = tmp_path / "smoke" / "lora"
    # no checkpoint at the last step (the update is what it saves); the one before it is kept
    assert [p.name for p in (method_dir / "checkpoints").iterdir()] == ["checkpoint-2"]
    # the checkpoint carries the seconds trained up to it, inside the Trainer's own state file
    state_file = method_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    clock = state["stateful_callbacks"]["TrainingClock"]["attributes"]
    first = json.loads((method_dir / "train_result.json").read_text())
    assert 0 < clock["seconds"] < first["seconds"]
    clock["seconds"] = 1000.0  # as if the first two steps had taken that long: the resumed run must add it
    state_file.write_text(json.dumps(state))
    (method_dir / "train_result.json").unlink()  # as if the run had died while saving its update
    capsys.readouterr()
    assert main(["train", *args, "train.steps=6", "--resume"]) == 0
    assert "resum" in capsys.readouterr().out.lower()
    result = json.loads((method_dir / "train_result.json").read_text())
    assert result["steps"] == 6
    assert [p["step"] for p in result["curve"] if "general_loss" in p][-1] == 6
    assert 1000 < result["seconds"] < 1000 + 300  # the time before the checkpoint, and the resumed steps
    # A checkpoint written before the clock existed: resumed all the same, and the shortfall said
    state_file = method_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["stateful_callbacks"]["TrainingClock"]
    state_file.write_text(json.dumps(state))
    (method_dir / "train_result.json").unlink()
    assert main(["train", *args, "train.steps=6", "--resume"]) == 0
    assert "no clock reading" in capsys.readouterr().out
    assert json.loads((method_dir / "train_result.json").read_text())["seconds"] < 1000


def test_a_variant_trains_the_same_whatever_trained_before_it(smoke_run, tmp_path):
    """The adapter's initial weights come from train.seed, not from what the process drew before."""
    from safetensors.torch import load_file

    assert main(["train", str(SMOKE), f"out_dir={tmp_path}", "--method", "lora"]) == 0
    alone = load_file(tmp_path / "smoke" / "lora" / "update" / "adapter_model.safetensors")
    after_sft = load_file(smoke_run / "lora" / "update" / "adapter_model.safetensors")
    assert alone.keys() == after_sft.keys()
    assert all(torch.equal(alone[k], after_sft[k]) for k in alone)


def test_training_runs_under_torchrun_with_two_processes(smoke_run, tmp_path):
    """Scale-out comes from the Trainer's DDP: two CPU processes (gloo) train one update; rank 0 saves it."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--nproc-per-node=2",
        "-m",
        "edgeadapt.cli",
        "train",
        str(SMOKE),
        "--method",
        "lora",
        f"out_dir={tmp_path}",
        "train.steps=2",
        "train.threads=1",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on cpu x 2 processes" in done.stdout  # the launch made a world of two
    assert done.stdout.count("lora: 2 steps") == 1  # printed by rank 0 only
    result = json.loads((tmp_path / "smoke" / "lora" / "train_result.json").read_text())
    assert (
        result["steps"] == 2
        and (tmp_path / "smoke" / "lora" / "update" / "adapter_model.safetensors").is_file()
    )


def test_messages_rows_train_and_evaluate(tmp_path):
    """README allows chat rows: the evaluation reads their last user turn and final assistant message."""

    def chat(question, answer):
        return json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Answer with the code."},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )

    domain = tmp_path / "chat"
    domain.mkdir()
    for split, count in (("train", 8), ("val", 2), ("test", 3)):
        rows = [chat(f"code of item {split} {i}?", f"C{i}") for i in range(count)]
        (domain / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    args = [
        "compare",
        str(SMOKE),
        f"out_dir={tmp_path}",
        f"data.domain={domain}",
        "methods={lora: {lr: 1.0e-3}}",
    ]
    assert main(args + ["train.steps=2"]) == 0
    results = json.loads((tmp_path / "smoke" / "results.json").read_text())
    assert results["data"]["domain"] == "chat" and results["data"]["rows"]["test"] == 3
    sample = results["methods"]["lora"]["samples"]["domain"][0]
    assert sample["prompt"].startswith("code of item test") and sample["reference"].startswith("C")


def test_a_log_file_gets_one_line_per_stage_and_no_progress_bar_debris_or_library_warning(tmp_path):
    methods = "methods={lora: {lr: 0.001}, pissa: {lr: 0.001}, qlora: {lr: 0.001}}"
    done = run_cli("compare", SMOKE, methods, f"out_dir={tmp_path}", cwd=tmp_path)  # piped: no terminal
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert "\r" not in out and "it/s" not in out and "\x1b[A" not in out
    assert "[lora] step 4: loss" in out and "domain_loss" in out and "general_loss" in out
    noise = [line for line in done.stderr.splitlines() if re.search(r"warn|deprecat|kernels", line, re.I)]
    assert not noise, noise


def test_a_log_file_hears_of_progress_between_evaluations(tmp_path, capsys, monkeypatch):
    from edgeadapt.training import loop

    monkeypatch.setattr(loop, "PROGRESS_EVERY_S", 0.0)  # a line after every step
    assert main(["train", str(SMOKE), "--method", "lora", f"out_dir={tmp_path}", "train.steps=3"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " s a step, about " in line]
    assert [line.split(",")[0] for line in lines] == [f"  [lora] step {n} of 3" for n in (1, 2, 3)]
    assert lines[-1].endswith("about 0 min left")


@pytest.mark.parametrize(
    "precision, device, model_dtype, bf16",
    [
        ("auto", "cpu", "auto", False),
        (
            "auto",
            "cpu",
            "bfloat16",
            False,
        ),  # model.dtype shapes evaluation; on the CPU, training asks precision
        ("auto", "cuda", "auto", True),
        ("auto", "cuda", "float32", False),
        ("bf16", "cpu", "auto", True),
        ("fp32", "cuda", "auto", False),
    ],
)
def test_training_precision_follows_the_setting_then_the_device(precision, device, model_dtype, bf16):
    from edgeadapt.core.config import TrainConfig
    from edgeadapt.training.loop import bf16_training

    assert bf16_training(TrainConfig(precision=precision), torch.device(device), model_dtype) is bf16


def test_bf16_precision_trains_in_bf16_on_the_cpu_and_a_change_of_precision_trains_again(tmp_path, capsys):
    """train.precision=bf16: the LoRA's matrix products run in bf16 (autocast; the weights stay fp32) and the
    result records it; resumed under fp32, the bf16 LoRA is not reused; one whose precision was not recorded
    is."""
    from safetensors.torch import load_file

    seen: set[torch.dtype] = set()

    def record(module, args, output):
        if isinstance(module, torch.nn.Linear) and module.training:
            seen.add(output.dtype)

    args = ["train", str(SMOKE), "--method", "lora", f"out_dir={tmp_path}", "train.steps=2"]
    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        assert main([*args, "train.precision=bf16"]) == 0
    finally:
        hook.remove()
    folder = tmp_path / "smoke" / "lora"
    assert seen == {torch.bfloat16}
    assert json.loads((folder / "train_result.json").read_text())["precision"] == "bf16"
    saved = load_file(str(next((folder / "update").glob("*.safetensors"))))
    assert {t.dtype for t in saved.values()} == {torch.float32}
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0  # train.precision auto: fp32 on the CPU
    assert "[lora] trained in bf16, train.precision asks otherwise: training again" in capsys.readouterr().out
    assert json.loads((folder / "train_result.json").read_text())["precision"] == "fp32"
    recorded = json.loads((folder / "train_result.json").read_text())
    del recorded["precision"]  # a result from before precision was recorded is reused as it is
    (folder / "train_result.json").write_text(json.dumps(recorded))
    assert main([*args, "--resume", "train.precision=bf16"]) == 0
    assert "[lora] already trained (2 steps)" in capsys.readouterr().out


def test_group_by_length_cuts_padding_and_a_change_of_batching_trains_again(tmp_path, capsys, monkeypatch):
    """train.group_by_length: batches hold rows of like length (far less padding than random batches of the
    same rows), the result records it, and resumed under random batches the grouped LoRA is not reused."""
    from edgeadapt.training import loop

    padding: list[float] = []

    def counting(tokenizer, sparse):
        collate = loop_collator(tokenizer, sparse)

        def count(features):
            out = collate(features)
            padding.append(1 - out["attention_mask"].float().mean().item())
            return out

        return count

    loop_collator = loop.collator
    monkeypatch.setattr(loop, "collator", counting)
    args = [
        "train",
        str(SMOKE),
        "--method",
        "lora",
        f"out_dir={tmp_path}",
        "train.steps=32",
        "train.eval_every=32",
    ]
    shares = {}
    for grouped in ("false", "true"):
        padding.clear()
        assert main([*args, f"train.group_by_length={grouped}", f"name=g{grouped}"]) == 0
        shares[grouped] = sum(padding) / len(padding)
    assert shares["false"] > 0.08  # the smoke rows vary in length: random batches pad (12%)
    assert shares["true"] < shares["false"] / 2  # 5%, evaluation batches included
    folder = tmp_path / "gtrue" / "lora"
    assert json.loads((folder / "train_result.json").read_text())["group_by_length"] is True
    capsys.readouterr()
    assert main([*args, "name=gtrue", "--resume"]) == 0
    assert "[lora] trained on other batches than train.group_by_length asks" in capsys.readouterr().out
    assert json.loads((folder / "train_result.json").read_text())["group_by_length"] is False


def test_tensorboard_receives_the_forgetting_curve(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert (
        main(["train", str(SMOKE), "--method", "lora", f"out_dir={tmp_path}", "train.report_to=tensorboard"])
        == 0
    )
    events = EventAccumulator(str(tmp_path / "smoke" / "lora" / "tensorboard"))
    events.Reload()
    for curve in ("eval/general_loss", "eval/domain_loss"):
        assert [e.step for e in events.Scalars(curve)] == [0, 2, 4]
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4]
