"""Tests for xlmr_dynamics.align: metrics by hand, batched ArgMax/IterMax vs per-sentence NumPy,
Match vs brute force, and end-to-end runs on the shared gold alignments with a tiny random model."""

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from xlmr_dynamics import align as A

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ------------------------------------------------------------------------------------ metrics ----

def test_metrics_by_hand_sure_and_possible():
    # sentence 1: A = {0-0, 1-1, 2-3}; S = {0-0, 1-2}; P = S | {1-1}
    # sentence 2: A = {0-1};            S = {0-1, 1-0}; P = S
    c1 = A.alignment_counts({(0, 0), (1, 1), (2, 3)}, {(0, 0), (1, 2)}, {(1, 1)})
    c2 = A.alignment_counts({(0, 1)}, {(0, 1), (1, 0)}, {(0, 1), (1, 0)})
    np.testing.assert_array_equal(c1, [3, 2, 1, 2])
    np.testing.assert_array_equal(c2, [1, 2, 1, 1])
    m = A.alignment_metrics(c1 + c2)  # |A|=4 |S|=4 |A&S|=2 |A&P|=3
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)  # 0.6
    assert m["aer"] == pytest.approx(1 - (2 + 3) / (4 + 4))  # 0.375


def test_metrics_perfect_and_empty():
    m = A.alignment_metrics(A.alignment_counts({(0, 0), (1, 1)}, {(0, 0), (1, 1)}, set()))
    assert m == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "aer": 0.0}
    m = A.alignment_metrics([0, 3, 0, 0])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0 and m["aer"] == 1.0
    # only possible links predicted: precision 1, recall 0, AER = 1 - 2/4
    m = A.alignment_metrics(A.alignment_counts({(0, 1), (1, 0)}, {(0, 0), (1, 1)}, {(0, 1), (1, 0)}))
    assert m["precision"] == 1.0 and m["recall"] == 0.0 and m["aer"] == pytest.approx(0.5)


# ------------------------------------------------------------------- per-sentence references ----

def ref_mutual(sim):
    fwd = np.zeros(sim.shape, bool)
    fwd[np.arange(sim.shape[0]), sim.argmax(1)] = True
    rev = np.zeros(sim.shape, bool)
    rev[sim.argmax(0), np.arange(sim.shape[1])] = True
    return fwd & rev


def ref_itermax(sim, max_count=2, alpha=0.9):
    links = ref_mutual(sim)
    for _ in range(max_count):
        rows = links.any(1)
        cols = links.any(0)
        w = np.empty(sim.shape)
        for i in range(sim.shape[0]):
            for j in range(sim.shape[1]):
                free = (not rows[i]) + (not cols[j])
                w[i, j] = {0: 0.0, 1: alpha, 2: 1.0}[free]
        new = ref_mutual(sim * w)
        new &= ~(rows[:, None] & cols[None, :])
        if not (new & ~links).any():
            break
        links |= new
    return links


def ref_distortion(m, n, ratio):
    i = np.arange(m)[:, None] / max(m - 1, 1)
    j = np.arange(n)[None, :] / max(n - 1, 1)
    return 1 - ratio * (i - j) ** 2


def _ragged(seed, k=9, d=6):
    rng = np.random.default_rng(seed)
    src = [rng.normal(size=(3, rng.integers(1, 12), d)).astype(np.float32) for _ in range(k)]
    tgt = [rng.normal(size=(3, rng.integers(1, 12), d)).astype(np.float32) for _ in range(k)]
    return src, tgt


def _ref_sim(s, t):
    s = s / np.linalg.norm(s, axis=-1, keepdims=True)
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    return (np.einsum("lsd,ltd->lst", s, t) + 1) / 2


@pytest.mark.parametrize("method,ratio", [("argmax", 0.0), ("itermax", 0.0), ("argmax", 0.5), ("itermax", 1.0)])
def test_batched_equals_per_sentence_reference(method, ratio):
    src, tgt = _ragged(1)
    got = A.align_vectors(src, tgt, method=method, distortion_ratio=ratio, pairs_per_batch=4)
    n_links = 0
    for s, t, g in zip(src, tgt, got):
        sim = _ref_sim(s, t) * ref_distortion(s.shape[1], t.shape[1], ratio)[None]
        for layer in range(3):
            ref = ref_mutual(sim[layer]) if method == "argmax" else ref_itermax(sim[layer])
            np.testing.assert_array_equal(g[layer], ref)
            n_links += ref.sum()
    assert n_links > 0


def test_itermax_adds_links_beyond_argmax():
    rng = np.random.default_rng(3)
    sim = rng.uniform(size=(1, 4, 12, 5)).astype(np.float32)
    lens = np.array([12, 9, 5, 3], np.int32), np.array([5, 5, 4, 2], np.int32)
    am = np.asarray(A.argmax_align(sim, *lens))
    im = np.asarray(A.itermax_align(sim, *lens))
    assert (am <= im).all() and im.sum() > am.sum()
    for b in range(4):
        m, n = lens[0][b], lens[1][b]
        np.testing.assert_array_equal(im[0, b, :m, :n], ref_itermax(sim[0, b, :m, :n]))
        assert not im[0, b, m:].any() and not im[0, b, :, n:].any()


def test_match_equals_brute_force():
    rng = np.random.default_rng(0)
    for m, n in [(1, 1), (2, 3), (3, 3), (4, 2), (5, 4), (4, 6)]:
        sim = rng.uniform(size=(m, n))
        got = A.match_align(sim)
        assert got.sum() == min(m, n)
        assert (got.sum(0) <= 1).all() and (got.sum(1) <= 1).all()
        if m <= n:
            best = max(sum(sim[i, p[i]] for i in range(m)) for p in itertools.permutations(range(n), m))
        else:
            best = max(sum(sim[p[j], j] for j in range(n)) for p in itertools.permutations(range(m), n))
        assert sim[got].sum() == pytest.approx(best)


def test_match_through_align_vectors_uses_similarity():
    src, tgt = _ragged(2, k=4)
    got = A.align_vectors(src, tgt, method="match")
    for s, t, g in zip(src, tgt, got):
        sim = _ref_sim(s, t)
        for layer in range(3):
            assert g[layer].sum() == min(s.shape[1], t.shape[1])
            np.testing.assert_array_equal(g[layer], A.match_align(sim[layer]))


def test_check_gold_errors():
    ok = SimpleNamespace(src=[["a", "b"]], tgt=[["x"]], sure=[{(1, 0)}], possible=[{(1, 0)}])
    A._check_gold(ok)
    bad = SimpleNamespace(src=[["a", "b"]], tgt=[["x"]], sure=[{(0, 1)}], possible=[{(0, 1)}])
    with pytest.raises(A.AlignmentError, match="line 1.*past the sentence end"):
        A._check_gold(bad)
    mism = SimpleNamespace(src=[["a"], ["b"]], tgt=[["x"]], sure=[set()], possible=[set()])
    with pytest.raises(A.AlignmentError, match="mismatched line counts"):
        A._check_gold(mism)


# ------------------------------------------------------------------------------- end to end ----

PAIRS = ("fr", "ro", "hi", "cs")


def read_gold(pair_dir: Path, xx: str, limit=None):
    from xlmr_dynamics.data import load_alignment

    gold = load_alignment(pair_dir)
    assert gold.lang == xx
    return gold.subset(limit) if limit else gold


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import jax

    from xlmr_dynamics import model as M
    from xlmr_dynamics.tokenizer import load_tokenizer, train_sentencepiece

    text = []
    for xx in PAIRS:
        d = DATA / "alignment" / f"en-{xx}"
        text += (d / "en.txt").read_text(encoding="utf-8").splitlines()[:150]
        text += (d / f"{xx}.txt").read_text(encoding="utf-8").splitlines()[:150]
    tok = load_tokenizer(train_sentencepiece(text, tmp_path_factory.mktemp("spm"), 600))
    cfg = M.XLMRConfig.tiny(vocab_size=tok.vocab_size, num_layers=2)
    return M.Encoder(cfg, M.init_params(cfg, jax.random.key(0))), tok


def test_run_alignment_all_pairs_every_layer(tiny):
    enc, tok = tiny
    for xx in PAIRS:
        gold = read_gold(DATA / "alignment" / f"en-{xx}", xx, limit=16)
        rows = A.run_alignment(enc, tok, gold, layers="all", method="argmax", pairs_per_batch=8)
        assert len(rows) == 4 * (enc.config.num_layers + 1)
        for layer in range(enc.config.num_layers + 1):
            got = {r["metric"]: r for r in rows if r["layer"] == layer}
            assert set(got) == set(A.METRICS)
            assert all(0.0 <= r["value"] <= 1.0 and r["n"] == 16 and r["eval_lang"] == xx for r in got.values())
            c = got["f1"]["extra"]["counts"]
            assert c["sure"] == sum(len(s) for s in gold.sure) and c["pred"] > 0
            assert got["aer"]["value"] == pytest.approx(A.alignment_metrics(list(c.values()))["aer"])


@pytest.mark.parametrize("method,pooling", [("argmax", "mean"), ("itermax", "subword"), ("match", "mean"),
                                            ("argmax", "subword")])
def test_identity_gives_f1_one(tiny, method, pooling):
    enc, tok = tiny
    sents = read_gold(DATA / "alignment" / "en-fr", "fr", limit=12).tgt
    diag = [{(i, i) for i in range(len(s))} for s in sents]
    gold = SimpleNamespace(src=sents, tgt=sents, sure=diag, possible=diag, lang="fr")
    rows = A.run_alignment(enc, tok, gold, method=method, pooling=pooling, distortion=0.5, pairs_per_batch=4)
    for r in rows:
        if r["metric"] in ("precision", "recall", "f1"):
            assert r["value"] == pytest.approx(1.0), (r["layer"], r["metric"])
        else:
            assert r["value"] == pytest.approx(0.0)


def test_run_alignment_bad_input_counted_or_raised(tiny):
    enc, tok = tiny
    gold = SimpleNamespace(src=[["the", "cat"], [], ["\u2603\u2603"], ["a"]],
                           tgt=[["le", "chat"], ["x"], ["y"], ["b"]],
                           sure=[{(0, 0), (1, 1)}, set(), set(), {(0, 0)}],
                           possible=[{(0, 0), (1, 1)}, set(), set(), {(0, 0)}])
    assert tok.unk_id in tok.encode("\u2603\u2603")
    rows = A.run_alignment(enc, tok, gold, layers=[0, 2], eval_lang="fr")
    assert {r["layer"] for r in rows} == {0, 2}
    assert rows[0]["n"] == 2 and rows[0]["extra"]["skipped"] == {"empty": 1, "unk": 1, "too_long": 0}
    long_ = SimpleNamespace(src=[["word"] * 40], tgt=[["mot"]], sure=[set()], possible=[set()])
    assert A.run_alignment(enc, tok, long_, max_len=16, layers=1)[0]["extra"]["skipped"]["too_long"] == 1
    gold.sure[3] = {(0, 5)}
    with pytest.raises(A.AlignmentError, match="pair 3"):
        A.run_alignment(enc, tok, gold)
    with pytest.raises(ValueError, match="layers"):
        A.run_alignment(enc, tok, long_, layers=7)
