"""Whether the machine multiplies bf16 in hardware, and the one line training and the LoRA-Gen study print
when a config asks for bf16 products where they would be emulated (many times slower than fp32)."""

from __future__ import annotations

import pytest
import torch

from edgeadapt.cli import main
from edgeadapt.core import resources
from tests.helpers import SMOKE


@pytest.mark.parametrize(
    "device, machine, avx512_bf16, amx, native",
    [
        ("cpu", "x86_64", True, False, True),  # Cooper Lake, Zen 4
        ("cpu", "x86_64", False, True, True),  # Sapphire Rapids and later
        ("cpu", "x86_64", False, False, False),  # AVX2 only: the EPYC this was found on
        ("cpu", "AMD64", False, False, False),  # Windows spells it so
        ("cpu", "aarch64", False, False, None),  # torch has no check for Arm's bf16: unknown, no warning
        ("mps", "x86_64", False, False, None),
    ],
)
def test_native_bf16_reads_the_cpu_features(monkeypatch, device, machine, avx512_bf16, amx, native):
    monkeypatch.setattr(resources.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resources.native_bf16(device) is native


@pytest.mark.parametrize("hardware", [False, True])
def test_native_bf16_on_cuda_asks_for_hardware_not_emulation(monkeypatch, hardware):
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation or hardware
    )
    assert resources.native_bf16("cuda") is hardware
    line = resources.bf16_warning("train.precision", "cuda")
    assert (line is None) is hardware and (hardware or "bf16 on a GPU without it" in line)


def test_native_bf16_is_unknown_where_torch_cannot_tell(monkeypatch):
    monkeypatch.setattr(resources.platform, "machine", lambda: "x86_64")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert resources.native_bf16("cpu") is None


@pytest.mark.parametrize("native, warns", [(False, True), (True, False), (None, False)])
def test_the_bf16_warning_names_the_key_and_the_fix(monkeypatch, native, warns):
    monkeypatch.setattr(resources, "native_bf16", lambda device_type: native)
    line = resources.bf16_warning("train.precision", "cpu")
    if warns:
        assert line.startswith("warning: train.precision: bf16 on a CPU without bf16 arithmetic")
        assert line.endswith("set train.precision=fp32 (docs/RESULTS.md)") and "\n" not in line
    else:
        assert line is None


@pytest.mark.parametrize("native", [False, True])
def test_bf16_training_says_once_when_the_cpu_would_emulate_it(tmp_path, capsys, monkeypatch, native):
    monkeypatch.setattr(resources, "native_bf16", lambda device_type: native)
    args = ["train", str(SMOKE), "--method", "lora", f"out_dir={tmp_path}", "train.steps=1"]
    assert main([*args, "train.precision=bf16"]) == 0
    said = capsys.readouterr().out.count("warning: train.precision: bf16 on a CPU without bf16 arithmetic")
    assert said == (0 if native else 1)
    assert main([*args, "--resume", "train.precision=fp32"]) == 0  # fp32 never warns, whatever the CPU
    assert "bf16 arithmetic" not in capsys.readouterr().out
