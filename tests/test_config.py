"""Configs: every file loads; paper counts; overrides are typed and unknown keys are named."""

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
