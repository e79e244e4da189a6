"""What the device tests share: packages exported from the session's smoke run, fresh device folders, the
CLI's apply in a subprocess (exit code and stderr exactly as a user sees them), a refusal's one line, a
device's state and files before and after, and packages re-signed after an edit (what an attacker holding a
signing key, or a buggy exporter, could ship past our own writer's checks)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeadapt.deploy import build, device, run_packages
from edgeadapt.deploy import keys as keymod
from edgeadapt.deploy.runtime import RUNTIMES, UNNAMED_RUNTIME, get_runtime
from edgeadapt.deploy.trust import make_keylist
from edgeadapt.updates.sizes import adapter_rank


def release(version: int, **extra) -> dict:
    return build.release(version) | extra


# The update-security tests that do not depend on a runtime's files run on every registered runtime; the
# attacks that edit PyTorch files inside a package run on the transformers one (PYTORCH).
PYTORCH = UNNAMED_RUNTIME
get_runtime(PYTORCH)  # registers the built-in runtimes
RUNTIME_NAMES = sorted(RUNTIMES)
every_runtime = pytest.mark.parametrize("runtime", RUNTIME_NAMES)


def export(
    opened, variant: str, out: Path, version: int, key: Path | None, runtime: str = PYTORCH, **extra
) -> Path:
    run, results = opened
    run_packages.export(
        run, results, variant, out, "fp32", key, release=release(version, **extra), runtime=runtime
    )
    return out


def fresh_device(tmp_path: Path, name: str = "dev", runtime: str = PYTORCH, **init) -> Path:
    folder = tmp_path / name
    device.init(folder, reopen_model_path(), runtime=runtime, options={"model": "tiny-random"}, **init)
    return folder


def reopen_model_path() -> Path:
    from edgeadapt import models

    return models.resolve("tiny-random")


def cli_apply(package: Path, dev: Path, *extra: str) -> subprocess.CompletedProcess:
    """`edgeadapt device apply` through the CLI's own entry point, in this process (an exception escaping it
    would fail the test, as a traceback would show a user): its exit code and what it printed."""
    import contextlib
    import io

    from edgeadapt.cli import main

    argv = ["device", "apply", str(package), "--device-dir", str(dev), *extra]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def refused(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, done.stderr[-2000:]


def snapshot(dev: Path) -> tuple:
    """What must not change when an apply is refused: the state and every file of every update."""
    state = (dev / "state.json").read_text()
    files = (
        sorted(
            (str(p.relative_to(dev)), p.stat().st_size) for p in (dev / "updates").rglob("*") if p.is_file()
        )
        if (dev / "updates").exists()
        else []
    )
    return state, files


def files_of(dev: Path) -> dict[str, bytes]:
    """Every file of a device folder but its lock, by path: the whole device, byte for byte."""
    return {
        str(p.relative_to(dev)): p.read_bytes()
        for p in sorted(dev.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def trusted_device(
    tmp_path: Path, keyring, threshold: int = 1, roots=("root",), runtime: str = PYTORCH
) -> Path:
    return fresh_device(
        tmp_path, runtime=runtime, root_pubkeys=[keyring[r][1] for r in roots], root_threshold=threshold
    )


def keylist_file(
    tmp_path: Path, keyring, version: int, update=("update",), roots=("root",), days: float = 30
) -> Path:
    document = make_keylist([keyring[r][0] for r in roots], [keyring[u][1] for u in update], version, days)
    path = tmp_path / f"keylist-v{version}-{'-'.join(roots)}.json"
    path.write_text(json.dumps(document))
    return path


def resigned_update(
    opened,
    keyring,
    tmp_path: Path,
    variant: str,
    edit,
    name: str,
    version: int = 7,
    method: str | None = None,
) -> Path:
    """A package of `variant`'s update after `edit(folder)`, properly signed: only the checks inside can stop it."""
    run, results = opened
    folder = tmp_path / f"{name}-update"
    shutil.copytree(run.update_dir(variant), folder)
    edit(folder)
    fields = run_packages.manifest_fields(
        run, results, variant, run_packages.base_fingerprint(run.model_path)
    ) | release(version)
    fields["rank"] = adapter_rank(folder)
    if method:
        fields["method"] = method
    out = tmp_path / f"{name}.eaupd"
    build.build(folder, out, fields, "fp32", keyring["update"][0])
    return out


def edit_tensor(file: str, change):
    def edit(folder: Path):
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(folder / file))
        key = sorted(tensors)[0]
        tensors[key] = change(tensors[key])
        save_file(tensors, str(folder / file))

    return edit


def edit_json(file: str, change):
    def edit(folder: Path):
        data = json.loads((folder / file).read_text())
        change(data)
        (folder / file).write_text(json.dumps(data))

    return edit


def resigned_manifest(package: Path, out: Path, key: Path, change) -> Path:
    """The package with its manifest changed by `change(manifest)` and signed again with `key`: what an
    attacker holding a signing key (or a buggy exporter) could ship, past our own writer's checks."""
    from edgeadapt.deploy import archive
    from edgeadapt.deploy import manifest as mf

    members = {m.name: archive.read_data(package, m) for m in archive.read_members(package, "p")}
    manifest = json.loads(members["manifest.json"])
    change(manifest)
    members["manifest.json"] = mf.encode(manifest)
    members["manifest.sig"] = keymod.sign(members["manifest.json"], key)
    archive.write(out, list(members.items()))
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
