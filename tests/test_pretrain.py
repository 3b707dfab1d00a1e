"""MLM pretraining: masking recipe, schedule, batches, learning, checkpoints, kill/resume bit-identity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import xlmr_dynamics
from xlmr_dynamics import demo_data
from xlmr_dynamics import pretrain as PT

REPO = Path(__file__).resolve().parents[1]
LANGS = ("en", "fr", "ru", "zh")


class CharTokenizer:
    """Character tokenizer in XLM-R id layout (<s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask> last)."""

    bos_id, pad_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, lines):
        chars = sorted({c for ln in lines for c in ln})
        self.c2i = {c: i + 4 for i, c in enumerate(chars)}
        self.mask_id = len(chars) + 4
        self.vocab_size = self.mask_id + 1

    def encode(self, text):
        return [self.c2i.get(c, 3) for c in text]


def _lines():
    return demo_data.load_text("train", LANGS)


TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, seq_len=32, batch_size=16,
            total_steps=60, warmup_steps=10, lr=2e-3, num_checkpoints=4, first_checkpoint=10, state_every=20,
            log_every=10, seed=3)

# The subprocess used by the kill/resume test (same 8 simulated devices as conftest).
_WORKER = textwrap.dedent("""
    import os, sys, time
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    sys.path.insert(0, {tests!r})
    from test_pretrain import CharTokenizer, TINY, _lines
    from xlmr_dynamics import pretrain as PT
    if sys.argv[2] == "slow":  # slow down after step 25 so the parent can kill us mid-run
        orig = PT.make_batch
        def slow(*a, **k):
            if k["step"] > 25:
                time.sleep(0.3)
            return orig(*a, **k)
        PT.make_batch = slow
    lines = _lines()
    tok = CharTokenizer([l for v in lines.values() for l in v])
    PT.pretrain(PT.PretrainConfig(**TINY), tok, lines, sys.argv[1], progress=False)
    print("DONE")
""").format(tests=str(REPO / "tests"))


@pytest.fixture(scope="module")
def tok():
    lines = _lines()
    return CharTokenizer([ln for v in lines.values() for ln in v])


@pytest.fixture(scope="module")
def run(tmp_path_factory, tok):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    paths = PT.pretrain(PT.PretrainConfig(**TINY), tok, _lines(), out, progress=False)
    return out, paths


def _params(path: Path):
    return jax.tree.map(np.asarray, xlmr_dynamics.load_encoder(path).params)


# ------------------------------------------------------------------------------------ masking ----


def test_masking_statistics_specials_and_determinism():
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 500, size=(256, 256)).astype(np.int32)
    ids[:, 0] = 0
    ids[:, 100] = 2
    ids[:, 200:] = 1  # padding
    mask_id = 500
    key = jax.random.key(7)
    corrupted, selected = jax.jit(lambda k, x: PT.mask_tokens(k, x, mask_id=mask_id))(key, ids)
    corrupted, selected = np.asarray(corrupted), np.asarray(selected)
    special = np.isin(ids, (0, 1, 2))
    assert not selected[special].any(), "a special token was selected"
    assert (corrupted[special] == ids[special]).all()
    assert (corrupted[~selected] == ids[~selected]).all(), "an unselected token changed"
    n_eligible = (~special).sum()
    rate = selected.sum() / n_eligible
    assert abs(rate - 0.15) < 0.005, rate
    sel_in, sel_out = ids[selected], corrupted[selected]
    frac_mask = np.mean(sel_out == mask_id)
    frac_keep = np.mean(sel_out == sel_in)
    frac_rand = 1 - frac_mask - frac_keep
    assert abs(frac_mask - 0.8) < 0.01 and abs(frac_keep - 0.1) < 0.01 and abs(frac_rand - 0.1) < 0.01, \
        (frac_mask, frac_keep, frac_rand)
    rand_ids = sel_out[(sel_out != mask_id) & (sel_out != sel_in)]
    assert rand_ids.min() >= PT.NUM_SPECIAL and rand_ids.max() < mask_id
    again = PT.mask_tokens(key, jnp.asarray(ids), mask_id=mask_id)
    assert (np.asarray(again[0]) == corrupted).all() and (np.asarray(again[1]) == selected).all()
    other = PT.mask_tokens(jax.random.key(8), jnp.asarray(ids), mask_id=mask_id)
    assert not (np.asarray(other[1]) == selected).all()
    # The per-row cap keeps the earliest selections and nothing else changes: exactly the first 5
    # selected positions of each row stay selected (with the same corruption), every other
    # position gets its original id back.
    cap = 5
    capped_c, capped_s = PT.mask_tokens(key, jnp.asarray(ids), mask_id=mask_id, max_selected=cap)
    capped_c, capped_s = np.asarray(capped_c), np.asarray(capped_s)
    expected_s = selected & (np.cumsum(selected, axis=1) <= cap)
    np.testing.assert_array_equal(capped_s, expected_s)
    np.testing.assert_array_equal(capped_c, np.where(expected_s, corrupted, ids))
    assert (capped_s.sum(1) == np.minimum(selected.sum(1), cap)).all() and capped_s.sum(1).max() == cap
    # A cap no row reaches changes nothing.
    loose_c, loose_s = PT.mask_tokens(key, jnp.asarray(ids), mask_id=mask_id, max_selected=256)
    np.testing.assert_array_equal(np.asarray(loose_s), selected)
    np.testing.assert_array_equal(np.asarray(loose_c), corrupted)


def test_mlm_loss_matches_full_logits_reference():
    cfg = xlmr_dynamics.model.XLMRConfig.tiny(dropout=0.0, num_layers=1)
    params = xlmr_dynamics.model.init_params(cfg, jax.random.key(0))
    rng = np.random.default_rng(1)
    ids = rng.integers(4, cfg.vocab_size, size=(3, 17)).astype(np.int32)
    mask = np.ones_like(ids)
    selected = rng.random(ids.shape) < 0.3
    loss, _ = jax.jit(lambda p: PT.mlm_loss(p, input_ids=ids, attention_mask=mask, targets=ids,
                                            selected=selected, model_cfg=cfg, dropout_key=None,
                                            max_selected=17))(params)
    logits = xlmr_dynamics.model.mlm_logits(params, ids, mask, cfg=cfg)
    nll = -np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), ids[..., None], -1)[..., 0]
    np.testing.assert_allclose(float(loss), nll[selected].mean(), rtol=1e-5)


# ------------------------------------------------------------------------- schedule and data ----


def test_checkpoint_steps_are_log_spaced_and_end_at_total():
    assert PT.checkpoint_steps(600, 8, 10) == [10, 18, 32, 58, 104, 186, 334, 600]
    s = PT.checkpoint_steps(1000, 20, 1)
    assert len(s) == 20 == len(set(s)) and s == sorted(s) and s[0] == 1 and s[-1] == 1000
    ratios = np.diff(np.log(s[8:]))
    assert ratios.std() < 0.1 * ratios.mean()  # log-spaced once rounding stops mattering
    assert PT.checkpoint_steps(5, 10, 1) == [1, 2, 3, 4, 5]
    assert PT.checkpoint_steps(50, 1, 10) == [50]
    cfg = PT.PretrainConfig(**TINY)
    assert cfg.schedule() == [0, 10, 18, 33, 60]
    assert PT.PretrainConfig(**{**TINY, "save_init": False, "checkpoint_at": (5, 60)}).schedule() == [5, 60]
    with pytest.raises(PT.PretrainError, match="checkpoint_at"):
        PT.PretrainConfig(**{**TINY, "checkpoint_at": (0, 61)})
    with pytest.raises(PT.PretrainError, match="unknown keys"):
        PT.PretrainConfig.from_dict({"hidden": 3})


def test_language_probs_and_batches(tok):
    q = PT.language_probs([900, 100], 0.3)
    p = np.array([0.9, 0.1])
    np.testing.assert_allclose(q, p**0.3 / (p**0.3).sum())
    assert 0.1 < q[1] < 0.5
    np.testing.assert_allclose(PT.language_probs([900, 100], 0.0), [0.5, 0.5])
    corpus = PT.tokenize_corpus(tok, _lines())
    assert corpus.langs == tuple(sorted(LANGS))
    probs = PT.language_probs(corpus.num_tokens(), 0.3)
    kw = dict(seed=1, batch_size=64, seq_len=32, packing="pack")
    b = PT.make_batch(corpus, probs, step=5, **kw)
    assert b["input_ids"].shape == (64, 32) and b["input_ids"].dtype == np.int32
    assert (b["input_ids"][:, 0] == 0).all() and (b["input_ids"] != 1).all()  # packed: no padding
    assert (b["input_ids"] == 2).sum() >= 32  # several sentences end inside the rows
    # Each row is one language: its ordinary ids occur in that language's text.
    for row, li in zip(b["input_ids"], b["lang"]):
        vocab = set(corpus.ids[li].tolist())
        assert set(row[row > 3].tolist()) <= vocab
    b2 = PT.make_batch(corpus, probs, step=5, **kw)
    assert all((b[k] == b2[k]).all() for k in b)
    assert not (PT.make_batch(corpus, probs, step=6, **kw)["input_ids"] == b["input_ids"]).all()
    s = PT.make_batch(corpus, probs, step=5, **{**kw, "packing": "sentence"})
    n_real = s["attention_mask"].sum(1)
    assert (s["input_ids"][np.arange(64), n_real - 1] == 2).all() and (s["input_ids"] == 1).any()
    assert ((s["input_ids"] == 2).sum(1) == 1).all()


def test_lr_schedule_warmup_and_linear_decay():
    def check(warmup, want):  # want: {step: lr} for lr=1e-3, total_steps=600
        sched = PT.lr_schedule(PT.PretrainConfig(lr=1e-3, warmup_steps=warmup, total_steps=600))
        np.testing.assert_allclose([float(sched(s)) for s in want], list(want.values()), rtol=1e-6, atol=1e-12)

    check(0, {0: 1e-3, 1: 1e-3 * 599 / 600, 300: 5e-4, 600: 0.0})  # no warmup: decay from step 0
    check(60, {0: 0.0, 30: 5e-4, 60: 1e-3, 330: 5e-4, 600: 0.0})
    check(600, {0: 0.0, 300: 5e-4, 600: 1e-3})


# ------------------------------------------------------------------------ training and output ----


def test_loss_decreases_and_checkpoints_load(run, tok):
    out, paths = run
    assert [p.name for p in paths] == ["step_0000000", "step_0000010", "step_0000018", "step_0000033",
                                       "step_0000060"]
    log = PT.read_log(out)
    assert [r["step"] for r in log] == list(range(10, 61, 10))
    first, last = log[0]["loss"], log[-1]["loss"]
    assert last < first - 0.5, (first, last)
    assert log[-1]["accuracy"] > log[0]["accuracy"] + 0.05
    assert all(abs(r["num_selected"] / (16 * 29) - 0.15) < 0.05 for r in log)  # ~15% of non-specials
    enc = {p.name: xlmr_dynamics.load_encoder(p) for p in (paths[0], paths[-1])}
    final = enc["step_0000060"]
    assert final.config.vocab_size == tok.vocab_size and final.config.hidden_size == 32
    assert final.metadata["step"] == 60 and enc["step_0000000"].metadata["step"] == 0
    # The saved init is the model's own init for this seed; the final params moved away from it.
    init = PT.PretrainConfig(**TINY).model_config(tok.vocab_size)
    k_init, _ = jax.random.split(jax.random.key(TINY["seed"]))
    want0 = jax.jit(lambda: xlmr_dynamics.model.init_params(init, k_init))()  # jitted, as in pretrain
    got0 = enc["step_0000000"].params
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(want0), jax.tree.leaves(got0)))
    assert not np.array_equal(got0["embeddings"]["word_embeddings"], final.params["embeddings"]["word_embeddings"])
    # The trained model predicts masked characters better than the init on held-out text.
    corpus = PT.tokenize_corpus(tok, demo_data.load_text("heldout", LANGS))
    b = PT.make_batch(corpus, PT.language_probs(corpus.num_tokens(), 0.3), step=0, seed=99, batch_size=32,
                      seq_len=32, packing="pack")
    ids, sel = PT.mask_tokens(jax.random.key(0), jnp.asarray(b["input_ids"]), mask_id=tok.mask_id)

    @jax.jit
    def heldout_loss(params):
        return PT.mlm_loss(params, input_ids=ids, attention_mask=b["attention_mask"], targets=b["input_ids"],
                           selected=sel, model_cfg=final.config, dropout_key=None, max_selected=32)[0]

    assert float(heldout_loss(final.params)) < float(heldout_loss(enc["step_0000000"].params)) - 0.5
    # A finished run returns at once with the same paths and does not change anything.
    before = (out / PT.LOG_FILE).read_text()
    assert PT.pretrain(PT.PretrainConfig(**TINY), tok, _lines(), out, progress=False) == paths
    assert (out / PT.LOG_FILE).read_text() == before


def test_other_config_in_same_out_dir_is_rejected(run, tok):
    out, _ = run
    with pytest.raises(PT.PretrainError, match="different run"):
        PT.pretrain(PT.PretrainConfig(**{**TINY, "lr": 1e-3}), tok, _lines(), out, progress=False)


def test_resume_after_sigkill_is_bit_identical(run, tmp_path):
    out_ref, ref_paths = run
    out = tmp_path / "killed"
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    # Both workers share a persistent compilation cache: the resumed one reuses the first's executable.
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jit_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    proc = subprocess.Popen([sys.executable, str(script), str(out), "slow"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 150
    try:  # 33 is a schedule step, not a log step: the resumed run must restore the pending metrics
        while not (out / PT.STATE_DIR / "33").is_dir():  # orbax renames the step dir when complete
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "worker never saved a train state"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "step_0000060").exists(), "worker finished before it was killed"
    assert max(int(d.name) for d in (out / PT.STATE_DIR).iterdir() if d.name.isdigit()) == 33
    with open(out / PT.LOG_FILE, "a") as f:
        f.write('{"step": 40, "lo')  # as if killed mid-append
    done = subprocess.run([sys.executable, str(script), str(out), "fast"], env=env, capture_output=True,
                          timeout=150)
    assert done.returncode == 0 and b"DONE" in done.stdout, done.stderr.decode()[-3000:]
    for p in ref_paths:
        a, b = _params(p), _params(out / p.name)
        assert jax.tree.structure(a) == jax.tree.structure(b)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            assert np.array_equal(x, y), f"{p.name}: resumed params differ from the uninterrupted run"
    ref_log = [{k: v for k, v in r.items() if k != "seconds"} for r in PT.read_log(out_ref)]
    new_log = [{k: v for k, v in r.items() if k != "seconds"} for r in PT.read_log(out)]
    assert new_log == ref_log
    assert json.loads((out / PT.CONFIG_FILE).read_text())["fingerprint"] == \
        json.loads((out_ref / PT.CONFIG_FILE).read_text())["fingerprint"]
