"""Configs: every file loads; paper counts; overrides are typed and unknown keys are named."""

import re

import pytest

from xlmr_dynamics.config import ConfigError, config_hash, load_config
from xlmr_dynamics.data import DEFAULT_TREEBANKS, XLMR_LANGUAGES


@pytest.mark.parametrize("name", ["default", "paper", "gpu", "tpu_pod", "demo", "demo:ci", "languages"])
def test_every_config_loads(name):
    assert load_config(name) is not None


def test_paper_config_has_the_papers_counts():
    c = load_config("paper")
    assert (len(c.ud.langs), len(c.ud.cross_langs), len(c.xnli.langs), len(c.align.pairs)) == (44, 18, 15, 6)
    assert len(c.checkpoints.expected_steps) == 39
    assert c.checkpoints.expected_steps[0] == 5000 and c.checkpoints.expected_steps[-1] == 1_500_000
    assert set(c.ud.cross_langs) <= set(c.ud.langs)
    assert all(lang in DEFAULT_TREEBANKS and lang in XLMR_LANGUAGES for lang in c.ud.langs)


def test_overrides_are_typed_and_unknown_keys_named():
    c = load_config("default", ["probe.learning_rate=3e-4", "seeds=(0, 1)", "ud.langs=en,fr", "probe.max_epochs=7"])
    assert c.probe.learning_rate == 3e-4 and c.seeds == (0, 1) and c.ud.langs == ("en", "fr")
    assert c.probe.max_epochs == 7
    with pytest.raises(ConfigError, match="probe.learnin_rate"):
        load_config("default", ["probe.learnin_rate=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("default", ["probe.max_epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_config")
    assert config_hash(load_config("default")) != config_hash(load_config("default", ["seeds=(0,)"]))


def test_variants_are_config_errors_naming_the_file():
    with pytest.raises(ConfigError, match=r"default\.py: this config takes no variant \(got 'x'\)"):
        load_config("default:x")
    with pytest.raises(ConfigError, match=r"demo\.py: bad variant 'cj'.*known: ci"):
        load_config("demo:cj")


@pytest.mark.parametrize("override, key, expected", [
    ("seeds=3", "seeds", (3,)),
    ("seeds=0 1", "seeds", (0, 1)),
    ("seeds=0, 1 2", "seeds", (0, 1, 2)),
    ("seeds=[4, 5]", "seeds", (4, 5)),
    ("seeds=", "seeds", ()),
    ("layers=12", "layers", (12,)),
    ("layers=0,6 12", "layers", (0, 6, 12)),
    ("checkpoints.expected_steps=5000", "checkpoints.expected_steps", (5000,)),
    ("checkpoints.paths=5000=/a/b.pt", "checkpoints.paths", ("5000=/a/b.pt",)),
    ("align.pairs=fr", "align.pairs", ("fr",)),
    ("align.pairs='fr'", "align.pairs", ("fr",)),
    ("align.pairs=fr, ro", "align.pairs", ("fr", "ro")),
    ("checkpoints.paths=1000=/my ckpts/5k", "checkpoints.paths", ("1000=/my ckpts/5k",)),  # strings: commas only
])
def test_tuple_overrides_take_one_value_or_a_list_typed_like_the_default(override, key, expected):
    value = load_config("default", [override])
    for part in key.split("."):
        value = value[part]
    assert value == expected and [type(v) for v in value] == [type(v) for v in expected]


@pytest.mark.parametrize("override, bad", [("seeds=0,x", "'x'"), ("seeds=(0 1)", "'(0'"), ("seeds=(0.5,)", "0.5"),
                                           ("align.pairs=(1,)", "1")])
def test_tuple_override_with_a_bad_element_names_key_and_element(override, bad):
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}.*element {re.escape(bad)} is not"):
        load_config("default", [override])


def test_per_language_maps_take_new_keys_and_typos_still_fail():
    c = load_config("default", ["ud.treebanks.en=UD_English-GUM", "bpc.files.fr=fr.txt", "bpc.files.en=en.txt"])
    assert c.ud.treebanks.en == "UD_English-GUM" and c.bpc.files.to_dict() == {"en": "en.txt", "fr": "fr.txt"}
    assert load_config("demo", ["sweep.ud.treebanks.fr=UD_French-GSD"]).sweep.ud.treebanks.fr == "UD_French-GSD"
    with pytest.raises(ConfigError, match=r"'ud.treebank'"):
        load_config("default", ["ud.treebank.en=UD_English-GUM"])
    with pytest.raises(ConfigError, match=r"'ud.foo'.*known under it: \[.*'treebanks'"):
        load_config("default", ["ud.foo=1"])
    with pytest.raises(ConfigError, match=r"'ud.langs.en'"):
        load_config("default", ["ud.langs.en=x"])
