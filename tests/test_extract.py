"""Extraction: on-device pooling, sharded == single device, 2-process loopback == 1 process."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
import pytest

from xlmr_dynamics import model as M
from xlmr_dynamics import probes
from xlmr_dynamics import sharding as S
from xlmr_dynamics.extract import FeatureCache, FeatureError, extract_features, pool_words

CFG = M.XLMRConfig.tiny()


def make_batches(rng, n_sent=21, b=8, t=16, process_index=0, process_count=1):
    """Hand-made batches: sentences of random words of 1-3 subwords, one sentence per row."""
    rows, word = [], 0
    for _ in range(n_sent):
        n_words = int(rng.integers(1, 6))
        ids, starts, ends, wids = [0], [], [], []
        for _ in range(n_words):
            k = int(rng.integers(1, 4))
            starts.append(len(ids))
            ids += rng.integers(4, CFG.vocab_size, size=k).tolist()
            ends.append(len(ids))
            wids.append(word)
            word += 1
        ids.append(2)
        rows.append((ids, starts, ends, wids))
    batches = []
    for i in range(0, len(rows), b):
        chunk = rows[i:i + b]
        arr = {k: np.zeros((b, t), np.int32) for k in ("input_ids", "attention_mask", "word_start", "word_end")}
        arr["input_ids"][:] = 1
        arr["word_id"] = np.full((b, t), -1, np.int32)
        for r, (ids, s, e, w) in enumerate(chunk):
            arr["input_ids"][r, :len(ids)] = ids
            arr["attention_mask"][r, :len(ids)] = 1
            arr["word_start"][r, :len(s)] = s
            arr["word_end"][r, :len(e)] = e
            arr["word_id"][r, :len(w)] = w
        per = b // process_count
        batches.append({k: v[process_index * per:(process_index + 1) * per] for k, v in arr.items()})
    return batches, word


def reference(params, batches, n, pooling):
    out = np.zeros((CFG.num_layers + 1, n, CFG.hidden_size), np.float32)
    for bt in batches:
        h = np.asarray(M.hidden_states(params, bt["input_ids"], bt["attention_mask"], cfg=CFG))
        for r in range(bt["input_ids"].shape[0]):
            for s, e, w in zip(bt["word_start"][r], bt["word_end"][r], bt["word_id"][r]):
                if w < 0:
                    continue
                span = h[:, r, s:e]
                out[:, w] = {"first": span[:, 0], "last": span[:, -1], "mean": span.mean(1)}[pooling]
    return out


@pytest.fixture(scope="module")
def params():
    return M.init_params(CFG, jax.random.key(3))


@pytest.mark.parametrize("pooling", ["first", "last", "mean"])
def test_pool_words_matches_numpy(pooling):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 3, 7, 5)).astype(np.float32)
    start = np.array([[1, 2, 4], [0, 3, 6], [1, 1, 1]])
    end = np.array([[2, 4, 7], [3, 6, 7], [2, 2, 2]])
    got = np.asarray(pool_words(h, start, end, pooling))
    for b in range(3):
        for w in range(3):
            span = h[:, b, start[b, w]:end[b, w]]
            want = {"first": span[:, 0], "last": span[:, -1], "mean": span.mean(1)}[pooling]
            np.testing.assert_allclose(got[:, b, w], want, atol=1e-5)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_sharded_equals_single_device_and_reference(params, pooling):
    assert jax.device_count() == 8
    enc = M.Encoder(CFG, params)
    batches, n = make_batches(np.random.default_rng(1))
    one = extract_features(enc, batches, n, pooling=pooling, mesh=S.make_mesh(1))
    eight = extract_features(enc, batches, n, pooling=pooling, mesh=S.make_mesh(8))
    assert one.shape == (CFG.num_layers + 1, n, CFG.hidden_size)
    np.testing.assert_allclose(eight, one, atol=1e-5)
    np.testing.assert_allclose(one, reference(params, batches, n, pooling), atol=1e-5)


def test_layers_subset_and_bfloat16(params):
    enc = M.Encoder(CFG, params)
    batches, n = make_batches(np.random.default_rng(2))
    full = extract_features(enc, batches, n)
    part = extract_features(enc, batches, n, layers=[0, 3], out_dtype="bfloat16")
    assert part.shape[0] == 2 and part.dtype.name == "bfloat16"
    np.testing.assert_allclose(part.astype(np.float32), full[[0, 3]], atol=0.05)


def test_missing_or_duplicate_items_are_an_error(params):
    enc = M.Encoder(CFG, params)
    batches, n = make_batches(np.random.default_rng(4))
    with pytest.raises(ValueError, match="filled"):
        extract_features(enc, batches, n + 1)


def test_nan_features_name_the_layers(params):
    bad = jax.tree.map(lambda x: x, params)
    bad["layers"]["output"]["bias"] = bad["layers"]["output"]["bias"].at[1].set(np.nan)
    batches, n = make_batches(np.random.default_rng(5))
    with pytest.raises(FeatureError, match=r"layers \[2, 3\]"):
        extract_features(M.Encoder(CFG, bad), batches, n)


def test_feature_cache_round_trip_bf16_bits_and_unreadable_file(tmp_path, capsys, caplog):
    cache = FeatureCache(tmp_path)
    k = cache.key(checkpoint="abc", data="ewt", pooling="first")
    assert cache.get(k) is None
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4) / 7
    cache.put(k, x)
    assert "MiB" in capsys.readouterr().err
    assert np.array_equal(cache.get(k), x)
    # On-device bf16 features (uint16 bit patterns) are stored as bfloat16, readable by anyone.
    kb = cache.key(checkpoint="abc", data="ewt", pooling="first", dtype="bfloat16")
    cache.put(kb, probes.device_features(x.astype(ml_dtypes.bfloat16)))
    got = cache.get(kb)
    assert got.dtype == ml_dtypes.bfloat16
    assert np.array_equal(got.astype(np.float32), x.astype(ml_dtypes.bfloat16).astype(np.float32))
    # A truncated file (killed copy, full disk) is a miss that names the file, not a crash.
    data = cache.path(k).read_bytes()
    cache.path(k).write_bytes(data[: len(data) - 8])
    with caplog.at_level("WARNING"):
        assert cache.get(k) is None
    assert str(cache.path(k)) in caplog.text


def test_extract_rejects_layers_outside_the_model():
    enc = M.Encoder(CFG, M.init_params(CFG, jax.random.key(0)))
    batches, n = make_batches(np.random.default_rng(5))
    for layers in ([CFG.num_layers + 1], [-1], []):
        with pytest.raises(ValueError, match=rf"\[0, {CFG.num_layers}\]"):
            extract_features(enc, batches, n, layers=layers)


WORKER = r"""
import sys, numpy as np, jax
pid = int(sys.argv[1]); port = sys.argv[2]; out = sys.argv[3]
jax.config.update("jax_num_cpu_devices", 4)
from xlmr_dynamics import sharding as S
S.init_distributed(f"127.0.0.1:{port}", 2, pid)
sys.path.insert(0, sys.argv[4])
from test_extract import make_batches, CFG
from xlmr_dynamics import model as M
from xlmr_dynamics.extract import extract_features
params = M.init_params(CFG, jax.random.key(3))
batches, n = make_batches(np.random.default_rng(1), process_index=pid, process_count=2)
feats = extract_features(M.Encoder(CFG, params), batches, n, pooling="mean")
if pid == 0:
    np.save(out, feats)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_loopback_equals_one_process(params, tmp_path):
    port, out = str(_free_port()), str(tmp_path / "feats.npy")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), port, out, str(Path(__file__).parent)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
    batches, n = make_batches(np.random.default_rng(1))
    single = extract_features(M.Encoder(CFG, params), batches, n, pooling="mean", mesh=S.make_mesh(1))
    np.testing.assert_allclose(np.load(out), single, atol=1e-5)


def _segments(rng, n=40):
    from xlmr_dynamics.data import Segment

    segs, word = [], 0
    for _ in range(n):
        k = int(rng.integers(1, 7))
        lens = rng.integers(1, 4, size=k)
        ends = 1 + np.cumsum(lens)
        ids = np.concatenate([[0], rng.integers(4, CFG.vocab_size, size=int(lens.sum())), [2]]).astype(np.int32)
        segs.append(Segment(ids, (ends - lens).astype(np.int32), ends.astype(np.int32),
                            np.arange(word, word + k, dtype=np.int32)))
        word += k
    return segs, word


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_packed_rows_equal_unpacked(params, pooling):
    from xlmr_dynamics.data import make_batches

    segs, n = _segments(np.random.default_rng(7))
    enc = M.Encoder(CFG, params)
    mult = S.local_batch_multiple(S.make_mesh())
    plain = make_batches(segs, seq_buckets=(8, 16, 32), tokens_per_batch=256, batch_multiple=mult)
    packed = make_batches(segs, seq_buckets=(8, 16, 32), tokens_per_batch=256, pack=True, pack_len=32,
                          batch_multiple=mult)
    assert packed.padding_fraction < plain.padding_fraction
    assert max(b["segment_ids"].max() for b in packed) > 1  # several sequences really share rows
    a = extract_features(enc, list(plain), n, pooling=pooling)
    b = extract_features(enc, list(packed), n, pooling=pooling)
    np.testing.assert_allclose(b, a, atol=1e-5)


def test_rows_not_divisible_by_devices_is_a_clear_error(params):
    batches, n = make_batches(np.random.default_rng(9), b=3)
    with pytest.raises(ValueError, match=r"batch_multiple=8"):
        extract_features(M.Encoder(CFG, params), batches, n)


def test_on_device_output_equals_numpy_and_checks_finite(params):
    enc = M.Encoder(CFG, params)
    batches, n = make_batches(np.random.default_rng(2))
    ref = extract_features(enc, batches, n, layers=[0, 2], out_dtype="bfloat16")
    dev = extract_features(enc, batches, n, layers=[0, 2], out_dtype="bfloat16", on_device=True)
    # bf16 on device is stored as its bit patterns (probes.device_features format).
    assert isinstance(dev, jax.Array) and dev.dtype == np.uint16 and dev.shape == ref.shape
    np.testing.assert_array_equal(np.asarray(dev).view(ref.dtype).astype(np.float32), ref.astype(np.float32))
    f32 = extract_features(enc, batches, n, on_device=True)
    np.testing.assert_array_equal(np.asarray(f32), extract_features(enc, batches, n))
    bad = jax.tree.map(lambda x: x, params)
    bad["layers"]["output"]["bias"] = bad["layers"]["output"]["bias"].at[1].set(np.nan)
    for dtype in ("float32", "bfloat16"):
        with pytest.raises(FeatureError, match=r"layers \[2, 3\]"):
            extract_features(M.Encoder(CFG, bad), batches, n, on_device=True, out_dtype=dtype)
