"""Tests for xlmr_dynamics.tasks: example builders on hand-made trees, run_probe_task rows."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from xlmr_dynamics import probes, tasks

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


pytestmark = pytest.mark.usefixtures("fast_compiles")


@dataclasses.dataclass
class Sent:
    """Minimal stand-in for data.Sentence (duck typing)."""

    tokens: list
    upos: np.ndarray
    head: np.ndarray
    deprel: np.ndarray
    sent_id: str = ""


def sent(heads, upos=None, deprel=None, sid=""):
    n = len(heads)
    return Sent(
        tokens=[f"w{i}" for i in range(n)],
        upos=np.asarray(upos if upos is not None else np.arange(n) % 17, np.int32),
        head=np.asarray(heads, np.int32),
        deprel=np.asarray(deprel if deprel is not None else np.arange(n) + 1, np.int32),
        sent_id=sid,
    )


# Sentence A: "w0 <- w1 (root) -> w2 -> w3": heads 1-based.
A = sent([2, 0, 2, 3], upos=[5, 6, 7, 8], deprel=[3, 0, 4, 5], sid="A")
# Sentence B: w0 root, w1 and w2 attach to w0.
B = sent([0, 1, 1], upos=[1, 2, 3], deprel=[0, 6, 7], sid="B")


def random_tree(rng, n):
    heads = np.zeros(n, np.int32)
    root = rng.integers(n)
    order = rng.permutation([i for i in range(n) if i != root])
    attached = [root]
    for i in order:
        heads[i] = rng.choice(attached) + 1
        attached.append(i)
    return sent(heads)


def test_pos_examples_labels_and_rows():
    data = tasks.pos_examples([A, B])
    np.testing.assert_array_equal(data.labels, [5, 6, 7, 8, 1, 2, 3])
    assert data.rows is None  # rows are exactly 0..6
    data = tasks.pos_examples([A, B], offsets=[10, 2])
    np.testing.assert_array_equal(data.rows, [10, 11, 12, 13, 2, 3, 4])
    np.testing.assert_array_equal(tasks.sentence_offsets([A, B, A]), [0, 4, 7])


def test_arc_classification_gold_pairs():
    data = tasks.arc_classification_examples([A, B])
    # A: (0->1), (2->1), (3->2); B offset 4: (5->4), (6->4). Roots skipped.
    np.testing.assert_array_equal(data.pairs, [[0, 1], [2, 1], [3, 2], [5, 4], [6, 4]])
    np.testing.assert_array_equal(data.labels, [3, 4, 5, 6, 7])


def test_arc_prediction_hand_made_trees():
    data = tasks.arc_prediction_examples([A, B], neg_ratio=1.0, seed=0)
    pos = data.pairs[data.labels == 1]
    neg = data.pairs[data.labels == 0]
    np.testing.assert_array_equal(pos, [[0, 1], [2, 1], [3, 2], [5, 4], [6, 4]])
    # A has 4*3 ordered pairs, 3 arcs -> 6 pairs connected in either direction -> 6 candidates;
    # B has 6 ordered pairs, all connected except (5, 6), (6, 5) -> 2 candidates (cap).
    assert len(neg) == 3 + 2
    gold = {tuple(p) for p in pos}
    for i, j in neg:
        assert (i, j) not in gold and (j, i) not in gold and i != j
        assert (i < 4) == (j < 4)  # same sentence
    assert {tuple(p) for p in neg if p[0] >= 4} == {(5, 6), (6, 5)}
    # Directed negatives may include reversed arcs, never the arcs themselves.
    directed = tasks.arc_prediction_examples([A], neg_ratio=3.0, directed_negatives=True)
    neg_d = {tuple(p) for p in directed.pairs[directed.labels == 0]}
    assert len(neg_d) == 9 and not neg_d & {(0, 1), (2, 1), (3, 2)}
    assert {(1, 0), (1, 2), (2, 3)} <= neg_d  # 12 ordered - 3 arcs = 9: all drawn


def test_arc_prediction_ratio_and_determinism():
    rng = np.random.default_rng(0)
    sents = [random_tree(rng, n) for n in rng.integers(8, 30, 40)]
    offsets = tasks.sentence_offsets(sents)
    for ratio in (0.5, 1.0, 2.0):
        data = tasks.arc_prediction_examples(sents, neg_ratio=ratio, seed=3)
        for k, s in enumerate(sents):
            lo, hi = offsets[k], offsets[k] + len(s.tokens)
            in_sent = (data.pairs[:, 0] >= lo) & (data.pairs[:, 0] < hi)
            assert np.all((data.pairs[in_sent] >= lo) & (data.pairs[in_sent] < hi))
            n_pos = int(np.sum(data.labels[in_sent] == 1))
            assert n_pos == len(s.tokens) - 1
            assert int(np.sum(data.labels[in_sent] == 0)) == round(ratio * n_pos)
            arcs = {(d, h - 1) for d, h in enumerate(s.head) if h > 0}
            for i, j in data.pairs[in_sent & (data.labels == 0)] - lo:
                assert (i, j) not in arcs and (j, i) not in arcs
        again = tasks.arc_prediction_examples(sents, neg_ratio=ratio, seed=3)
        np.testing.assert_array_equal(data.pairs, again.pairs)
        other = tasks.arc_prediction_examples(sents, neg_ratio=ratio, seed=4)
        assert not np.array_equal(data.pairs, other.pairs)
        # No duplicate negatives.
        assert len({tuple(p) for p in data.pairs}) == len(data.pairs)


def test_bad_trees_are_named():
    with pytest.raises(tasks.TaskInputError, match=r"sentence 1 \(bad\): head\[1\] = 9"):
        tasks.arc_prediction_examples([A, sent([0, 9], sid="bad")])
    with pytest.raises(tasks.TaskInputError, match="its own head"):
        tasks.arc_classification_examples([sent([1, 0])])
    broken = dataclasses.replace(A, upos=np.zeros(3, np.int32))
    with pytest.raises(tasks.TaskInputError, match="upos has shape"):
        tasks.pos_examples([broken])


def test_real_ud_arcs_point_to_heads():
    conllu = pytest.importorskip("conllu")
    path = DATA / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.conllu"
    sents = []
    with open(path, encoding="utf-8") as f:
        for tl in conllu.parse_incr(f):
            tl = tl.filter(id=lambda i: isinstance(i, int))
            sents.append(sent([t["head"] for t in tl]))
            if len(sents) == 50:
                break
    data = tasks.arc_prediction_examples(sents, neg_ratio=1.0, seed=0)
    heads = np.concatenate([s.head for s in sents])
    offsets = np.repeat(tasks.sentence_offsets(sents), [len(s.tokens) for s in sents])
    pos = data.pairs[data.labels == 1]
    np.testing.assert_array_equal(pos[:, 1], heads[pos[:, 0]] - 1 + offsets[pos[:, 0]])
    assert len(pos) == int(np.sum(heads > 0))


def synthetic_split(rng, n, dim=6, num_layers=2, num_classes=3, shift=0.0):
    y = rng.integers(0, num_classes, n).astype(np.int32)
    centers = np.eye(num_classes, dim) * 3
    x = np.stack([rng.normal(size=(n, dim)) + centers[y] * (l + 1) / 2 + shift
                  for l in range(num_layers)]).astype(np.float32)
    return x, y


def test_run_probe_task_rows_in_and_cross_lingual():
    rng = np.random.default_rng(0)
    train = synthetic_split(rng, 300)
    dev = synthetic_split(rng, 100)
    en = synthetic_split(rng, 120)
    fr_x, fr_y = synthetic_split(rng, 80, shift=0.5)
    fr_y = fr_y.copy()
    fr_y[:5] = 4  # a label never seen in training (and >= num_classes)
    cfg = probes.ProbeConfig(max_epochs=8, seeds=(0, 7), learning_rate=5e-2)
    rows = tasks.run_probe_task("xnli", train, {"en": en, "fr": (fr_x, fr_y)}, num_classes=3,
                                cfg=cfg, train_lang="en", dev=dev)
    assert len(rows) == 2 * 2 * 2 * 2  # langs x layers x seeds x metrics
    keys = {"task", "train_lang", "eval_lang", "layer", "seed", "metric", "value", "n"}
    assert all(keys <= set(r) for r in rows)
    assert {(r["eval_lang"], r["layer"], r["seed"], r["metric"]) for r in rows} == {
        (lang, layer, seed, m) for lang in ("en", "fr") for layer in (0, 1) for seed in (0, 7)
        for m in ("accuracy", "macro_f1")}
    fr = [r for r in rows if r["eval_lang"] == "fr"]
    assert all(r["n"] == 80 and r["extra"]["unseen_labels"] == [4] and r["extra"]["n_unseen"] == 5
               for r in fr)
    assert all("unseen_labels" not in r["extra"] for r in rows if r["eval_lang"] == "en")
    # Values equal predicting with the same fitted probes.
    fit = probes.fit_probes(train[0], train[1], 3, cfg=cfg, dev_x=dev[0], dev_y=dev[1])
    acc = probes.evaluate(probes.predict_probes(fit, en[0]), en[1], 3)["accuracy"]
    got = {(r["layer"], r["seed"]): r["value"] for r in rows
           if r["eval_lang"] == "en" and r["metric"] == "accuracy"}
    assert got[(1, 7)] == pytest.approx(acc[1, 1]) and got[(0, 0)] == pytest.approx(acc[0, 0])
    for r in rows:  # each row says which epoch's probe it is
        s_idx = (0, 7).index(r["seed"])
        assert r["extra"]["best_epoch"] == fit.best_epoch[r["layer"], s_idx]
        assert r["extra"]["epochs_run"] == fit.epochs_run
    assert got[(1, 0)] > 0.8


def test_unseen_labels_follow_max_train_and_nan_names_the_eval_language():
    rng = np.random.default_rng(4)
    train_x, train_y = synthetic_split(rng, 50)
    train_y = np.where(np.arange(50) == 49, 2, np.minimum(train_y, 1))  # class 2 once, last
    cfg = probes.ProbeConfig(max_epochs=1, seeds=(0,), max_train=10)
    assert 49 not in probes.train_subset(50, cfg)  # the capped training set never sees class 2
    ev_x, ev_y = synthetic_split(rng, 20)
    ev_y = np.where(np.arange(20) < 5, 2, np.minimum(ev_y, 1))
    rows = tasks.run_probe_task("xnli", (train_x, train_y), {"en": (ev_x, ev_y)}, num_classes=3,
                                cfg=cfg, train_lang="en")
    assert all(r["extra"]["unseen_labels"] == [2] and r["extra"]["n_unseen"] == 5 for r in rows)
    bad = ev_x.copy()
    bad[1, 0, 0] = np.inf
    with pytest.raises(probes.FeatureError, match=r"eval\[fr\] features .*\[1\]"):
        tasks.run_probe_task("xnli", (train_x, train_y), {"en": (ev_x, ev_y), "fr": (bad, ev_y)},
                             num_classes=3, cfg=cfg, train_lang="en")


def test_holdout_split_partitions_examples_and_keeps_rows_and_pairs():
    feats = np.zeros((1, 30, 2), np.float32)
    pos = tasks.TaskData(np.arange(30) % 3)
    (f_tr, tr), (f_ho, ho) = tasks.holdout_split((feats, pos), fraction=0.1, seed=0)
    assert f_tr is feats and f_ho is feats and len(ho.labels) == 3 and len(tr.labels) == 27
    assert sorted(np.concatenate([tr.rows, ho.rows]).tolist()) == list(range(30))
    np.testing.assert_array_equal(ho.labels, np.arange(30)[ho.rows] % 3)
    arcs = tasks.arc_classification_examples([A, B])
    (_, a_tr), (_, a_ho) = tasks.holdout_split((feats, arcs), fraction=0.5, seed=1)
    got = {tuple(p) + (l,) for d in (a_tr, a_ho) for p, l in zip(d.pairs.tolist(), d.labels.tolist())}
    assert got == {tuple(p) + (l,) for p, l in zip(arcs.pairs.tolist(), arcs.labels.tolist())}
    assert a_tr.rows is None and len(a_ho.labels) == 2
    again = tasks.holdout_split((feats, pos), fraction=0.1, seed=0)[1][1]
    np.testing.assert_array_equal(again.rows, ho.rows)
    with pytest.raises(tasks.TaskInputError, match="hold out"):
        tasks.holdout_split((feats, tasks.TaskData(np.array([1]))), fraction=0.1, seed=0)


def test_run_probe_task_layer_share_equals_those_rows_and_checks_all_layers():
    # What one process of a multi-host sweep runs: a block of layers, with the early-stopping
    # consensus hook called once per epoch (the real consensus is tested by the 2-process sweep).
    rng = np.random.default_rng(3)
    train, dev, en = synthetic_split(rng, 300), synthetic_split(rng, 100), synthetic_split(rng, 120)
    cfg = probes.ProbeConfig(max_epochs=5, patience=5, seeds=(0, 7), learning_rate=5e-2)
    full = tasks.run_probe_task("xnli", train, {"en": en}, num_classes=3, cfg=cfg, train_lang="en",
                                dev=dev)
    calls = []
    share = tasks.run_probe_task("xnli", train, {"en": en}, num_classes=3, cfg=cfg, train_lang="en",
                                 dev=dev, layers=(1, 2), any_improved=lambda f: calls.append(f) or f)
    assert len(calls) == 5 and {r["layer"] for r in share} == {1}
    assert share == [r for r in full if r["layer"] == 1]
    bad = train[0].copy()
    bad[0, 3, 0] = np.nan  # layer 0 is outside the share, but every process must raise alike
    with pytest.raises(probes.FeatureError, match=r"train\[en\] features .*\[0\]"):
        tasks.run_probe_task("xnli", (bad, train[1]), {"en": en}, num_classes=3, cfg=cfg,
                             train_lang="en", layers=(1, 2))


def test_run_probe_task_pairs_and_ridge():
    rng = np.random.default_rng(1)
    sents = [random_tree(rng, n) for n in rng.integers(5, 15, 30)]
    data = tasks.arc_prediction_examples(sents, seed=0)
    num_words = sum(len(s.tokens) for s in sents)
    feats = rng.normal(size=(2, num_words, 4)).astype(np.float32)
    cfg = probes.ProbeConfig(probe="ridge", ridge_l2s=(1.0,))
    rows = tasks.run_probe_task("arc_pred", (feats, data), {"en": (feats, data)}, num_classes=2,
                                cfg=cfg, train_lang="en")
    assert len(rows) == 2 * 1 * 2 and all(r["seed"] == 0 and r["n"] == len(data.labels)
                                          and r["extra"] == {"l2": 1.0} for r in rows)


def test_check_task_inputs_errors_before_training():
    rng = np.random.default_rng(2)
    x, y = synthetic_split(rng, 50)
    with pytest.raises(tasks.TaskInputError, match="'sw' has no train split"):
        tasks.run_probe_task("pos", None, {"sw": (x, y)}, num_classes=3, train_lang="sw")
    with pytest.raises(tasks.TaskInputError, match="unknown task"):
        tasks.check_task_inputs("ner", (x, y), {}, num_classes=3, train_lang="en")
    with pytest.raises(tasks.TaskInputError, match="needs pairs"):
        tasks.check_task_inputs("arc_cls", (x, y), {}, num_classes=3, train_lang="en")
    with pytest.raises(tasks.TaskInputError, match=r"eval\[de\].*differ in L or D"):
        tasks.check_task_inputs("pos", (x, y), {"de": (x[:, :, :3], y)}, num_classes=3,
                                train_lang="en")
    with pytest.raises(tasks.TaskInputError, match="20 labels for 50"):
        tasks.check_task_inputs("pos", (x, y), {"de": (x, y[:20])}, num_classes=3, train_lang="en")
    with pytest.raises(tasks.TaskInputError, match="num_classes"):
        tasks.check_task_inputs("pos", (x, y + 5), {}, num_classes=3, train_lang="en")


def test_majority_baseline_rows():
    rows = tasks.majority_baseline_rows(
        "pos", np.array([2, 2, 1, 0, 2]), {"en": np.array([2, 1, 2, 2]), "de": np.array([0, 1])},
        train_lang="en")
    by = {(r["eval_lang"], r["metric"]): r for r in rows}
    assert by[("en", "accuracy")]["value"] == pytest.approx(0.75)
    assert by[("de", "accuracy")]["value"] == 0.0
    assert by[("en", "macro_f1")]["value"] == pytest.approx((2 * 3 / (4 + 3) + 0) / 2)
    assert all(r["layer"] == -1 and r["seed"] == 0 and r["extra"]["baseline"] == "majority"
               and r["extra"]["label"] == 2 for r in rows)
    assert by[("de", "accuracy")]["n"] == 2


def test_sentence_examples():
    @dataclasses.dataclass
    class NLI:
        premise: str
        hypothesis: str
        label: int

    data = tasks.sentence_examples([NLI("a", "b", 2), NLI("c", "d", 0)])
    np.testing.assert_array_equal(data.labels, [2, 0])
    assert data.pairs is None and data.rows is None
