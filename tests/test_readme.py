"""The README cannot drift from the code unnoticed: every command of its Usage and over-the-air blocks parses
with the CLI as written (its options exist), the config table names exactly each section's keys with the
defaults the dataclasses hold, and every option of every command says what it does."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import typing

import pytest
import yaml

from edgeadapt.cli.main import parser
from edgeadapt.core import config
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def commands(text: str) -> list[str]:
    """Every `edgeadapt ...` line of the bash blocks in `text`, its comment removed."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.split(r"\s+#\s", line.strip())[0].strip()
            if line.startswith("edgeadapt "):
                lines.append(line)
    return lines


def as_written(line: str) -> list[str]:
    """The command's words as a user would type them: the first of each `a|b` choice, optional `[...]`
    parts included, `...` left out."""
    words = []
    for word in shlex.split(line.replace("[", " ").replace("]", " "))[1:]:
        if word in ("...", "|"):
            continue
        if re.fullmatch(r"[A-Z][A-Z_]*", word) and words and words[-1].startswith("--"):
            word = "1"  # a placeholder value (N, D, R): a number serves every option
        words.append(word.split("|")[0] if "|" in word and "=" not in word else word)
    cut = words.index("--library") if "--library" in words and "--expert" in words else None
    return words[: cut + 1] + words[words.index("--out") :] if cut is not None else words


DOCUMENTED = commands(section("Usage")) + commands(section("Over-the-air updates"))
DOCUMENTED += commands(section("Adapter library and router")) + commands(
    section("Adapters from a task description (LoRA-Gen)")
)
DOCUMENTED += commands(section("Run it on a device"))


def test_the_readme_documents_the_commands():
    assert len(DOCUMENTED) >= 40 and any(c.startswith("edgeadapt device init") for c in DOCUMENTED)


@pytest.mark.parametrize("line", DOCUMENTED)
def test_every_documented_command_parses_as_written(line):
    top = parser()
    try:
        args, extra = top.parse_known_args(as_written(line))
    except SystemExit as exc:  # argparse's error exit: an option or a choice the README invented
        pytest.fail(f"README command does not parse: {line} ({exc})")
    stray = [e for e in extra if e.startswith("-") or ("=" not in e and not hasattr(args, "arg"))]
    assert not stray, f"{line}: unknown options {stray}"


def sections_of_table() -> dict[str, str]:
    table = section("Usage").split("| section | keys |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1]
    return rows


SECTIONS = {
    "top": None,
    "model": config.ModelConfig,
    "data": config.DataConfig,
    "train": config.TrainConfig,
    "eval": config.EvalConfig,
    "recovery": config.RecoveryConfig,
    "analysis": config.AnalysisConfig,
    "transfer": config.TransferConfig,
    "sweep": config.SweepConfig,
    "edge": config.EdgeConfig,
}


@pytest.mark.parametrize("name", list(SECTIONS))
def test_the_config_table_names_every_key_of_its_section_and_its_defaults(name):
    cell = sections_of_table()[name]
    listed = re.findall(r"(?:^|, )`(\w+)`", re.sub(r"\([^()]*\)", "", cell))  # the keys, not what they hold
    if SECTIONS[name] is None:
        hints = typing.get_type_hints(config.RunConfig)
        fields = [f for f, hint in hints.items() if not dataclasses.is_dataclass(hint)]
        expected = [f for f in fields if f not in ("methods", "base_dir")]
    else:
        expected = [f.name for f in dataclasses.fields(SECTIONS[name])]
    assert sorted(listed) == sorted(expected), name
    defaults = (
        {
            f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
            for f in dataclasses.fields(SECTIONS[name])
        }
        if SECTIONS[name]
        else {}
    )
    for key, stated in re.findall(r"`(\w+)` \(([^()]*)\)", cell):
        text = stated.removeprefix("default ").strip()
        if not re.fullmatch(r"[\d.,\[\]\s-]+|true|false", text):
            continue  # words, not a value: "(pack or folder)", "(0: `steps` decides)"
        value = yaml.safe_load(f"[{text}]" if "," in text and not text.startswith("[") else text)
        if key in defaults:
            assert value == defaults[key], (
                f"{name}.{key}: README says {stated!r}, the default is {defaults[key]!r}"
            )


def test_every_option_of_every_command_says_what_it_does():
    top = parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {a.option_strings or a.dest}"
        for name, command in sub.choices.items()
        for a in command._actions
        if a.help is None and not isinstance(a, argparse._HelpAction) and a.dest != "action"
    ]
    assert not missing and all(c.description for c in sub.choices.values()), missing
