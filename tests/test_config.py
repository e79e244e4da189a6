from pathlib import Path

import pytest

from edgeadapt import updates
from edgeadapt.core import config
from edgeadapt.core.errors import UserError

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_its_methods_validate(path):
    cfg = config.load(path)
    assert cfg.methods
    parsed = updates.parse_configs(cfg.methods)
    assert set(parsed) == set(cfg.methods)


def test_shipped_configs_include_demo_and_smoke():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "smoke.yaml"}


def test_unknown_key_names_it_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  stpes: 3\n")
    with pytest.raises(UserError, match=r"train: unknown key 'stpes'. Did you mean 'steps'\?"):
        config.load(path)


def test_all_problems_are_reported_at_once(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  steps: 0\n  batch_size: many\nmodel:\n  dtype: fp8\n")
    with pytest.raises(UserError) as info:
        config.load(path)
    message = str(info.value)
    assert "train.batch_size: expected int" in message
    assert "train.steps: must be > 0" in message
    assert "model.dtype" in message


def test_overrides_parse_yaml_values_and_nest():
    cfg = config.load(None, ["train.steps=7", "methods.lora.rank=16", "eval.probes=13", "name=x"])
    assert cfg.train.steps == 7 and cfg.eval.probes == 13 and cfg.name == "x"
    assert cfg.methods["lora"] == {"rank": 16}


def test_scientific_notation_strings_become_floats():
    cfg = config.load(None, ["train.weight_decay=1e-2"])
    assert cfg.train.weight_decay == pytest.approx(0.01)


def test_override_without_equals_is_an_error():
    with pytest.raises(UserError, match="key=value"):
        config.load(None, ["train.steps"])


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntrain: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: invalid YAML"):
        config.load(path)


def test_unquoted_off_in_yaml_is_the_word_not_a_boolean(tmp_path):
    """YAML reads `facts: off` as false; a text field takes it as the word the user wrote."""
    path = tmp_path / "c.yaml"
    path.write_text("eval:\n  facts: off\n")
    assert config.load(path).eval.facts == "off"
    assert config.load(None, ["eval.facts=off"]).eval.facts == "off"


def test_an_override_that_is_not_yaml_is_one_clear_error():
    with pytest.raises(UserError, match=r"Override 'train.steps=\[1': the value is not valid YAML"):
        config.load(None, ["train.steps=[1"])


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "library.expert_steps={maths: 9}",
            r"library.expert_steps: 'maths' is not in library.domains. Did you mean 'math'\?",
        ),
        ("library.expert_steps={math: 0}", r"library.expert_steps.math: a number of steps >= 1, got 0"),
        (
            "router.general_sources=[prosa]",
            r"router.general_sources: any of builtin, bigbench, mmlu, prose, rewrites, got \['prosa'\]. Did you mean 'prose'\?",
        ),
        (
            "train.precision=bf61",
            r"train.precision: one of auto, bf16, fp32, got 'bf61'. Did you mean 'bf16'\?",
        ),
        (
            "loragen.answer_precision=fp23",
            r"loragen.answer_precision: one of fp32, bf16, got 'fp23'. Did you mean 'fp32'\?",
        ),
    ],
)
def test_library_and_router_options_are_checked(override, message):
    with pytest.raises(UserError, match=message):
        config.load(None, [override])
