"""Updates a device can trust, round two: each attack of the second review replayed on the tiny model. Every
one is refused with exit code 2, one `error:` line and the device unchanged, or (for the operator's own
switches) done and reported with a warning; none ends in a traceback."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from edgeadapt.cli import main
from edgeadapt.core.errors import UserError
from edgeadapt.deploy import build, device, library_packages
from edgeadapt.deploy import keys as keymod
from edgeadapt.deploy.archive import PackageError
from edgeadapt.deploy.health_rules import degenerate
from edgeadapt.deploy.trust import iso, now
from edgeadapt.routing.scar import ScarRouter
from edgeadapt.updates.library import Expert, Library
from tests.device_helpers import (
    PYTORCH,
    cli_apply,
    edit_json,
    edit_tensor,
    export,
    files_of,
    fresh_device,
    refused,
    resigned_manifest,
    resigned_update,
)


def refused_in_process(argv: list[str], capsys, message: str) -> None:
    """main() returns 2 with one error line naming `message` (an exception escaping main is a traceback)."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err


# --- 1. time of check to time of use --------------------------------------------------------------------


def test_a_package_rewritten_after_verification_installs_only_the_signed_bytes(opened, keyring, tmp_path):
    package = export(opened, "lora", tmp_path / "p.eaupd", 1, keyring["update"][0])
    signed = package.read_bytes()
    verified = build.verify(package, keyring["update"][1])
    other = export(opened, "hlora", tmp_path / "o.eaupd", 1, keyring["update"][0])
    package.write_bytes(other.read_bytes())  # rewritten right after verification
    try:
        written = build.extract(verified, tmp_path / "out")
    finally:
        verified.opened.close()
    listed = {f["path"].split("/", 1)[1]: f["sha256"] for f in verified.manifest["files"]}
    assert {p.name: build.file_entry(p, p.name)["sha256"] for p in written} == listed
    assert signed != package.read_bytes()


def test_a_package_rewritten_every_millisecond_during_applies_never_installs_unsigned_bytes(
    opened, keyring, tmp_path
):
    good = [export(opened, "lora", tmp_path / f"v{v}.eaupd", v, keyring["update"][0]) for v in (1, 2, 3, 4)]
    evil = export(opened, "hlora", tmp_path / "evil.eaupd", 99, keyring["rogue"][0]).read_bytes()
    dev = fresh_device(tmp_path)
    target, stop = tmp_path / "incoming.eaupd", threading.Event()

    def rewrite():
        while not stop.is_set():
            target.write_bytes(evil)
            time.sleep(0.001)

    for package in good:
        target.write_bytes(package.read_bytes())
        thread = threading.Thread(target=rewrite)
        thread.start()
        try:
            device.apply(target, dev, keyring["update"][1])
        except PackageError:
            pass  # the race reached the file before it was opened: refused, which is fine
        finally:
            stop.set()
            thread.join()
            stop.clear()
        state = device.read_state(dev)
        if state["active"]:  # every installed file is the one its signed manifest lists, byte for byte
            folder = dev / "updates" / state["active"]
            installed = json.loads((folder / device.INSTALLED).read_text())
            listed = {f["path"].split("/", 1)[1]: f["sha256"] for f in installed["manifest"]["files"]}
            assert {n: build.file_entry(folder / n, n)["sha256"] for n in listed} == listed


def test_an_extracted_file_changed_on_disk_is_refused(opened, keyring, tmp_path, monkeypatch):
    package = export(opened, "lora", tmp_path / "p.eaupd", 1, keyring["update"][0])
    verified = build.verify(package, keyring["update"][1])
    real = build.fsync_path

    def tamper(path: Path):  # another process rewrites the file between its write and its check
        real(path)
        if path.suffix == ".safetensors":
            path.write_bytes(path.read_bytes()[:-1] + b"\x00")

    monkeypatch.setattr(build, "fsync_path", tamper)
    with pytest.raises(PackageError, match="differs from the signed manifest"):
        build.extract(verified, tmp_path / "out")
    verified.opened.close()


# --- 2 and 13: names that are paths; experts from another library; the base binding -----------------------


def make_library(opened, folder: Path, seed: int = 0) -> Path:
    """A library of two experts (the smoke run's lora and hlora adapters) and a SCAR router on the tiny
    model, built without training anything."""
    from edgeadapt import models

    run, _ = opened
    library = Library.create(folder, "tiny-random", models.resolve("tiny-random"))
    for name, variant in (("alpha", "lora"), ("beta", "hlora")):
        library.add(name, Expert(name, f"the {name} domain", "lora", 8), run.update_dir(variant))
    torch.manual_seed(seed)
    router = ScarRouter(
        ["alpha", "beta"], torch.randn(3, 64), torch.randn(64), torch.rand(64) + 0.5, 1, 0.1, 0.5, 2
    )
    library.router, library.router_id = router.save(folder), router.identity()
    library.save()
    return folder


def library_package(opened, keyring, tmp_path: Path, edit=None, name: str = "lib", version: int = 1) -> Path:
    folder = make_library(opened, tmp_path / f"{name}-library")
    if edit:
        edit(folder)
    out = tmp_path / f"{name}.eaupd"
    library_packages.export_library(
        folder, out, sign_key=keyring["update"][0], release=build.release(version), runtime=PYTORCH
    )
    return out


def expert_package(library: Path, name: str, out: Path, keyring, version: int | None = None) -> dict:
    """One expert of `library` as a package for a transformers device, signed by the update key."""
    release = build.release(version) if version is not None else None
    return library_packages.export_expert(
        library, name, out, sign_key=keyring["update"][0], release=release, runtime=PYTORCH
    )


def test_an_expert_named_by_a_path_is_refused_where_it_is_read(opened, tmp_path):
    folder = make_library(opened, tmp_path / "lib")
    data = json.loads((folder / "library.json").read_text())
    spec = data["experts"]["alpha"]
    for name in ("/etc/passwd", "../../base", "a/b"):
        data["experts"] = {name: spec}
        (folder / "library.json").write_text(json.dumps(data))
        with pytest.raises(UserError, match="not a plain name"):
            Library.read(folder)
    with pytest.raises(UserError, match="not a plain name"):
        Library(folder, "b", "f").expert_dir("/abs")


def test_a_signed_library_whose_router_names_other_experts_is_refused(opened, keyring, tmp_path):
    def rename(folder: Path):
        spec = json.loads((folder / "router.json").read_text())
        spec["experts"] = ["alpha", "/etc/passwd"]
        (folder / "router.json").write_text(json.dumps(spec))

    package = library_package(opened, keyring, tmp_path, rename)
    dev = fresh_device(tmp_path)
    before = files_of(dev)
    refused(cli_apply(package, dev, "--pubkey", str(keyring["update"][1])), "the router routes to")
    assert files_of(dev) == before


def test_an_expert_package_names_a_plain_name_and_its_router(opened, keyring, tmp_path):
    lib = make_library(opened, tmp_path / "lib")
    package = expert_package(lib, "beta", tmp_path / "e.eaupd", keyring)
    for change, message in (
        (lambda m: m["experts"][0].update(name="/abs/path"), "not a plain name"),
        (lambda m: m.update(experts=[]), "lists one expert"),
        (lambda m: m["experts"][0].pop("domain"), "needs a name, a domain"),
        (lambda m: m.pop("router_id"), "router_id"),
    ):
        assert package["manifest"]["router_id"]
        bad = resigned_manifest(tmp_path / "e.eaupd", tmp_path / "bad.eaupd", keyring["update"][0], change)
        with pytest.raises(PackageError, match=message):
            build.verify(bad, keyring["update"][1]).opened.close()


def test_an_expert_from_a_library_with_another_router_does_not_join(opened, keyring, tmp_path):
    dev = fresh_device(tmp_path)
    assert (
        cli_apply(
            library_package(opened, keyring, tmp_path), dev, "--pubkey", str(keyring["update"][1])
        ).returncode
        == 0
    )
    other = make_library(opened, tmp_path / "other", seed=1)  # another normalization: keys mean other things
    spec = json.loads((other / "library.json").read_text())
    spec["experts"]["gamma"] = spec["experts"].pop("beta")
    (other / "library.json").write_text(json.dumps(spec))
    (other / "experts" / "beta").rename(other / "experts" / "gamma")
    router = json.loads((other / "router.json").read_text())
    router["experts"] = ["alpha", "gamma"]
    (other / "router.json").write_text(json.dumps(router))
    package = expert_package(other, "gamma", tmp_path / "g.eaupd", keyring, version=2)
    before = files_of(dev)
    refused(
        cli_apply(Path(tmp_path / "g.eaupd"), dev, "--pubkey", str(keyring["update"][1])),
        "made for another router",
    )
    assert files_of(dev) == before and package["manifest"]["router_id"]


def test_a_library_bound_to_another_base_is_refused_whatever_the_signer_claims(opened, keyring, tmp_path):
    """The manifest claims this device's base; the library inside was made for another one."""
    folder = make_library(opened, tmp_path / "lib")
    library = Library.read(folder)
    fields = library_packages.fields(library, "library", list(library.experts)) | build.release(1)
    edit_json("library.json", lambda d: d["base_model"].update(fingerprint="0" * 64))(folder)
    sources = [("library/library.json", folder / "library.json")]
    sources += [(f"library/{f}", folder / f) for f in library.router]
    sources += [src for name in library.experts for src in library_packages.expert_sources(library, name)]
    package = tmp_path / "lib.eaupd"
    build.build_members(sources, package, fields, "fp32", keyring["update"][0])
    dev = fresh_device(tmp_path)
    refused(cli_apply(package, dev, "--pubkey", str(keyring["update"][1])), "the library was trained on base")


# --- 3. adapter_config.json options that change the model --------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("layer_replication", [[0, 2], [0, 2]]),
        ("modules_to_save", ["lm_head"]),
        ("target_modules", ".*"),
        ("trainable_token_indices", [1, 2]),
        ("use_dora", True),
        ("a_new_option", 1),
    ],
)
def test_an_adapter_config_option_that_changes_the_model_is_refused(opened, keyring, tmp_path, option, value):
    package = resigned_update(
        opened,
        keyring,
        tmp_path,
        "lora",
        edit_json("adapter_config.json", lambda c: c.update({option: value})),
        option,
    )
    dev = fresh_device(tmp_path)
    before = files_of(dev)
    refused(cli_apply(package, dev, "--pubkey", str(keyring["update"][1])), "adapter_config.json")
    assert files_of(dev) == before


# --- 5. a health check that notices --------------------------------------------------------------------


def test_an_update_that_wrecks_general_text_is_refused(opened, keyring, tmp_path):
    package = resigned_update(
        opened, keyring, tmp_path, "sft", edit_tensor("model.safetensors", lambda t: t * 40), "wreck"
    )
    dev = fresh_device(tmp_path)
    before = files_of(dev)
    refused(cli_apply(package, dev, "--pubkey", str(keyring["update"][1])), "the bound the package states")
    assert files_of(dev) == before


@pytest.mark.parametrize(
    ("answer", "bad"),
    [
        ("XXXXXXXX", True),
        ("the the the the the", True),
        ("", True),
        ("Hello there, nice to meet you.", False),
        ("Paris", False),
    ],
)
def test_a_degenerate_answer_is_one_character_or_word_over_and_over(answer, bad):
    assert degenerate(answer) == bad


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, s: t.update(mean=torch.full_like(t["mean"], float("nan"))), "not finite"),
        (lambda t, s: t.update(std=torch.zeros_like(t["std"])), "zero std"),
        (lambda t, s: s.update(temperature=0.0), "temperature"),
        (lambda t, s: s.update(top_k=0), "top_k"),
        (lambda t, s: s.update(tau=1.0), "tau"),
        (lambda t, s: s.update(experts=["alpha", "alpha"]), "the router routes to"),
    ],
)
def test_a_library_whose_router_would_route_nothing_or_everything_is_refused(
    opened, keyring, tmp_path, change, message
):
    from safetensors.torch import load_file, save_file

    def edit(folder: Path):
        tensors, spec = (
            load_file(str(folder / "router.safetensors")),
            json.loads((folder / "router.json").read_text()),
        )
        change(tensors, spec)
        save_file(tensors, str(folder / "router.safetensors"))
        (folder / "router.json").write_text(json.dumps(spec))

    package = library_package(opened, keyring, tmp_path, edit)
    dev = fresh_device(tmp_path)
    refused(cli_apply(package, dev, "--pubkey", str(keyring["update"][1])), message)


# --- 6 and 7: room is made only for a good update; switches report, not fail ---------------------------------


def test_a_refused_update_never_costs_the_rollback_target(opened, keyring, tmp_path, monkeypatch):
    pub = keyring["update"][1]
    dev = fresh_device(tmp_path)
    device.apply(export(opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0]), dev, pub)
    device.apply(export(opened, "hlora", tmp_path / "v2.eaupd", 2, keyring["update"][0]), dev, pub)
    nan = edit_tensor("adapter_model.safetensors", lambda t: t.fill_(float("nan")))
    bad = resigned_update(opened, keyring, tmp_path, "lora", nan, "nan", version=3)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=1 << 20))  # short of room
    before = files_of(dev)
    with pytest.raises(PackageError, match="NaN or infinite"):
        device.apply(bad, dev, pub)
    assert files_of(dev) == before and device.status(dev)["previous"]["variant"] == "lora"


def damage(dev: Path, update_id: str) -> None:
    target = next(p for p in (dev / "updates" / update_id).glob("*.safetensors"))
    target.write_bytes(target.read_bytes()[:-8] + b"\x00" * 8)


def test_switches_that_leave_a_damaged_previous_succeed_and_say_so(opened, keyring, tmp_path, capsys):
    pub = str(keyring["update"][1])
    dev = fresh_device(tmp_path)
    for version, variant in ((1, "lora"), (2, "hlora")):
        assert (
            cli_apply(
                export(opened, variant, tmp_path / f"v{version}.eaupd", version, keyring["update"][0]),
                dev,
                "--pubkey",
                pub,
            ).returncode
            == 0
        )
    damage(dev, device.read_state(dev)["active"])
    assert main(["device", "rollback", "--device-dir", str(dev)]) == 0  # switched, and exit 0
    out = capsys.readouterr()
    assert (
        "warning: the previous update is damaged" in out.err
        and device.status(dev)["active"]["variant"] == "lora"
    )
    v3 = export(opened, "sft", tmp_path / "v3.eaupd", 3, keyring["update"][0])
    done = cli_apply(v3, dev, "--pubkey", pub)  # the damaged one is previous again only until this switch
    assert done.returncode == 0 and device.status(dev)["active"]["variant"] == "sft", done.stderr[-2000:]


def test_an_expert_does_not_join_a_damaged_library(opened, keyring, tmp_path):
    pub = str(keyring["update"][1])
    dev = fresh_device(tmp_path)
    assert cli_apply(library_package(opened, keyring, tmp_path), dev, "--pubkey", pub).returncode == 0
    lib = make_library(opened, tmp_path / "same")
    expert_package(lib, "beta", tmp_path / "e.eaupd", keyring, version=2)
    active = device.read_state(dev)["active"]
    (dev / "updates" / active / "experts" / "alpha" / "adapter_model.safetensors").write_bytes(b"damaged")
    refused(cli_apply(tmp_path / "e.eaupd", dev, "--pubkey", pub), "does not match the hash recorded")
    assert device.read_state(dev)["active"] == active


# --- 8. temporary files never follow a planted link --------------------------------------------------


def test_planted_temporary_file_links_are_never_written_through(opened, keyring, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    dev = fresh_device(tmp_path, root_pubkeys=[keyring["root"][1]])
    for name in ("state.json.tmp", "trust.json.tmp", ".state.json.tmp"):
        (dev / name).symlink_to(outside)
    from tests.device_helpers import keylist_file

    assert main(["device", "trust", str(keylist_file(tmp_path, keyring, 1)), "--device-dir", str(dev)]) == 0
    assert (
        cli_apply(export(opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0]), dev).returncode == 0
    )
    assert outside.read_text() == "mine"


# --- 9 and 10: what is printed, and every hostile input a line --------------------------------------------


def test_terminal_escapes_in_a_manifest_are_shown_not_acted_on(opened, keyring, tmp_path, capsys):
    good = export(opened, "lora", tmp_path / "g.eaupd", 1, keyring["update"][0])
    fake = "lora\x1b[2K\r" + str(good) + ": OK (hashes, signature, base)\x07"
    bad = resigned_manifest(
        good, tmp_path / "b.eaupd", keyring["update"][0], lambda m: m.update(variant=fake)
    )
    assert main(["package", "verify", str(bad), "--pubkey", str(keyring["update"][1])]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out and "\\x1b[2K" in out


def test_hostile_operator_input_and_device_state_are_one_line_each(opened, keyring, tmp_path, capsys):
    dev = fresh_device(tmp_path)
    key = str(keyring["update"][0])
    for days in ("nan", "inf", "1e9"):
        refused_in_process(
            [
                "package",
                "export",
                str(opened[0].dir),
                "--method",
                "lora",
                "--out",
                str(tmp_path / "x.eaupd"),
                "--sign",
                key,
                "--expires-days",
                days,
            ],
            capsys,
            "--expires-days",
        )
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused_in_process(
        [
            "package",
            "export",
            str(opened[0].dir),
            "--method",
            "lora",
            "--out",
            str(tmp_path / "x.eaupd"),
            "--keylist",
            str(deep),
        ],
        capsys,
        "not a readable key list",
    )
    refused_in_process(
        ["device", "generate", "--device-dir", str(dev), "hi", "--max-new-tokens", "-1"],
        capsys,
        "--max-new-tokens",
    )
    for content in (
        '{"active": 5, "previous": null}',
        '{"active": null, "previous": null, "highest": []}',
        "[" * 100_000,
    ):
        (dev / "state.json").write_text(content)
        refused_in_process(["device", "status", "--device-dir", str(dev)], capsys, "state.json is corrupt")
    (dev / "state.json").unlink()
    (dev / "state.json").mkdir()
    refused_in_process(["device", "status", "--device-dir", str(dev)], capsys, "state.json is corrupt")


def test_hostile_key_lists_trust_files_and_records_are_one_line_each(opened, keyring, tmp_path, capsys):
    from tests.device_helpers import keylist_file

    dev = fresh_device(tmp_path, root_pubkeys=[keyring["root"][1]])
    document = json.loads(keylist_file(tmp_path, keyring, 1).read_text())
    document["signatures"][0]["key_id"] = ["a", "list"]  # before anything is authenticated
    (tmp_path / "kl.json").write_text(json.dumps(document))
    refused_in_process(
        ["device", "trust", str(tmp_path / "kl.json"), "--device-dir", str(dev)],
        capsys,
        "key_id and signature",
    )
    (dev / "trust.json").write_text("[" * 100_000)
    refused_in_process(["device", "status", "--device-dir", str(dev)], capsys, "trust.json is corrupt")
    plain = fresh_device(tmp_path, "plain")
    assert (
        cli_apply(
            export(opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0]),
            plain,
            "--pubkey",
            str(keyring["update"][1]),
        ).returncode
        == 0
    )
    record = next((plain / "updates").glob("*/.installed.json"))
    record.write_text("[" * 100_000)
    refused_in_process(
        ["device", "status", "--device-dir", str(plain)], capsys, ".installed.json: unreadable"
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: {**t, **{k + ".absmax_scale": torch.ones(3) for k in list(t)[:1]}},
            "not a readable int8 update",
        ),
        (None, "not a readable int8 update"),
    ],
)
def test_a_hostile_int8_package_is_refused(opened, keyring, tmp_path, edit, message):
    from safetensors.torch import load_file, save_file

    def change(folder: Path):
        path = folder / "adapter_model.safetensors"
        if edit is None:
            path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
        else:
            save_file(edit(load_file(str(path))), str(path))

    run, results = opened
    from edgeadapt.deploy import run_packages

    folder = tmp_path / "u"
    shutil.copytree(run.update_dir("lora"), folder)
    change(folder)
    fields = run_packages.manifest_fields(
        run, results, "lora", run_packages.base_fingerprint(run.model_path)
    ) | build.release(1)
    out = tmp_path / "int8.eaupd"
    build.build_members(
        [(f"update/{p.name}", p) for p in build.update_files(folder)],
        out,
        {**fields, "dtype": "int8"},
        "fp32",
        keyring["update"][0],
    )
    refused(cli_apply(out, fresh_device(tmp_path), "--pubkey", str(keyring["update"][1])), message)


# --- 11. packages that must apply ---------------------------------------------------------------------


def test_a_genuine_qlora_package_applies(opened, keyring, tmp_path):
    package = export(opened, "qlora", tmp_path / "q.eaupd", 1, keyring["update"][0])
    dev = fresh_device(tmp_path)
    done = cli_apply(package, dev, "--pubkey", str(keyring["update"][1]))
    assert done.returncode == 0 and device.status(dev)["active"]["method"] == "qlora", done.stderr[-2000:]


def test_a_thirty_expert_library_exports_and_applies(opened, keyring, tmp_path):
    from edgeadapt import models

    run, _ = opened
    folder = tmp_path / "big"
    library = Library.create(folder, "tiny-random", models.resolve("tiny-random"))
    names = [f"e{i:02d}" for i in range(30)]
    for name in names:
        library.add(name, Expert(name, name, "lora", 8), run.update_dir("lora"))
    router = ScarRouter(names, torch.randn(31, 64), torch.zeros(64), torch.ones(64), 1, 0.1, 0.5, 2)
    library.router, library.router_id = router.save(folder), router.identity()
    library.save()
    out = tmp_path / "big.eaupd"
    library_packages.export_library(
        folder, out, sign_key=keyring["update"][0], release=build.release(1), runtime=PYTORCH
    )
    dev = fresh_device(tmp_path)
    assert cli_apply(out, dev, "--pubkey", str(keyring["update"][1])).returncode == 0
    assert device.status(dev)["active"]["experts"] == names


# --- 12. freeze and the device clock -------------------------------------------------------------------


def test_an_expired_active_update_is_served_with_a_warning(opened, keyring, tmp_path, monkeypatch, capsys):
    from edgeadapt.deploy import device_state

    dev = fresh_device(tmp_path)
    package = export(
        opened, "lora", tmp_path / "v1.eaupd", 1, keyring["update"][0], expires=iso(now() + timedelta(days=1))
    )
    device.apply(package, dev, keyring["update"][1])
    monkeypatch.setattr(device_state, "now", lambda: now() + timedelta(days=2))
    state = device.status(dev)
    assert state["active"]["expired"] is True and any("expired" in w for w in device.warnings_of(state))
    assert main(["device", "generate", "--device-dir", str(dev), "hi", "--max-new-tokens", "2"]) == 0
    assert "warning: the active update expired" in capsys.readouterr().err


def test_a_package_created_in_the_future_is_refused(opened, keyring, tmp_path):
    good = export(opened, "lora", tmp_path / "g.eaupd", 1, keyring["update"][0])
    future = resigned_manifest(
        good,
        tmp_path / "f.eaupd",
        keyring["update"][0],
        lambda m: m.update(created="2100-01-01T00:00:00+00:00", expires="2101-01-01T00:00:00+00:00"),
    )
    refused(cli_apply(future, fresh_device(tmp_path), "--pubkey", str(keyring["update"][1])), "in the future")


# --- 14 and 15 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", ["added_tokens.json", "additional_chat_templates/tool_use.jinja"])
def test_the_base_fingerprint_covers_every_file_that_changes_the_prompt(tmp_path, extra):
    from edgeadapt import models
    from edgeadapt.models.fingerprint import fingerprint

    base = tmp_path / "base"
    shutil.copytree(models.resolve("tiny-random"), base)
    before = fingerprint(base)
    (base / extra).parent.mkdir(parents=True, exist_ok=True)
    (base / extra).write_text('{"<tool>": 300}')
    assert fingerprint(base) != before


def test_a_prompt_that_starts_with_a_dash_is_taken_after_two_dashes(tmp_path, capsys):
    dev = fresh_device(tmp_path)
    assert (
        main(["device", "generate", "--device-dir", str(dev), "--max-new-tokens", "2", "--", "-what is 2+2?"])
        == 0
    )


def test_a_root_key_given_twice_is_one_key(keyring, tmp_path):
    with pytest.raises(PackageError, match=r"number of distinct root keys \(1\)"):
        fresh_device(tmp_path, root_pubkeys=[keyring["root"][1], keyring["root"][1]], root_threshold=2)


def test_a_public_key_given_to_sign_is_named_for_what_it_is(keyring, tmp_path):
    with pytest.raises(PackageError, match="this is a public key"):
        keymod.sign(b"x", keyring["update"][1])


def test_a_kill_while_the_update_is_saved_resumes_without_a_phantom_step(tmp_path):
    from tests.helpers import SMOKE

    args = ["train", str(SMOKE), f"out_dir={tmp_path}", "--method", "lora", "train.save_every=2"]
    assert main(args) == 0
    folder = tmp_path / "smoke" / "lora"
    first = (folder / "update" / "adapter_model.safetensors").read_bytes()
    (folder / "train_result.json").unlink()  # the kill came after the last step, before its result was saved
    for _ in range(2):  # resumed twice: the first finishes the run, the second reuses it
        assert main([*args, "--resume"]) == 0
        result = json.loads((folder / "train_result.json").read_text())
        assert result["steps"] == 4 and [p["step"] for p in result["curve"]] == [0, 2, 4]
    assert (folder / "update" / "adapter_model.safetensors").read_bytes() == first
