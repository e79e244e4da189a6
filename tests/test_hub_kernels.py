"""bitsandbytes' import-time kernel lookup never reaches the Hub and prints nothing, whatever the user's Hub
settings (core/hub_kernels.py). Each case runs in a fresh interpreter: the hook acts on the first import.
The real bitsandbytes is checked by test_cli's log-file test, which finds no "kernels" line in a run that
imports it (on a CPU with AVX512-BF16, where its lookup runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# A stand-in bitsandbytes that does at import what the real one does on an AVX512-BF16 CPU: reads the Hub
# setting the `kernels` lookup reads, and warns through the loggers the real lookup warns through.
FAKE_BITSANDBYTES = """
import logging
from huggingface_hub import constants

SAW_HUB_OFFLINE = constants.HF_HUB_OFFLINE
logging.getLogger("kernels._internals.hf_hub").warning("Skipping publisher trust check (fake)")
logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward (fake)")
"""


def run_python(code: str, tmp_path, fake: bool) -> subprocess.CompletedProcess:
    offline = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # either one sets the Hub offline
    env = {k: v for k, v in os.environ.items() if k not in offline}  # a user online, by default
    if fake:
        (tmp_path / "bitsandbytes").mkdir()
        (tmp_path / "bitsandbytes" / "__init__.py").write_text(FAKE_BITSANDBYTES)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_the_lookup_runs_offline_and_quiet_and_the_users_setting_comes_back(tmp_path):
    done = run_python(
        """
        import edgeadapt.core, bitsandbytes
        from huggingface_hub import constants
        print(bitsandbytes.__file__, bitsandbytes.SAW_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
        """,
        tmp_path,
        fake=True,
    )
    assert done.returncode == 0, done.stderr
    where, saw_offline, offline_after = done.stdout.split()
    assert where.startswith(str(tmp_path)) and (saw_offline, offline_after) == ("True", "False")
    assert "fake" not in done.stderr, done.stderr


def test_without_edgeadapt_the_stand_in_sees_the_hub_online_and_warns(tmp_path):
    # The control: the same import without the hook, so the test above cannot pass by accident.
    done = run_python("import bitsandbytes; print(bitsandbytes.SAW_HUB_OFFLINE)", tmp_path, fake=True)
    assert done.stdout.strip() == "False" and "Skipping publisher trust check (fake)" in done.stderr
