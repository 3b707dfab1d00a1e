"""Tests for xlmr_dynamics.probes: vmapped SGD probes, ridge, metrics, input checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlmr_dynamics import probes



pytestmark = pytest.mark.usefixtures("fast_compiles")


@pytest.fixture(autouse=True)
def strict_numpy():
    """Probe code must not rely on implicit rank or dtype promotion (scoped to these tests)."""
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield


def clusters(num_layers=3, n=600, dim=7, num_classes=5, seed=0, noise=1.0):
    """Gaussian class clusters whose separation grows with the layer index (float32 [L,N,D])."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    centers = rng.normal(size=(num_classes, dim))
    x = np.stack([
        noise * rng.normal(size=(n, dim)) * rng.uniform(0.2, 5.0, dim) + 3.0
        + (0.4 + 0.4 * l) * centers[y] for l in range(num_layers)
    ]).astype(np.float32)
    return x, y.astype(np.int32)


def test_config_validation():
    with pytest.raises(ValueError, match="probe"):
        probes.ProbeConfig(probe="svm")
    with pytest.raises(ValueError, match="batch_size"):
        probes.ProbeConfig(batch_size=0)
    with pytest.raises(ValueError, match="seeds"):
        probes.ProbeConfig(seeds=(1, 1))
    with pytest.raises(ValueError, match="max_train"):
        probes.ProbeConfig(max_train=0)
    assert hash(probes.ProbeConfig(seeds=[0, 1])) == hash(probes.ProbeConfig(seeds=(0, 1)))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_vmapped_equals_each_layer_alone(kind):
    x, y = clusters()
    cfg = probes.ProbeConfig(probe=kind, hidden_size=6, batch_size=64, max_epochs=3, patience=5,
                             seeds=(0, 3))
    dev = dict(dev_x=x[:, 500:], dev_y=y[500:])
    fit = probes.fit_probes(x[:, :500], y[:500], 5, cfg=cfg, **dev)
    pred = probes.predict_probes(fit, x[:, 500:])
    assert pred.shape == (3, 2, 100)
    # Each layer alone (all seeds), and one (layer, seed) probe entirely alone.
    units = [(layer, cfg.seeds) for layer in range(3)] + [(1, (3,))]
    for layer, seeds in units:
        one = probes.fit_probes(x[layer:layer + 1, :500], y[:500], 5,
                                cfg=dataclasses.replace(cfg, seeds=seeds),
                                dev_x=x[layer:layer + 1, 500:], dev_y=y[500:])
        pred_one = probes.predict_probes(one, x[layer:layer + 1, 500:])
        for j, seed in enumerate(seeds):
            s_idx = cfg.seeds.index(seed)
            for k in fit.params:
                np.testing.assert_allclose(fit.params[k][layer, s_idx], one.params[k][0, j],
                                           atol=1e-5, rtol=1e-5)
            np.testing.assert_array_equal(pred[layer, s_idx], pred_one[0, j])
            assert fit.best_epoch[layer, s_idx] == one.best_epoch[0, j]


def test_shared_order_equals_each_layer_alone_and_seeds_differ():
    x, y = clusters()
    cfg = probes.ProbeConfig(max_epochs=2, seeds=(0, 1), shuffle_per_seed=False)
    fit = probes.fit_probes(x, y, 5, cfg=cfg)
    one = probes.fit_probes(x[2:3], y, 5, cfg=cfg)
    np.testing.assert_allclose(fit.params["w"][2], one.params["w"][0], atol=1e-5, rtol=1e-5)
    assert not np.allclose(fit.params["w"][2, 0], fit.params["w"][2, 1])


@pytest.mark.parametrize("devices", [2, 0])
def test_layers_spread_over_devices_equal_one_device(devices):
    # 5 layers over 2 devices (blocks of 3 and 2) or over all 8 local devices (5 blocks of 1),
    # with pairs, dev model selection and early stopping (decided over all blocks together).
    assert len(jax.local_devices()) == 8
    x, y = clusters(num_layers=5, n=700, seed=4)
    rng = np.random.default_rng(4)
    pairs = rng.integers(0, 700, (900, 2)).astype(np.int32)
    labels = y[pairs[:, 0]]
    cfg = probes.ProbeConfig(max_epochs=6, patience=1, seeds=(0, 2), learning_rate=3e-2)
    kw = dict(dev_x=x[:, 500:], dev_y=labels[700:], train_pairs=pairs[:700] % 500,
              dev_pairs=pairs[700:] % 200)
    one = probes.fit_probes(x[:, :500], labels[:700], 5, cfg=cfg, **kw)
    spread = probes.fit_probes(jnp.asarray(x[:, :500]), labels[:700], 5,
                               cfg=dataclasses.replace(cfg, devices=devices), **kw)
    assert spread.devices == (2 if devices == 2 else 5) and one.devices == 1
    assert spread.epochs_run == one.epochs_run < cfg.max_epochs
    for k in one.params:
        np.testing.assert_allclose(spread.params[k], one.params[k], atol=1e-6, rtol=1e-6)
    for a, b in [(spread.mean, one.mean), (spread.scale, one.scale), (spread.train_loss, one.train_loss),
                 (spread.dev_accuracy, one.dev_accuracy), (spread.best_epoch, one.best_epoch)]:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-6)
    np.testing.assert_array_equal(probes.predict_probes(spread, x[:, 500:], pairs[700:] % 200),
                                  probes.predict_probes(one, x[:, 500:], pairs[700:] % 200))


def test_spread_over_devices_errors_name_global_layers():
    x, y = clusters(num_layers=5, n=200)
    x[3, 7, 1] = np.nan
    cfg = probes.ProbeConfig(max_epochs=1, seeds=(0,), devices=2)
    with pytest.raises(probes.FeatureError, match=r"train_x .*layers \[3\]"):
        probes.fit_probes(x, y, 5, cfg=cfg)
    with pytest.raises(ValueError, match="devices=9, .*8 local devices"):
        probes.fit_probes(x, y, 5, cfg=dataclasses.replace(cfg, devices=9))
    with pytest.raises(ValueError, match="devices"):
        probes.ProbeConfig(devices=-1)


def test_accuracy_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    # Overlapping clusters (optimum has moderate weights, so Adam converges in tens of epochs).
    x, y = clusters(num_layers=2, n=4000, dim=20, num_classes=4, seed=1, noise=1.6)
    tr, dv, te = slice(0, 3000), slice(3000, 3500), slice(3500, 4000)
    cfg = probes.ProbeConfig(max_epochs=60, patience=5, seeds=(0, 1), learning_rate=1e-2)
    fit = probes.fit_probes(x[:, tr], y[tr], 4, cfg=cfg, dev_x=x[:, dv], dev_y=y[dv])
    ours = probes.evaluate(probes.predict_probes(fit, x[:, te]), y[te], 4)["accuracy"]
    for layer in range(2):
        mu, sd = x[layer, tr].mean(0), x[layer, tr].std(0)
        ref = LogisticRegression(C=1e4, max_iter=5000).fit((x[layer, tr] - mu) / sd, y[tr])
        ref_acc = ref.score((x[layer, te] - mu) / sd, y[te])
        assert 0.4 < ref_acc < 0.95  # non-trivial problem (chance 0.25)
        np.testing.assert_allclose(ours[layer], ref_acc, atol=0.01)


def test_model_selection_keeps_best_dev_epoch_and_early_stops():
    x, y = clusters(num_layers=2, n=800, dim=5, num_classes=3, seed=2)
    cfg = probes.ProbeConfig(max_epochs=40, patience=2, seeds=(0, 1), learning_rate=3e-2)
    fit = probes.fit_probes(x[:, :600], y[:600], 3, cfg=cfg, dev_x=x[:, 600:], dev_y=y[600:])
    curve = fit.dev_accuracy  # [E, L, S]
    assert fit.epochs_run < 40 and curve.shape == (fit.epochs_run, 2, 2)
    np.testing.assert_array_equal(fit.best_epoch, np.argmax(curve, axis=0))  # first best epoch
    # Stopped exactly `patience` epochs after the last improvement of any probe.
    running_best = np.maximum.accumulate(curve, axis=0)
    improved_any = np.r_[True, (running_best[1:] > running_best[:-1]).any(axis=(1, 2))]
    assert fit.epochs_run - 1 - np.nonzero(improved_any)[0].max() == cfg.patience
    # Kept params reproduce the recorded best dev accuracy.
    acc = probes.evaluate(probes.predict_probes(fit, x[:, 600:]), y[600:], 3)["accuracy"]
    np.testing.assert_allclose(acc, curve.max(axis=0), atol=1e-6)


def test_remainder_minibatch_is_used():
    # 65 examples, batch 64: the 65th example (the only one of class 2) must influence training.
    x, y = clusters(num_layers=1, n=65, dim=4, num_classes=2, seed=3)
    y = y.copy()
    y[-1] = 2
    cfg = probes.ProbeConfig(max_epochs=1, seeds=(0,), shuffle_per_seed=False)
    fit = probes.fit_probes(x, y, 3, cfg=cfg)
    fit_drop = probes.fit_probes(x[:, :64], y[:64], 3, cfg=cfg)
    assert not np.allclose(fit.params["b"], fit_drop.params["b"])
    np.testing.assert_allclose(fit.train_loss.shape, (1, 1, 1))


def test_pair_features_match_numpy_and_bf16_is_not_copied():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 11, 5)).astype(np.float32)
    idx = rng.integers(0, 11, (7, 2)).astype(np.int32)
    mean = rng.normal(size=(3, 5)).astype(np.float32)
    scale = rng.uniform(0.5, 2, (3, 5)).astype(np.float32)
    got = np.asarray(probes.pair_features(jnp.asarray(x), jnp.asarray(idx), mean, scale))
    z = (x - mean[:, None]) * scale[:, None]
    hi, hj = z[:, idx[:, 0]], z[:, idx[:, 1]]
    np.testing.assert_allclose(got, np.concatenate([hi, hj, hi * hj], -1), rtol=1e-6, atol=1e-6)
    rows = np.asarray(probes.pair_features(jnp.asarray(x), jnp.asarray(idx[:, :1])))
    np.testing.assert_array_equal(rows, x[:, idx[:, 0]])
    # bf16 input: gathered and cast per minibatch (float32 out), equal to casting first.
    xb = jnp.asarray(x, jnp.bfloat16)
    got_b = probes.pair_features(xb, jnp.asarray(idx))
    assert got_b.dtype == jnp.float32
    xf = np.asarray(xb.astype(jnp.float32))
    np.testing.assert_array_equal(
        np.asarray(got_b)[..., :5], xf[:, idx[:, 0]])


def test_pair_probe_trains_on_pairs_and_matches_explicit_features():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 200, 4)).astype(np.float32)
    pairs = rng.integers(0, 200, (500, 2)).astype(np.int32)
    # Label depends on the product term only: a linear probe needs h_i * h_j.
    y = (np.sum(x[0, pairs[:, 0]] * x[0, pairs[:, 1]], -1) > 0).astype(np.int32)
    cfg = probes.ProbeConfig(max_epochs=15, seeds=(0,), standardize=False, learning_rate=1e-2)
    fit = probes.fit_probes(x, y, 2, cfg=cfg, train_pairs=pairs)
    assert fit.pair and fit.params["w"].shape == (2, 1, 2, 12)
    explicit = np.concatenate(
        [x[:, pairs[:, 0]], x[:, pairs[:, 1]], x[:, pairs[:, 0]] * x[:, pairs[:, 1]]], -1)
    fit_e = probes.fit_probes(explicit, y, 2, cfg=cfg)
    np.testing.assert_allclose(fit.params["w"], fit_e.params["w"], atol=1e-5)
    acc = probes.evaluate(probes.predict_probes(fit, x, pairs), y, 2)["accuracy"]
    assert acc[0, 0] > 0.9
    with pytest.raises(ValueError, match="pairs"):
        probes.predict_probes(fit, x)


def test_bf16_features_train_like_float32():
    x, y = clusters(num_layers=2, n=400)
    xb = jnp.asarray(x, jnp.bfloat16)
    cfg = probes.ProbeConfig(max_epochs=2, seeds=(0,))
    fit_b = probes.fit_probes(xb, y, 5, cfg=cfg)
    fit_f = probes.fit_probes(np.asarray(xb.astype(jnp.float32)), y, 5, cfg=cfg)
    np.testing.assert_allclose(fit_b.params["w"], fit_f.params["w"], atol=1e-5)


def test_ridge_equals_lstsq_and_closed_form():
    rng = np.random.default_rng(5)
    num_classes = 3
    x = rng.normal(size=(2, 120, 6)).astype(np.float32) * 2 + 1
    y = rng.integers(0, num_classes, 120).astype(np.int32)
    t = 2.0 * np.eye(num_classes)[y] - 1.0
    # l2 = 0: ordinary least squares with a bias column.
    cfg = probes.ProbeConfig(probe="ridge", ridge_l2s=(0.0,), standardize=False)
    fit = probes.fit_ridge(x, y, num_classes, cfg=cfg)
    for layer in range(2):
        a = np.c_[x[layer].astype(np.float64), np.ones(120)]
        sol = np.linalg.lstsq(a, t, rcond=None)[0]
        np.testing.assert_allclose(fit.params["w"][layer, 0], sol[:-1].T, atol=2e-4)
        np.testing.assert_allclose(fit.params["b"][layer, 0], sol[-1], atol=2e-4)
    # l2 > 0 with standardisation: centred closed form, bias unpenalised; chosen on dev.
    l2s = (0.01, 1.0, 100.0)
    cfg = probes.ProbeConfig(probe="ridge", ridge_l2s=l2s)
    fit = probes.fit_ridge(x[:, :80], y[:80], num_classes, cfg=cfg,
                           dev_x=x[:, 80:], dev_y=y[80:])
    for layer in range(2):
        xs = x[layer, :80].astype(np.float64)
        z = (xs - xs.mean(0)) / xs.std(0)
        accs = []
        for l2 in l2s:
            w = np.linalg.solve(z.T @ z / 80 + l2 * np.eye(6), z.T @ (t[:80] - t[:80].mean(0)) / 80)
            b = t[:80].mean(0)
            zd = (x[layer, 80:] - xs.mean(0)) / xs.std(0)
            accs.append(np.mean(np.argmax(zd @ w + b, 1) == y[80:]))
            if l2 == fit.info["l2"][layer]:
                np.testing.assert_allclose(fit.params["w"][layer, 0], w.T,
                                           atol=1e-4)
        np.testing.assert_allclose(fit.info["dev_accuracy_grid"][layer], accs, atol=1e-9)
        assert fit.info["dev_accuracy_grid"][layer][l2s.index(fit.info["l2"][layer])] == max(accs)
    # Deterministic.
    fit2 = probes.fit_ridge(x[:, :80], y[:80], num_classes, cfg=cfg, dev_x=x[:, 80:], dev_y=y[80:])
    np.testing.assert_array_equal(fit.params["w"], fit2.params["w"])
    with pytest.raises(ValueError, match="dev"):
        probes.fit_ridge(x, y, num_classes, cfg=cfg)


def test_ridge_with_pairs_equals_ridge_on_explicit_pair_features():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 50, 3)).astype(np.float32)
    pairs = rng.integers(0, 50, (90, 2)).astype(np.int32)
    y = rng.integers(0, 2, 90).astype(np.int32)
    cfg = probes.ProbeConfig(probe="ridge", ridge_l2s=(0.1,), standardize=False)
    fit = probes.fit_ridge(x, y, 2, cfg=cfg, train_pairs=pairs, chunk=16)
    explicit = np.concatenate(
        [x[:, pairs[:, 0]], x[:, pairs[:, 1]], x[:, pairs[:, 0]] * x[:, pairs[:, 1]]], -1)
    fit_e = probes.fit_ridge(explicit, y, 2, cfg=cfg)
    np.testing.assert_allclose(fit.params["w"], fit_e.params["w"], atol=1e-4)
    np.testing.assert_array_equal(probes.predict_probes(fit, x, pairs),
                                  probes.predict_probes(fit_e, explicit))


def test_nan_features_raise_feature_error_naming_layers():
    x, y = clusters(num_layers=4, n=200)
    bad = x.copy()
    bad[1, 17, 2] = np.nan
    bad[3, 5, 0] = np.inf
    cfg = probes.ProbeConfig(max_epochs=1, seeds=(0,))
    with pytest.raises(probes.FeatureError, match=r"train_x .*layers \[1, 3\]") as err:
        probes.fit_probes(bad, y, 5, cfg=cfg)
    assert err.value.layers == [1, 3] and isinstance(err.value, ValueError)
    with pytest.raises(probes.FeatureError, match=r"dev_x .*\[1, 3\]"):
        probes.fit_probes(x, y, 5, cfg=cfg, dev_x=bad, dev_y=y)
    with pytest.raises(probes.FeatureError, match=r"\[1, 3\]"):
        probes.fit_ridge(bad, y, 5, cfg=probes.ProbeConfig(probe="ridge", ridge_l2s=(1.0,)))
    fit = probes.fit_probes(x, y, 5, cfg=cfg)
    with pytest.raises(probes.FeatureError, match=r"\[1, 3\]"):
        probes.predict_probes(fit, bad)
    # Only the rows actually used are checked.
    probes.check_features(bad, rows=np.arange(100, 200))


def test_bad_labels_and_indices_are_named():
    x, y = clusters(num_layers=1, n=50)
    cfg = probes.ProbeConfig(max_epochs=1, seeds=(0,))
    with pytest.raises(ValueError, match=r"train_y\[\d+\] = 9"):
        probes.fit_probes(x, np.where(np.arange(50) == 7, 9, y), 5, cfg=cfg)
    with pytest.raises(ValueError, match="out of range"):
        probes.fit_probes(x, y[:3], 5, cfg=cfg, train_pairs=np.array([[0, 1], [2, 50], [0, 0]]))
    with pytest.raises(ValueError, match=r"\[L, N, D\]"):
        probes.fit_probes(x[0], y, 5, cfg=cfg)


def test_max_train_caps_examples_deterministically():
    x, y = clusters(num_layers=1, n=300)
    cfg = probes.ProbeConfig(max_epochs=1, seeds=(0,), max_train=64, batch_size=64,
                             shuffle_per_seed=False)
    a = probes.fit_probes(x, y, 5, cfg=cfg)
    b = probes.fit_probes(x, y, 5, cfg=cfg)
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    c = probes.fit_probes(x, y, 5, cfg=dataclasses.replace(cfg, max_train=None))
    assert not np.allclose(a.params["w"], c.params["w"])


def test_evaluate_matches_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(7)
    y = rng.integers(0, 6, 300)
    pred = np.where(rng.random((2, 3, 300)) < 0.6, y, rng.integers(0, 7, (2, 3, 300)))
    out = probes.evaluate(pred, y, 7)
    assert out["accuracy"].shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert out["accuracy"][i, j] == pytest.approx(accuracy_score(y, pred[i, j]))
            assert out["macro_f1"][i, j] == pytest.approx(f1_score(y, pred[i, j], average="macro"))
    mask = np.arange(300) < 100
    assert probes.evaluate(pred, y, 7, mask)["accuracy"][0, 0] == pytest.approx(
        accuracy_score(y[:100], pred[0, 0, :100]))


def test_evaluate_rejects_out_of_range_labels_and_handles_no_examples():
    # A gold label >= C (or -1) would land in another class's confusion cell and count as right.
    with pytest.raises(ValueError, match=r"gold label 5 is outside \[0, 3\) \(example 2\)"):
        probes.evaluate(np.array([[0, 1, 1]]), np.array([0, 1, 5]), 3)
    with pytest.raises(ValueError, match=r"gold label -1"):
        probes.evaluate(np.array([[0, 1, 2, 2]]), np.array([0, 1, 2, -1]), 3)
    with pytest.raises(ValueError, match=r"prediction 3 is outside"):
        probes.evaluate(np.array([[0, 3, 1]]), np.array([0, 1, 1]), 3)
    # Masked-out examples may carry any label (e.g. -1 = ignore).
    out = probes.evaluate(np.array([[0, 1, 2, 2]]), np.array([0, 1, 1, -1]), 3,
                          mask=np.array([True, True, True, False]))
    assert out["accuracy"][0] == pytest.approx(2 / 3)
    empty = probes.evaluate(np.zeros((3, 1, 0), np.int32), np.zeros(0, np.int32), 3)
    assert empty["accuracy"].shape == (3, 1) and np.isnan(empty["accuracy"]).all()


def test_empty_dev_set_and_empty_rows_are_clear():
    x, y = clusters(num_layers=2, n=60)
    cfg = probes.ProbeConfig(max_epochs=1, seeds=(0,))
    none = np.zeros(0, np.int64)
    with pytest.raises(ValueError, match="dev set has no examples"):
        probes.fit_probes(x, y, 5, cfg=cfg, dev_x=x, dev_y=none.astype(np.int32), dev_rows=none)
    with pytest.raises(ValueError, match="dev set has no examples"):
        probes.fit_ridge(x, y, 5, cfg=probes.ProbeConfig(probe="ridge", ridge_l2s=(1.0,)),
                         dev_x=x, dev_y=none.astype(np.int32), dev_rows=none)
    probes.check_features(x, rows=none)  # nothing to check
    fit = probes.fit_probes(x, y, 5, cfg=cfg)
    with pytest.raises(probes.FeatureError, match=r"eval\[fr\] features .*\[1\]"):
        bad = x.copy()
        bad[1, 3, 0] = np.nan
        probes.predict_probes(fit, bad, name="eval[fr] features")


def test_ridge_without_l2_on_rank_deficient_features_is_the_minimum_norm_solution():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(1, 40, 5)).astype(np.float32)
    x[:, :, 4] = 1.0  # constant dimension: singular covariance
    y = rng.integers(0, 3, 40).astype(np.int32)
    cfg = probes.ProbeConfig(probe="ridge", ridge_l2s=(0.0,), standardize=False)
    fit = probes.fit_ridge(x, y, 3, cfg=cfg)
    w = np.asarray(fit.params["w"][0, 0])
    assert np.isfinite(w).all() and abs(w[:, 4]).max() < 1e-4
    t = 2.0 * np.eye(3)[y] - 1.0
    sol = np.linalg.lstsq(np.c_[x[0, :, :4].astype(np.float64), np.ones(40)], t, rcond=None)[0]
    np.testing.assert_allclose(w[:, :4], sol[:-1].T, atol=2e-4)
    assert fit.dev_accuracy.shape == (0, 1, 1)  # no dev set: no dev accuracy


def test_bf16_features_are_never_widened_whole_in_the_compiled_epoch(monkeypatch):
    """Regression: XLA hoisted convert(x) out of the epoch loop (a float32 copy of all features)."""
    import re

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 1003, 32)), jnp.bfloat16)
    y = rng.integers(0, 4, 1003).astype(np.int32)
    texts = []
    orig = probes._train_epoch

    def spy(*a, **k):
        texts.append(orig.lower(*a, **k).compile().as_text())
        return orig(*a, **k)

    monkeypatch.setattr(probes, "_train_epoch", spy)
    cfg = probes.ProbeConfig(batch_size=64, max_epochs=1, seeds=(0, 1), eval_batch_size=128)
    fit_b = probes.fit_probes(x, y, 4, cfg=cfg, dev_x=x, dev_y=y)
    full_copy = r"= (f32|u32|s32|u16|bf16)\[3,1003,32\]\{[^}]*\} (fusion|convert|copy|bitcast-convert)\("
    assert texts and not any(re.search(full_copy, t) for t in texts)
    # Nor in pieces (e.g. one f32[1,1003,32] per layer): no float buffer has the word axis (the
    # dev set is read in chunks of 128; u32[S, 1003] are the per-seed shuffles' random bits).
    widened = r"= f32\[[0-9,]*\b1003\b[0-9,]*\]"
    assert not any(re.search(widened, t) for t in texts), [m.group(0) for t in texts
                                                           for m in re.finditer(widened, t)][:5]
    # Same numbers as training on the float32 values of the same features.
    fit_f = probes.fit_probes(np.asarray(x.astype(jnp.float32)), y, 4, cfg=cfg, dev_x=x, dev_y=y)
    np.testing.assert_allclose(np.asarray(fit_b.params["w"]), np.asarray(fit_f.params["w"]), atol=1e-5)
