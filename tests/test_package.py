"""Update packages: export in every dtype, verify (every rejection named), the device folder (apply, status,
rollback, generate), crash safety of apply, and fuzzing of the reader."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from edgeadapt import models
from edgeadapt.cli import main
from edgeadapt.deploy import archive, build, device
from edgeadapt.deploy import keys as keymod
from edgeadapt.deploy import manifest as mf
from edgeadapt.deploy import run_packages as ship
from edgeadapt.deploy.archive import PackageError
from edgeadapt.models.fingerprint import fingerprint
from edgeadapt.reports.run import render
from edgeadapt.runs.run import reopen
from tests.device_helpers import PYTORCH

FUZZ_CASES = int(os.environ.get("EDGEADAPT_FUZZ_CASES", "300"))
# The long fuzz: 3,000 cases in `make test` (about 10 s); EDGEADAPT_FUZZ_CASES=10000 for the 10,000-case run
# (30-40 s on two cores, which kept the suite over its 15 minutes).
LONG_FUZZ_CASES = max(FUZZ_CASES, 3_000)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return keymod.generate_keys(tmp_path_factory.mktemp("keys"), "test")


@pytest.fixture(scope="module")
def opened(smoke_run):
    return reopen(str(smoke_run), [], "package")


@pytest.fixture(scope="module")
def packages(opened, keys, tmp_path_factory):
    """Signed fp32 packages of lora and sft, and an unsigned lora one."""
    run, results = opened
    folder = tmp_path_factory.mktemp("packages")
    out = {}
    for name, variant, key in (
        ("lora", "lora", keys[0]),
        ("sft", "sft", keys[0]),
        ("unsigned", "lora", None),
    ):
        out[name] = folder / f"{name}.eaupd"
        ship.export(run, results, variant, out[name], "fp32", key, runtime=PYTORCH)
    return out


def logits(model, ids=(1, 5, 9, 33, 70, 2)):
    with torch.no_grad():
        return model(torch.tensor([list(ids)])).logits


def tuned_from(run, variant: str, folder: Path):
    return run.method(variant).load_tuned(run.load_model(torch.float32), folder).eval()


@pytest.mark.parametrize("variant", ["sft", "lora", "hlora", "adaptq"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int8"])
def test_export_verify_extract_round_trip(opened, keys, tmp_path, variant, dtype):
    run, results = opened
    info = ship.export(
        run, results, variant, tmp_path / "u.eaupd", dtype, keys[0], compress=dtype == "int8", runtime=PYTORCH
    )
    verified = build.verify(tmp_path / "u.eaupd", keys[1], run.model_path)
    build.extract(verified, tmp_path / "x")
    verified.opened.close()
    m = verified.manifest
    assert m["method"] == variant and m["dtype"] == dtype and m["variant"] == variant
    assert m["base_model"]["fingerprint"] == fingerprint(run.model_path)
    assert m["metrics"]["domain_accuracy"] == results["methods"][variant]["domain_accuracy"]
    assert {f["path"] for f in m["files"]} == {
        f"update/{p.name}" for p in build.update_files(run.dir / variant / "update")
    }
    assert (m["rank"] is not None) == (variant in ("lora", "hlora"))
    expected = logits(tuned_from(run, variant, run.dir / variant / "update"))
    got = logits(tuned_from(run, variant, tmp_path / "x"))
    if dtype == "fp32":
        assert "dtype_cost" not in m
        assert torch.equal(got, expected)
    else:
        cost = m["dtype_cost"]
        assert cost["general_ppl_fp32"] == pytest.approx(results["methods"][variant]["general_ppl"], rel=1e-4)
        assert cost["general_ppl_change_pct"] == pytest.approx(
            (cost["general_ppl_package"] / cost["general_ppl_fp32"] - 1) * 100
        )
        assert torch.allclose(got, expected, atol=0.05 if dtype == "bf16" else 0.1)
    if dtype == "bf16" and variant != "adaptq":
        assert info["raw_bytes"] < 0.6 * results["methods"][variant]["update_bytes"]["fp32"]


def test_int8_is_per_row_absmax():
    weight = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0], [3.0, 0.1, -0.2]])
    q, scale = build.quantize_int8(weight)
    assert q.dtype == torch.int8 and q[0].tolist() == [64, -127, 32] and q[1].tolist() == [0, 0, 0]
    assert scale.tolist() == pytest.approx([2 / 127, 1.0, 3 / 127])
    assert torch.allclose(q.float() * scale[:, None], weight, atol=scale.max().item() / 2)


def test_lora_package_loads_in_peftmodel(packages, keys, opened, tmp_path):
    from peft import PeftModel

    run, _ = opened
    verified = build.verify(packages["lora"], keys[1])
    build.extract(verified, tmp_path)
    verified.opened.close()
    model = PeftModel.from_pretrained(run.load_model(torch.float32), str(tmp_path)).eval()
    assert torch.equal(logits(model), logits(tuned_from(run, "lora", run.dir / "lora" / "update")))


def tar_bytes(members: list[tuple[str, bytes]], kind: bytes = tarfile.REGTYPE, mtime: int = 0) -> bytes:
    """A tar written by the standard library, for hostile member layouts."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.type, info.mtime = len(data), kind, mtime
            if kind == tarfile.SYMTYPE:
                info.size, info.linkname = 0, "/etc/passwd"
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def members_of(path: Path) -> dict[str, bytes]:
    return {m.name: archive.read_data(path, m) for m in archive.read_members(path, "t")}


def rebuilt(path: Path, tmp: Path, edit) -> Path:
    """The package's members through `edit`, written canonically again."""
    members = edit(members_of(path))
    out = tmp / f"rebuilt-{len(list(tmp.iterdir()))}.eaupd"
    archive.write(out, list(members.items()))
    return out


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def update_offset(path: Path) -> int:
    member = next(m for m in archive.read_members(path, "t") if m.name.endswith(".safetensors"))
    return member.offset + member.size // 2


REJECTIONS = {
    "truncated": (lambda p, t: p.read_bytes()[: p.stat().st_size // 2], "declares an archive of"),
    "update byte flipped": (lambda p, t: flip(p.read_bytes(), update_offset(p)), "does not match its hash"),
    "manifest edited": (
        lambda p, t: rebuilt(
            p, t, lambda m: m | {"manifest.json": m["manifest.json"].replace(b'"lora"', b'"sft"')}
        ).read_bytes(),
        "bad signature",
    ),
    "junk appended": (lambda p, t: p.read_bytes() + b"x", "but its manifest declares an archive of"),
    "absolute path": (lambda p, t: tar_bytes([("/etc/cron.d/x", b"1")]), "not allowed"),
    "dot-dot path": (lambda p, t: tar_bytes([("update/../../x", b"1")]), "not allowed"),
    "symlink": (lambda p, t: tar_bytes([("update/link", b"")], tarfile.SYMTYPE), "is a link"),
    "non-canonical header": (
        lambda p, t: tar_bytes(list(members_of(p).items()), mtime=1_700_000_000),
        "non-canonical header",
    ),
    "member renamed": (
        lambda p, t: rebuilt(
            p, t, lambda m: {k.replace("adapter_model", "adapter_modex"): v for k, v in m.items()}
        ).read_bytes(),
        "not both",
    ),
    "signature removed": (
        lambda p, t: rebuilt(
            p, t, lambda m: {k: v for k, v in m.items() if k != "manifest.sig"}
        ).read_bytes(),
        "starts with manifest.json and its signature or hash",
    ),
    "not a package": (lambda p, t: b"hello", "truncated"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_verify_rejects_each_bad_package_with_one_line_and_exit_2(packages, keys, tmp_path, capsys, case):
    mutate, message = REJECTIONS[case]
    bad = tmp_path / "bad.eaupd"
    bad.write_bytes(mutate(packages["lora"], tmp_path))
    with pytest.raises(PackageError, match=message):
        build.verify(bad, keys[1])
    assert main(["package", "verify", str(bad), "--pubkey", str(keys[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_verify_rejects_unsigned_wrong_base_and_oversized(packages, keys, tmp_path):
    with pytest.raises(PackageError, match="give --allow-unsigned"):
        build.verify(packages["unsigned"])
    with pytest.raises(PackageError, match="unsigned package, but --pubkey"):
        build.verify(packages["unsigned"], keys[1])
    assert build.verify(packages["unsigned"], allow_unsigned=True).manifest["variant"] == "lora"
    other = models.tiny_random_model(seed=1, vocab_size=len(models.tiny_tokenizer()))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(PackageError, match="built for base 'tiny-random'"):
        build.verify(packages["lora"], keys[1], tmp_path / "other")
    with pytest.raises(PackageError, match="over the limit"):
        build.verify(packages["lora"], keys[1], max_bytes=1000)
    other_key = keymod.generate_keys(tmp_path / "k", "other")[1]
    with pytest.raises(PackageError, match="bad signature"):
        build.verify(packages["lora"], other_key)


def test_a_corrupt_unsigned_manifest_is_caught_by_its_hash(packages, tmp_path):
    bad = rebuilt(
        packages["unsigned"],
        tmp_path,
        lambda m: m | {"manifest.json": m["manifest.json"].replace(b'"lora"', b'"sft"')},
    )
    with pytest.raises(PackageError, match="does not match manifest.sha256"):
        build.verify(bad, allow_unsigned=True)


def test_oversized_manifest_fields_are_rejected_even_when_signed(packages, keys, tmp_path):
    def grow(m):
        manifest = json.loads(m["manifest.json"])
        manifest["variant"] = "x" * 100_000
        data = mf.encode(manifest)
        return m | {"manifest.json": data, "manifest.sig": keymod.sign(data, keys[0])}

    with pytest.raises(PackageError, match="longer than"):
        build.verify(rebuilt(packages["lora"], tmp_path, grow), keys[1])


@pytest.fixture
def device_dir(tmp_path, opened):
    run, _ = opened
    device.init(tmp_path / "device", run.model_path, runtime=PYTORCH)
    return tmp_path / "device"


def test_a_device_folder_and_a_package_that_name_no_runtime_are_transformers_ones(device_dir, packages, keys):
    """Made before runtimes existed (no device.json) or by `--runtime transformers` (PyTorch packages name
    none, so older devices take them): the switch of the default to llama.cpp changes neither."""
    verified = build.verify(packages["lora"], keys[1])
    verified.opened.close()
    assert "runtime" not in verified.manifest
    (device_dir / "device.json").unlink()
    assert device.apply(packages["lora"], device_dir, keys[1])["active"]["runtime"] == "transformers"


def test_device_apply_status_rollback_and_generate(device_dir, packages, keys, opened):
    run, _ = opened
    assert device.status(device_dir)["active"] is None
    base_logits = logits(device.load_active(device_dir).model)
    assert device.apply(packages["lora"], device_dir, keys[1])["active"]["variant"] == "lora"
    assert torch.equal(
        logits(device.load_active(device_dir).model),
        logits(tuned_from(run, "lora", run.dir / "lora" / "update")),
    )
    state = device.apply(packages["sft"], device_dir, keys[1])
    assert (state["active"]["variant"], state["previous"]["variant"]) == ("sft", "lora")
    sft_logits = logits(device.load_active(device_dir).model)
    assert not torch.equal(sft_logits, base_logits)
    assert torch.equal(sft_logits, logits(tuned_from(run, "sft", run.dir / "sft" / "update")))
    state = device.rollback(device_dir)
    assert (state["active"]["variant"], state["previous"]["variant"]) == ("lora", "sft")
    answer, route, *_ = device.generate(device_dir, "Name a bone.", 4)
    assert isinstance(answer, str) and route is None  # a single update: no routing
    with pytest.raises(PackageError, match="downgrade"):  # the operator rolled back; a package cannot
        device.apply(packages["lora"], device_dir, keys[1])
    assert device.status(device_dir)["active"]["variant"] == "lora"


def test_device_refuses_unverified_packages(device_dir, packages, keys, tmp_path):
    with pytest.raises(PackageError, match="give --allow-unsigned"):
        device.apply(packages["unsigned"], device_dir, None)
    bad = tmp_path / "bad.eaupd"
    bad.write_bytes(flip(packages["lora"].read_bytes(), update_offset(packages["lora"])))
    with pytest.raises(PackageError):
        device.apply(bad, device_dir, keys[1])
    assert device.status(device_dir)["active"] is None and not (device_dir / "updates").exists()


def test_status_notices_a_damaged_active_update(device_dir, packages, keys):
    state = device.apply(packages["lora"], device_dir, keys[1])
    target = device_dir / "updates" / state["active"]["id"] / "adapter_model.safetensors"
    target.write_bytes(flip(target.read_bytes(), 100))
    with pytest.raises(PackageError, match="does not match the hash recorded"):
        device.status(device_dir)


@pytest.mark.parametrize("point", device.CRASH_POINTS)
def test_a_killed_apply_leaves_the_old_or_the_new_update_complete(
    device_dir, packages, keys, point, monkeypatch
):
    device.apply(packages["lora"], device_dir, keys[1])
    cmd = [
        sys.executable,
        "-m",
        "edgeadapt.cli",
        "device",
        "apply",
        str(packages["sft"]),
        "--device-dir",
        str(device_dir),
        "--pubkey",
        str(keys[1]),
    ]
    # TMPDIR beside the device: a SIGKILL runs no cleanup, and what it leaves is looked for there.
    env = {**os.environ, build.CRASH_ENV: point, "TMPDIR": str(device_dir.parent)}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = device.status(device_dir)  # re-hashes the active and previous updates
    switched = point == "switched"
    assert state["active"]["variant"] == ("sft" if switched else "lora")
    assert (state["previous"] or {}).get("variant") == ("lora" if switched else None)
    # The retry runs in this process: the CLI's own exit codes are the CLI tests' business, and a second
    # child per point (torch imported again) cost half this test's time. It removes what the kill left.
    monkeypatch.setattr("tempfile.tempdir", str(device_dir.parent))
    if switched:  # the kill came after the switch: the same package again is a replay, and refused
        with pytest.raises(PackageError, match="replay"):
            device.apply(packages["sft"], device_dir, keys[1])
    else:
        device.apply(packages["sft"], device_dir, keys[1])
    state = device.status(device_dir)
    assert state["active"]["variant"] == "sft" and state["incomplete_staging"] == []
    assert sorted(p.name for p in device_dir.parent.glob("edgeadapt-*")) == []


def mutations(package: Path, keys, rng: random.Random):
    """Yield (description, bytes) for random hostile edits of a valid package."""
    data = package.read_bytes()
    members = members_of(package)

    def canonical(m):
        buffer = Path(package.parent / "fuzz-tmp.eaupd")
        archive.write(buffer, list(m.items()))
        return buffer.read_bytes()

    kinds = ["flip", "flip", "flips", "truncate", "rename", "manifest", "oversized", "insert", "zstd"]
    while True:
        kind = rng.choice(kinds)
        if kind in ("flip", "flips"):
            out = data
            for _ in range(1 if kind == "flip" else rng.randint(2, 16)):
                out = flip(out, rng.randrange(len(out)))
            yield kind, out
        elif kind == "truncate":
            yield kind, data[: rng.randrange(len(data))]
        elif kind == "insert":
            at = rng.randrange(len(data))
            yield kind, data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 600))) + data[at:]
        elif kind == "rename":
            name = rng.choice(list(members))
            new = rng.choice(
                [
                    "update/../x",
                    "/abs",
                    "update/a b",
                    "manifest.jsn",
                    "update/" + "y" * 150,
                    name[:-1] + rng.choice([c for c in "!#%+019AZaz~" if c != name[-1]]),
                ]
            )
            yield kind, canonical_or_raw(members, name, new, canonical)
        elif kind == "manifest":
            manifest = json.loads(members["manifest.json"])
            key = rng.choice(sorted(manifest))
            choices = [v for v in (None, 0, "x", [], {}, True, -1, manifest["files"]) if v != manifest[key]]
            manifest[key] = rng.choice(choices)
            yield kind, canonical(members | {"manifest.json": mf.encode(manifest)})
        elif kind == "oversized":
            manifest = json.loads(members["manifest.json"])
            manifest["metrics"]["x" * rng.randint(600, 5000)] = 1.0
            data_m = mf.encode(manifest)
            yield (
                kind,
                canonical(members | {"manifest.json": data_m, "manifest.sig": keymod.sign(data_m, keys[0])}),
            )
        else:
            import zstandard

            packed = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(data))
            for _ in range(rng.randint(1, 4)):
                packed[rng.randrange(len(packed))] ^= 1 << rng.randrange(8)
            yield kind, bytes(packed)


def canonical_or_raw(members, name, new, canonical):
    try:
        return canonical({(new if k == name else k): v for k, v in members.items()})
    except ValueError:  # the standard library refuses to write a name this long: corrupt the header instead
        return canonical(members).replace(name.encode(), new.encode()[: len(name)], 1)


def fuzz(package: Path, keys, cases: int, tmp_path: Path) -> dict[str, int]:
    rng, counts = random.Random(1234), {}
    plain = package.read_bytes()
    target = tmp_path / "case.eaupd"
    for index, (kind, data) in zip(range(cases), mutations(package, keys, rng)):
        target.write_bytes(data)
        try:
            verified = build.verify(target, keys[1])
        except PackageError:
            counts[kind] = counts.get(kind, 0) + 1
            continue
        except Exception as exc:  # noqa: BLE001 - anything but a clean rejection fails the test
            pytest.fail(f"case {index} ({kind}): {type(exc).__name__}: {exc}")
        # Accepted: only a compressed stream that still decompresses to the very same package may be.
        content = verified.opened.path.read_bytes()
        verified.opened.close()
        assert kind == "zstd" and content == plain, f"case {index} ({kind}) was accepted"
        counts["zstd (no-op, identical content)"] = counts.get("zstd (no-op, identical content)", 0) + 1
    return counts


def test_fuzzed_packages_are_all_rejected_cleanly(packages, keys, tmp_path):
    counts = fuzz(packages["lora"], keys, FUZZ_CASES, tmp_path)
    assert sum(counts.values()) == FUZZ_CASES
    assert {"flip", "truncate", "rename", "manifest", "oversized", "insert", "zstd"} <= set(counts)


@pytest.mark.slow
def test_fuzz_thousands_of_cases(packages, keys, tmp_path):
    assert sum(fuzz(packages["lora"], keys, LONG_FUZZ_CASES, tmp_path).values()) == LONG_FUZZ_CASES


def test_keys_are_never_overwritten_and_private_key_is_private(tmp_path):
    private, public = keymod.generate_keys(tmp_path, "k")
    assert private.stat().st_mode & 0o077 == 0
    with pytest.raises(PackageError, match="never overwritten"):
        keymod.generate_keys(tmp_path, "k")
    # the public file holds the private key's own public half
    assert keymod.public_key_bytes(public) == keymod.raw_public(keymod.private_key(private).public_key())


def test_package_sizes_writes_a_report_section(smoke_run, tmp_path):
    run_copy = tmp_path / "smoke"
    shutil.copytree(smoke_run, run_copy)
    results = ship.package_sizes(str(run_copy), dtypes=("fp32", "int8"), log=lambda _: None)
    rows = results["packages"]["rows"]
    assert len(rows) == 2 * len(results["methods"])
    for row in rows:
        assert row["compressed_bytes"] > 0 and row["package_bytes"] >= row["raw_bytes"]
        assert (row["dtype_cost"] is None) == (row["dtype"] == "fp32")
    render(results, run_copy)  # what `edgeadapt package sizes` does after measuring
    assert "## Update packages" in (run_copy / "report.md").read_text()
    packed = build.verify(run_copy / "packages" / "lora-int8.eaupd.zst", allow_unsigned=True)
    assert packed.opened.path.read_bytes() == (run_copy / "packages" / "lora-int8.eaupd").read_bytes()
    packed.opened.close()
