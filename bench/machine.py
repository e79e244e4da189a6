"""What a benchmark records about the machine it ran on (bench/ modules import it)."""

from __future__ import annotations

from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name, its widest vector extension and its bf16 arithmetic: llama.cpp's kernels pick
    AVX-512 when the CPU has it (the same benchmark ran 2-3x faster on one machine of two cores than on
    another), and bf16 products without AMX or AVX512-BF16 are emulated (RESULTS, "bf16 on a CPU without")."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("flags", "").split()
    vector = next((f for f in ("avx512f", "avx2", "avx") if f in flags), "no AVX")
    bf16 = next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), "no bf16 arithmetic")
    return f"{fields.get('model name', 'unknown CPU')}, {vector}, {bf16}"
