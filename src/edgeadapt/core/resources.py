"""The process's CPU threads, whether its device multiplies bf16 in hardware, and its peak resident memory,
shared by training, evaluation and edge checks."""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil


def set_threads(threads: int) -> None:
    """One process on all cores by default; more threads than cores makes OpenMP spin and slows all down."""
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


def native_bf16(device_type: str) -> bool | None:
    """Whether the device multiplies bf16 in hardware: on an x86 CPU, AVX512-BF16 or AMX (oneDNN's bf16
    paths); None where torch cannot tell (another architecture, a torch without the checks)."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    checks = [
        getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    if device_type != "cpu" or platform.machine().lower() not in ("x86_64", "amd64") or None in checks:
        return None
    return any(check() for check in checks)


def bf16_warning(key: str, device_type: str) -> str | None:
    """One line for a config key that asks for bf16 products on a device without bf16 arithmetic, else None:
    there every product is emulated (a LoRA training step took 31 times as long as in fp32 on an AVX2 CPU;
    docs/RESULTS.md, "bf16 on a CPU without bf16 arithmetic")."""
    if native_bf16(device_type) is not False:
        return None
    device = (
        "a CPU without bf16 arithmetic (no AVX512-BF16 or AMX)"
        if device_type == "cpu"
        else "a GPU without it"
    )
    return (
        f"warning: {key}: bf16 on {device}: every product is emulated, many times slower than fp32; "
        f"set {key}=fp32 (docs/RESULTS.md)"
    )


@contextmanager
def peak_rss(interval_s: float = 0.02) -> Iterator[dict[str, int]]:
    """Sample this process's resident memory in a thread; `peak` holds the largest value seen."""
    process, seen, done = psutil.Process(), {"peak": 0}, threading.Event()

    def sample():
        while True:
            seen["peak"] = max(seen["peak"], process.memory_info().rss)
            if done.wait(interval_s):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
        seen["peak"] = max(seen["peak"], process.memory_info().rss)
