"""Updates a device can trust: every attack of the security review refused with exit code 2, a clear message
and the device unchanged; versions, expiry, root-signed key lists with rotation and revocation; one apply at
a time; room for one more update; a training run killed at any moment resumes to the same update."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from edgeadapt.cli import main
from edgeadapt.deploy import build, device
from edgeadapt.deploy import keys as keymod
from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.trust import iso, make_keylist, now
from tests.device_helpers import (
    cli_apply,
    edit_json,
    edit_tensor,
    every_runtime,
    export,
    folder_bytes,
    fresh_device,
    keylist_file,
    refused,
    resigned_manifest,
    resigned_update,
    snapshot,
    trusted_device,
)

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


# --- versions, replay, downgrade, expiry -------------------------------------------------------------


@every_runtime
def test_downgrade_and_replay_are_refused_and_the_device_is_unchanged(runtime, opened, keyring, tmp_path):
    pub = str(keyring["update"][1])
    v1 = export(opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0], runtime=runtime)
    v2 = export(opened, "sft", tmp_path / "v2.eaupd", 2, keyring["update"][0], runtime=runtime)
    dev = fresh_device(tmp_path, runtime=runtime)
    assert cli_apply(v1, dev, "--pubkey", pub).returncode == 0
    assert cli_apply(v2, dev, "--pubkey", pub).returncode == 0
    before = snapshot(dev)
    refused(cli_apply(v1, dev, "--pubkey", pub), "(downgrade)")
    refused(cli_apply(v2, dev, "--pubkey", pub), "(replay of an accepted release)")
    assert snapshot(dev) == before
    # A release from another channel is refused whatever its version (a cross-channel downgrade) ...
    other_channel = export(
        opened, "lora", tmp_path / "beta.eaupd", 1, keyring["update"][0], channel="beta", runtime=runtime
    )
    refused(cli_apply(other_channel, dev, "--pubkey", pub), "this device follows 'default'")
    assert snapshot(dev) == before
    # ... and taken by a device that follows that channel, whose versions rise on their own.
    beta = fresh_device(tmp_path, "beta", runtime=runtime, channel="beta")
    assert cli_apply(other_channel, beta, "--pubkey", pub).returncode == 0
    assert device.status(beta)["highest"] == {"beta": 1} and device.status(beta)["channel"] == "beta"


@every_runtime
def test_the_operator_can_roll_back_but_no_package_can_follow(runtime, opened, keyring, tmp_path, capsys):
    pub = keyring["update"][1]
    dev = fresh_device(tmp_path, runtime=runtime)
    device.apply(
        export(opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0], runtime=runtime), dev, pub
    )
    device.apply(
        export(opened, "sft", tmp_path / "v2.eaupd", 2, keyring["update"][0], runtime=runtime), dev, pub
    )
    assert main(["device", "rollback", "--device-dir", str(dev)]) == 0  # a rollback that works exits 0
    state = json.loads((dev / "state.json").read_text())
    assert device.status(dev)["active"]["variant"] == "lora" and state["highest"] == {"default": 2}
    assert [e["event"] for e in state["history"]] == ["apply", "apply", "rollback"]
    with pytest.raises(PackageError, match="downgrade"):
        device.apply(tmp_path / "v1.eaupd", dev, pub)


@every_runtime
def test_an_expired_package_is_refused(runtime, opened, keyring, tmp_path):
    past = {"created": iso(now() - timedelta(days=10)), "expires": iso(now() - timedelta(days=1))}
    stale = export(opened, "lora", tmp_path / "stale.eaupd", 5, keyring["update"][0], **past, runtime=runtime)
    dev = fresh_device(tmp_path, runtime=runtime)
    refused(cli_apply(stale, dev, "--pubkey", str(keyring["update"][1])), "expired on")
    refused(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "edgeadapt.cli",
                "package",
                "verify",
                str(stale),
                "--pubkey",
                str(keyring["update"][1]),
            ],
            capture_output=True,
            text=True,
        ),
        "expired on",
    )


# --- signatures and keys ------------------------------------------------------------------------------


@every_runtime
def test_allow_unsigned_never_passes_a_bad_signature_and_never_records_one_unchecked(
    runtime, opened, keyring, tmp_path
):
    good = export(opened, "lora", tmp_path / "good.eaupd", 1, keyring["update"][0], runtime=runtime)
    forged = export(opened, "lora", tmp_path / "forged.eaupd", 2, keyring["rogue"][0], runtime=runtime)
    dev = fresh_device(tmp_path, runtime=runtime)
    refused(
        cli_apply(forged, dev, "--pubkey", str(keyring["update"][1]), "--allow-unsigned"), "bad signature"
    )
    assert cli_apply(good, dev, "--allow-unsigned").returncode == 0  # nothing to check it with
    assert device.status(dev)["active"]["signed"] is False  # so it is not recorded as signed


@every_runtime
def test_keys_rotate_and_revoke_through_root_signed_key_lists(runtime, opened, keyring, tmp_path):
    dev = trusted_device(tmp_path, keyring, runtime=runtime)
    by_update = export(opened, "lora", tmp_path / "a.eaupd", 1, keyring["update"][0], runtime=runtime)
    by_update2 = export(opened, "sft", tmp_path / "b.eaupd", 2, keyring["update2"][0], runtime=runtime)
    refused(cli_apply(by_update, dev), "holds no key list yet")
    assert main(["device", "trust", str(keylist_file(tmp_path, keyring, 1)), "--device-dir", str(dev)]) == 0
    assert cli_apply(by_update, dev).returncode == 0
    before = snapshot(dev)
    refused(cli_apply(by_update2, dev), "bad signature")  # update2 is not trusted yet
    # Rotation: key list v2 trusts update2 only, which also revokes update.
    assert (
        main(
            [
                "device",
                "trust",
                str(keylist_file(tmp_path, keyring, 2, update=("update2",))),
                "--device-dir",
                str(dev),
            ]
        )
        == 0
    )
    assert cli_apply(by_update2, dev).returncode == 0
    revoked = export(opened, "lora", tmp_path / "c.eaupd", 3, keyring["update"][0], runtime=runtime)
    before = snapshot(dev)
    refused(cli_apply(revoked, dev), "bad signature")
    assert snapshot(dev) == before
    # An older key list cannot come back.
    assert main(["device", "trust", str(keylist_file(tmp_path, keyring, 1)), "--device-dir", str(dev)]) == 2


@every_runtime
def test_a_key_list_needs_the_root_and_its_threshold(runtime, keyring, tmp_path, capsys):
    dev = trusted_device(tmp_path, keyring, runtime=runtime, threshold=2, roots=("root", "root2", "root3"))
    for version, roots, message in ((1, ("rogue",), "signed by 0 of"), (1, ("root",), "signed by 1 of")):
        assert (
            main(
                [
                    "device",
                    "trust",
                    str(keylist_file(tmp_path, keyring, version, roots=roots)),
                    "--device-dir",
                    str(dev),
                ]
            )
            == 2
        )
        assert message in capsys.readouterr().err
    assert (
        main(
            [
                "device",
                "trust",
                str(keylist_file(tmp_path, keyring, 2, roots=("root", "root3"))),
                "--device-dir",
                str(dev),
            ]
        )
        == 0
    )
    assert device.status(dev)["trust"]["keylist_version"] == 2
    expired = make_keylist([keyring["root"][0], keyring["root2"][0]], [keyring["update"][1]], 9, 30)
    expired["signed"]["expires"] = iso(now() - timedelta(days=1))  # re-signed below: only the date is old
    payload = json.dumps(expired["signed"], sort_keys=True, separators=(",", ":")).encode()
    expired["signatures"] = [
        {"key_id": s["key_id"], "signature": keymod.b64(keymod.sign(payload, keyring[r][0]))}
        for s, r in zip(expired["signatures"], ("root", "root2"))
    ]
    (tmp_path / "expired.json").write_text(json.dumps(expired))
    capsys.readouterr()
    assert main(["device", "trust", str(tmp_path / "expired.json"), "--device-dir", str(dev)]) == 2
    assert "expired" in capsys.readouterr().err


@every_runtime
def test_a_package_can_carry_a_newer_key_list(runtime, opened, keyring, tmp_path, capsys):
    dev = trusted_device(tmp_path, keyring, runtime=runtime)
    main(["device", "trust", str(keylist_file(tmp_path, keyring, 1)), "--device-dir", str(dev)])
    carried = json.loads(keylist_file(tmp_path, keyring, 2, update=("update2",)).read_text())
    package = export(
        opened, "lora", tmp_path / "p.eaupd", 1, keyring["update2"][0], keylist=carried, runtime=runtime
    )
    assert cli_apply(package, dev).returncode == 0
    assert device.status(dev)["trust"]["keylist_version"] == 2
    forged = dict(carried, signed={**carried["signed"], "version": 3})  # its root signature no longer holds
    bad = export(
        opened, "sft", tmp_path / "q.eaupd", 2, keyring["update2"][0], keylist=forged, runtime=runtime
    )
    refused(cli_apply(bad, dev), "needs 1")


def test_a_private_key_others_can_read_is_not_used_and_keys_are_private(keyring, tmp_path):
    private, _ = keymod.generate_keys(tmp_path, "loose")
    assert private.stat().st_mode & 0o077 == 0
    os.chmod(private, 0o644)
    with pytest.raises(PackageError, match="chmod 600"):
        keymod.sign(b"x", private)


# --- what the verifier reads and what is activated -----------------------------------------------------


ATTACKS = {
    "NaN weights": (
        "lora",
        edit_tensor("adapter_model.safetensors", lambda t: t.fill_(float("nan"))),
        "NaN or infinite",
    ),
    "Inf weights": (
        "lora",
        edit_tensor("adapter_model.safetensors", lambda t: t.fill_(float("inf"))),
        "NaN or infinite",
    ),
    "wrong shape": (
        "lora",
        edit_tensor("adapter_model.safetensors", lambda t: torch.zeros(t.shape[0] + 1, t.shape[1])),
        "not one of its config's",
    ),
    "lora_alpha 1e30": (
        "lora",
        edit_json("adapter_config.json", lambda c: c.update(lora_alpha=1e30)),
        "scaling alpha/r",
    ),
    "a file named installed.json": (
        "lora",
        lambda f: (f / "installed.json").write_text("{}"),
        "an adapter holds exactly",
    ),
    "sft tensor of another shape": (
        "sft",
        edit_tensor("model.safetensors", lambda t: torch.zeros(3, 3)),
        "has shape",
    ),
}


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_an_update_that_does_not_fit_the_base_is_refused_before_activation(opened, keyring, tmp_path, case):
    variant, edit, message = ATTACKS[case]
    package = resigned_update(opened, keyring, tmp_path, variant, edit, case.replace(" ", "-"))
    dev = fresh_device(tmp_path)
    before = snapshot(dev)
    refused(cli_apply(package, dev, "--pubkey", str(keyring["update"][1])), message)
    assert snapshot(dev) == before and device.status(dev)["active"] is None
    assert not list((dev / "updates").glob(".staging-*"))  # a failed apply leaves the disk as it found it


@pytest.mark.parametrize("method", ["evil", "../../lora"])
@every_runtime
def test_an_unknown_method_is_refused(runtime, opened, keyring, tmp_path, method):
    good = export(opened, "lora", tmp_path / "good.eaupd", 1, keyring["update"][0], runtime=runtime)
    package = resigned_manifest(
        good, tmp_path / "m.eaupd", keyring["update"][0], lambda m: m.update(method=method)
    )
    refused(
        cli_apply(package, fresh_device(tmp_path, runtime=runtime), "--pubkey", str(keyring["update"][1])),
        "method is not one this version knows",
    )


def test_an_sft_update_cannot_point_the_device_at_other_weights(opened, keyring, tmp_path):
    """Its config.json is not read: the device runs its own base architecture with the update's tensors."""
    run, _ = opened

    def elsewhere(folder: Path):
        config = json.loads((folder / "config.json").read_text())
        config.update(
            _name_or_path="/somewhere/else", base_model_name_or_path="/somewhere/else", num_hidden_layers=1
        )
        (folder / "config.json").write_text(json.dumps(config))

    package = resigned_update(opened, keyring, tmp_path, "sft", elsewhere, "elsewhere")
    dev = fresh_device(tmp_path)
    assert cli_apply(package, dev, "--pubkey", str(keyring["update"][1])).returncode == 0
    ids = torch.tensor([[1, 5, 9, 33, 70]])
    with torch.no_grad():
        got = device.load_active(dev).model(ids).logits
        expected = run.open("sft").model(ids).logits
    torch.testing.assert_close(got, expected)


def test_a_base_with_another_config_is_refused(opened, keyring, tmp_path):
    package = export(opened, "lora", tmp_path / "p.eaupd", 1, keyring["update"][0])
    dev = fresh_device(tmp_path)
    config = json.loads((dev / "base" / "config.json").read_text())
    config["rope_theta"] = 1234.0
    (dev / "base" / "config.json").write_text(json.dumps(config))
    refused(cli_apply(package, dev, "--pubkey", str(keyring["update"][1])), "changed since `device init`")


def test_deep_nesting_and_a_decompression_bomb_are_refused_cleanly(opened, keyring, tmp_path):
    import zstandard

    from edgeadapt.deploy import archive
    from edgeadapt.deploy import manifest as mf

    with pytest.raises(PackageError, match="nested too deeply"):
        mf.parse(b"[" * 200_000 + b"]" * 200_000, "deep")
    good = export(opened, "lora", tmp_path / "good.eaupd", 1, keyring["update"][0])
    files_start = archive.read_members(good, "good")[2].offset - archive.BLOCK
    # Its signed manifest, then 512 MiB of zeros where its small files should be: a file of a few kilobytes.
    with open(tmp_path / "bomb.eaupd", "wb") as out:
        writer = zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(out)
        writer.write(good.read_bytes()[:files_start])
        for _ in range(512):
            writer.write(bytes(1 << 20))
        writer.close()
    assert (tmp_path / "bomb.eaupd").stat().st_size < 1 << 20
    declared = good.stat().st_size
    with pytest.raises(PackageError, match=f"more than the {declared:,} bytes it declares"):
        build.verify(tmp_path / "bomb.eaupd", keyring["update"][1])


def test_one_apply_at_a_time_and_none_lost(opened, keyring, tmp_path):
    """Two applies started together: both land in version order, or the lower one is refused as a
    downgrade; never both 'succeed' with one silently lost."""
    pub = str(keyring["update"][1])
    v1 = export(opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0])
    v2 = export(opened, "sft", tmp_path / "v2.eaupd", 2, keyring["update"][0])
    for pair in range(2):  # two races: either order may win, neither may lose an update
        dev = fresh_device(tmp_path, f"dev{pair}")
        cmds = [
            [
                sys.executable,
                "-m",
                "edgeadapt.cli",
                "device",
                "apply",
                str(p),
                "--device-dir",
                str(dev),
                "--pubkey",
                pub,
            ]
            for p in (v1, v2)
        ]
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
        codes = [p.wait(timeout=600) for p in procs]
        errors = [p.stderr.read() for p in procs]
        state = device.status(dev)
        assert state["active"]["variant"] == "sft" and state["highest"] == {"default": 2}, errors
        if codes == [0, 0]:  # v1 first, then v2: both in the history, in order
            history = json.loads((dev / "state.json").read_text())["history"]
            assert [e["version"] for e in history] == [1, 2] and state["previous"]["variant"] == "lora"
        else:
            assert codes == [2, 0] and "downgrade" in errors[0], errors


@every_runtime
def test_an_apply_makes_room_by_dropping_what_rollback_no_longer_needs(
    runtime, opened, keyring, tmp_path, monkeypatch
):
    pub = keyring["update"][1]
    dev = fresh_device(tmp_path, runtime=runtime)
    device.apply(
        export(opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0], runtime=runtime), dev, pub
    )
    device.apply(
        export(opened, "hlora", tmp_path / "v2.eaupd", 2, keyring["update"][0], runtime=runtime), dev, pub
    )
    real, updates = shutil.disk_usage, dev / "updates"
    v3 = export(opened, "lora", tmp_path / "v3.eaupd", 3, keyring["update"][0], runtime=runtime)
    previous = updates / device.read_state(dev)["previous"]
    # A disk whose free space is exactly what the update needs once the update rollback will no longer
    # reach is gone: refused as it is, accepted after dropping that one.
    v3_bytes = sum(f["size"] for f in build.verify(v3, pub).manifest["files"])  # fp32: extracted as is
    capacity = folder_bytes(updates) - folder_bytes(previous) + v3_bytes + device.ROOM_MARGIN
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: real(path)._replace(free=capacity - folder_bytes(updates))
    )
    state = device.apply(v3, dev, pub)
    assert state["active"]["version"] == 3 and state["previous"]["version"] == 2
    assert "dropped" in [e["event"] for e in json.loads((dev / "state.json").read_text())["history"]]
    # No room even then: refused, and nothing dropped.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=0))
    before = snapshot(dev)
    with pytest.raises(PackageError, match="free"):
        device.apply(
            export(opened, "sft", tmp_path / "v4.eaupd", 4, keyring["update"][0], runtime=runtime), dev, pub
        )
    assert snapshot(dev) == before


# --- every failure is a message -----------------------------------------------------------------------


@every_runtime
def test_os_and_state_errors_are_one_line_with_the_fix(runtime, opened, keyring, tmp_path, capsys):
    dev = fresh_device(tmp_path, runtime=runtime)
    (dev / "state.json").write_text("{not json")
    done = subprocess.run(
        [sys.executable, "-m", "edgeadapt.cli", "device", "status", "--device-dir", str(dev)],
        capture_output=True,
        text=True,
    )
    refused(done, "state.json is corrupt")
    assert "move the file away" in done.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for args, message in (
        (["keys", "generate", "--out", str(a_file)], "is a file"),
        (["device", "init", "--device-dir", str(a_file), "--model", "tiny-random"], "is a file"),
        (
            ["package", "export", str(opened[0].dir), "--method", "lora", "--out", str(tmp_path)],
            "is a folder",
        ),
    ):  # in this process (the corrupt state above went through a real one): the same entry point's handling
        capsys.readouterr()
        code = main(args)
        refused(subprocess.CompletedProcess(args, code, "", capsys.readouterr().err), message)


def test_device_generate_takes_the_prompt_after_the_options(opened, keyring, tmp_path):
    dev = fresh_device(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeadapt.cli",
            "device",
            "generate",
            "--device-dir",
            str(dev),
            "--max-new-tokens",
            "2",
            "What is ICD-10 code I63?",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]


# --- training survives SIGKILL ------------------------------------------------------------------------


def test_a_training_run_killed_at_any_moment_resumes_to_the_same_update(tmp_path):
    from safetensors.torch import load_file

    args = [
        sys.executable,
        "-m",
        "edgeadapt.cli",
        "train",
        str(SMOKE),
        "--method",
        "lora",
        "train.steps=8",
        "train.save_every=1",
        "train.eval_every=4",
    ]
    clean = subprocess.run(args + [f"out_dir={tmp_path / 'clean'}"], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    kills = 0
    for delay in (4.0, 6.0, 8.5, 11.5):  # kill at different moments, checkpoint writes included
        proc = subprocess.Popen(
            args + [f"out_dir={killed_dir}", "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=delay)
            break  # it finished before the kill: later runs would only reuse the finished update
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    done = subprocess.run(args + [f"out_dir={killed_dir}", "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert kills >= 1
    result = json.loads((killed_dir / "smoke" / "lora" / "train_result.json").read_text())
    steps = [p["step"] for p in result["curve"]]
    assert steps == sorted(set(steps)) and result["steps"] == 8  # no duplicated points
    a = load_file(tmp_path / "clean" / "smoke" / "lora" / "update" / "adapter_model.safetensors")
    b = load_file(killed_dir / "smoke" / "lora" / "update" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical to the run that was never killed
