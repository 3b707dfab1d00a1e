"""Analysis on synthetic curves with known answers: acquisition, best/final, layers, transfer, Spearman."""

import json

import numpy as np
import pandas as pd
import pytest

from xlmr_dynamics import analysis as A

STEPS = [0, 1000, 2000, 5000, 10000, 20000, 50000, 100000]


def _row(step, task, tl, el, layer, seed, metric, value, **kw):
    return dict(run_id="r", checkpoint=f"c{step}", step=step, task=task, train_lang=tl, eval_lang=el,
                layer=layer, seed=seed, metric=metric, value=float(value), n=100,
                extra=kw.get("extra", "{}"))


def test_acquisition_higher_is_better_best_and_final():
    v = [0.1, 0.5, 0.90, 0.97, 1.00, 0.99, 0.95, 0.96]
    a = A.acquisition_step(STEPS, v, threshold=0.98, reference="best")
    assert a.step == 10000 and a.target == pytest.approx(0.98)  # 0.97 < 0.98 at 5000
    assert a.best_step == 10000 and a.final_value == 0.96
    assert a.non_monotone and a.max_drop == pytest.approx(0.05)  # 1.00 -> 0.95
    assert a.stable_step is None  # ends below the target
    f = A.acquisition_step(STEPS, v, threshold=0.98, reference="final")
    assert f.target == pytest.approx(0.98 * 0.96) and f.step == 5000  # 0.9408 <= 0.97
    assert f.stable_step == 5000
    # order of input does not matter; a smooth monotone curve is not flagged
    m = A.acquisition_step(STEPS[::-1], [0.1, 0.2, 0.5, 0.8, 0.9, 0.985, 0.99, 1.0][::-1])
    assert m.step == 20000 and not m.non_monotone and m.stable_step == 20000
    # lower threshold -> earlier
    assert A.acquisition_step(STEPS, v, threshold=0.9).step == 2000


def test_acquisition_lower_is_better():
    bpc = [8.0, 4.0, 2.5, 2.1, 2.05, 2.0, 2.02, 2.1]
    a = A.acquisition_step(STEPS, bpc, reference="best", higher_is_better=False)
    assert a.target == pytest.approx(2.0 / 0.98)  # 2.0408
    assert a.step == 20000 and a.best_value == 2.0 and a.best_step == 20000
    assert a.max_drop == pytest.approx(0.05) and a.non_monotone  # 2.0 -> 2.1 is 5 % worse
    f = A.acquisition_step(STEPS, bpc, reference="final", higher_is_better=False)
    assert f.target == pytest.approx(2.1 / 0.98) and f.step == 5000  # 2.1 <= 2.1429
    # NaN points are ignored; all-NaN gives None
    n = A.acquisition_step(STEPS, [np.nan] + bpc[1:], higher_is_better=False)
    assert n.step == 20000
    assert A.acquisition_step([1, 2], [np.nan, np.nan]).step is None
    with pytest.raises(A.AnalysisError, match="reference"):
        A.acquisition_step(STEPS, bpc, reference="median")
    with pytest.raises(A.AnalysisError, match="duplicate steps"):
        A.acquisition_step([1, 1], [0.1, 0.2])


def _table():
    """pos: en, de in-language and en->de, de->en cross-lingual; 3 layers x 3 seeds; + bpc; + majority."""
    rng = np.random.default_rng(0)
    rows = []
    # in-language: reaches 0.98 of best (1.0 at last layer) at 2000; cross: at 20000
    inl = np.array([0.2, 0.9, 0.985, 0.99, 0.995, 1.0, 1.0, 1.0])
    cross = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 0.79, 0.8, 0.8])  # best 0.8 -> target 0.784 -> 20000
    for tl, el, base in [("en", "en", inl), ("de", "de", inl * 0.9), ("en", "de", cross), ("de", "en", cross * 0.5)]:
        for layer in range(3):
            # layer 2 (last) degrades at the final step; layer 1 keeps improving
            curve = base * (0.8 + 0.1 * layer)
            if layer == 2:
                curve = curve.copy()
                curve[-1] *= 0.9
            for seed in range(3):
                for s, v in zip(STEPS, curve):
                    rows.append(_row(s, "pos", tl, el, layer, seed, "accuracy", v + rng.normal(0, 1e-4)))
    for lang, scale in [("en", 1.0), ("de", 1.2)]:
        for s, v in zip(STEPS, [8.0, 4.0, 2.5, 2.1, 2.05, 2.0, 2.02, 2.1]):
            rows.append(_row(s, "bpc", "", lang, 2, 0, "bpc", v * scale))
    for el in ("en", "de"):
        rows.append(_row(-1, "pos", "en", el, -1, 0, "accuracy", 0.15,
                         extra=json.dumps({"baseline": "majority", "label": 3})))
    return pd.DataFrame(rows)


def test_example_level_interval_matches_the_binomial():
    """One seed, accuracy 0.5 on n = 400 examples: the 95 % interval is 0.5 +- 1.96 * 0.025."""
    df = pd.DataFrame([_row(1000, "pos", "en", "en", 1, 0, "accuracy", 0.5)])
    df["n"] = 400
    pt = A.curves(df, n_boot=20000, seed=1).iloc[0]
    assert pt.lo == pytest.approx(0.5 - 1.96 * 0.025, abs=0.003)
    assert pt.hi == pytest.approx(0.5 + 1.96 * 0.025, abs=0.003)


def test_split_baselines_and_curves_bootstrap():
    df = _table()
    main, major = A.split_baselines(df)
    assert len(major) == 2 and (main.step >= 0).all()
    mb = A.majority_baselines(df)
    assert list(mb.value) == [0.15, 0.15] and set(mb.eval_lang) == {"en", "de"}
    c = A.curves(df, n_boot=200, seed=0, examples=False)
    c2 = A.curves(df, n_boot=200, seed=0, examples=False)
    pd.testing.assert_frame_equal(c, c2)  # deterministic
    assert len(c) == (4 * 3 + 2) * len(STEPS)
    pt = c[(c.task == "pos") & (c.train_lang == "en") & (c.eval_lang == "en") & (c.layer == 2)
           & (c.step == 100000)].iloc[0]
    raw = df[(df.task == "pos") & (df.train_lang == "en") & (df.eval_lang == "en") & (df.layer == 2)
             & (df.step == 100000)].value
    assert pt.n_seeds == 3 and pt["mean"] == pytest.approx(raw.mean())
    assert raw.min() <= pt.lo <= pt["mean"] <= pt.hi <= raw.max()
    assert pt["std"] == pytest.approx(raw.std())
    b = c[c.task == "bpc"]
    assert (b.lo == b["mean"]).all() and (b.n_seeds == 1).all()
    # a NaN seed is excluded and counted
    df2 = df.copy()
    df2.loc[raw.index[0], "value"] = np.nan
    pt2 = A.curves(df2, n_boot=50).set_index(["task", "train_lang", "eval_lang", "layer", "metric", "step"])
    pt2 = pt2.loc[("pos", "en", "en", 2, "accuracy", 100000)]
    assert pt2.n_seeds == 2 and pt2.n_nan == 1 and pt2["mean"] == pytest.approx(raw.iloc[1:].mean())
    # two-level interval: the example level widens accuracy intervals, leaves others alone
    both = A.curves(df, n_boot=200, seed=0)
    pb = both[(both.task == "pos") & (both.train_lang == "en") & (both.eval_lang == "en") & (both.layer == 2)
              & (both.step == 100000)].iloc[0]
    assert pb.lo < pt.lo and pb.hi > pt.hi and pb["mean"] == pt["mean"]
    bb = both[both.task == "bpc"]
    assert (bb.lo == bb["mean"]).all()
    # log-step positions: step 0 at half the first positive step
    x, x0 = A.plot_steps([0, 1000, 5000])
    assert x0 == 500 and list(x) == [500, 1000, 5000]


def test_acquisition_table_lag_and_best_final():
    c = A.curves(_table(), n_boot=50)
    acq = A.acquisition_table(c, threshold=0.98, reference="best")
    key = acq.set_index(["task", "train_lang", "eval_lang", "layer", "metric"])
    assert key.loc[("pos", "en", "en", 1, "accuracy"), "acq_step"] == 2000
    assert key.loc[("pos", "en", "en", 1, "accuracy"), "setting"] == "in_language"
    assert key.loc[("pos", "en", "de", 1, "accuracy"), "acq_step"] == 20000
    assert key.loc[("pos", "en", "de", 1, "accuracy"), "setting"] == "cross_lingual"
    assert key.loc[("bpc", "", "en", 2, "bpc"), "acq_step"] == 20000
    assert key.loc[("bpc", "", "en", 2, "bpc"), "setting"] == "unsupervised"
    assert not key.loc[("bpc", "", "en", 2, "bpc"), "higher_is_better"]
    assert key.loc[("pos", "en", "en", 2, "accuracy"), "non_monotone"]  # last layer drops 10 %
    assert not key.loc[("pos", "en", "en", 1, "accuracy"), "non_monotone"]
    lag = A.lag_table(acq).set_index(["train_lang", "eval_lang", "layer"])
    assert lag.loc[("en", "de", 1), "in_lang_step"] == 2000
    assert lag.loc[("en", "de", 1), "lag"] == 18000 and lag.loc[("en", "de", 1), "ratio"] == pytest.approx(10)
    assert len(lag) == 2 * 3
    bf = A.best_vs_final(c).set_index(["task", "train_lang", "eval_lang", "layer", "metric"])
    r = bf.loc[("pos", "en", "en", 2, "accuracy")]
    assert r.best_step in (20000, 50000) and r.final_step == 100000  # 1.0 twice (+ noise)
    assert r["drop"] == pytest.approx(0.1 * r.best_value, rel=1e-3) and r.rel_drop == pytest.approx(0.1, rel=1e-2)
    assert not r.final_is_best
    assert bf.loc[("pos", "en", "en", 1, "accuracy"), "final_is_best"] or \
        bf.loc[("pos", "en", "en", 1, "accuracy"), "drop"] < 1e-3
    r = bf.loc[("bpc", "", "de", 2, "bpc")]
    assert r.best_value == pytest.approx(2.4) and r["drop"] == pytest.approx(0.12)  # 2.52 - 2.4, worse = positive


def test_final_is_best_on_a_plateau_and_lower_is_better():
    rows = []
    for metric, vals in [("accuracy", [0.1, 0.9, 0.95, 0.95]), ("f1", [0.1, 0.9, 0.95, 0.94]),
                         ("bpc", [5.0, 3.0, 2.0, 2.0]), ("aer", [0.9, 0.3, 0.2, 0.25])]:
        rows += [dict(task="t", train_lang="en", eval_lang="en", layer=0, metric=metric, step=s, mean=v)
                 for s, v in zip([0, 1000, 2000, 3000], vals)]
    bf = A.best_vs_final(pd.DataFrame(rows)).set_index("metric")
    assert bf.loc["accuracy", "best_step"] == 2000 and bf.loc["accuracy", "drop"] == 0.0
    assert bf.loc["accuracy", "final_is_best"] and bf.loc["bpc", "final_is_best"]  # plateaus
    assert not bf.loc["f1", "final_is_best"] and not bf.loc["aer", "final_is_best"]  # final worse
    assert bf.loc["aer", "drop"] == pytest.approx(0.05)  # lower is better: final - best


def test_csv_round_trip_gives_the_same_tables(tmp_path):
    """BPC's train_lang "" comes back from read_csv as NaN; the analysis reads it as ""."""
    df = _table()
    df.to_csv(tmp_path / "results.csv", index=False)
    back = pd.read_csv(tmp_path / "results.csv")
    assert back.train_lang.isna().any()  # the round trip does lose the ""
    c = A.curves(df, n_boot=50)
    pd.testing.assert_frame_equal(A.curves(back, n_boot=50), c)
    c.to_csv(tmp_path / "curves.csv", index=False)
    c_back = pd.read_csv(tmp_path / "curves.csv")
    acq = A.acquisition_table(c)
    pd.testing.assert_frame_equal(A.acquisition_table(c_back), acq)
    assert (acq[acq.task == "bpc"].setting == "unsupervised").all()
    pd.testing.assert_frame_equal(A.best_layer_per_step(c_back), A.best_layer_per_step(c))
    m = A.layer_step_matrix(c_back, task="bpc", metric="bpc", train_lang="", eval_lang="en")
    pd.testing.assert_frame_equal(m, A.layer_step_matrix(c, task="bpc", metric="bpc", train_lang="",
                                                         eval_lang="en"))


def test_layers_best_layer_per_step():
    c = A.curves(_table(), n_boot=50)
    m = A.layer_step_matrix(c, task="pos", metric="accuracy", train_lang="en", eval_lang="en")
    assert list(m.index) == [0, 1, 2] and list(m.columns) == STEPS
    assert m.loc[1, 100000] == pytest.approx(0.9, abs=1e-3)
    avg = A.layer_step_matrix(c, task="pos", metric="accuracy")  # in-language average over en, de
    assert avg.loc[1, 100000] == pytest.approx((0.9 + 0.81) / 2, abs=1e-3)
    bl = A.best_layer_per_step(c).set_index(["task", "train_lang", "eval_lang", "metric", "step"])
    assert bl.loc[("pos", "en", "en", "accuracy", 50000), "best_layer"] == 2
    assert bl.loc[("pos", "en", "en", "accuracy", 100000), "best_layer"] == 1  # last layer degraded
    assert bl.loc[("pos", "en", "en", "accuracy", 100000), "last_layer"] == 2
    with pytest.raises(A.AnalysisError, match="no curves"):
        A.layer_step_matrix(c, task="xnli", metric="accuracy")


def test_transfer_matrices():
    c = A.curves(_table(), n_boot=50)
    raw = A.transfer_matrix(c, task="pos", step=50000, layer=1, metric="accuracy")
    assert raw.loc["en", "en"] == pytest.approx(0.9, abs=1e-3)
    assert raw.loc["en", "de"] == pytest.approx(0.72, abs=1e-3)
    norm = A.transfer_matrix(c, task="pos", step=50000, layer=1, metric="accuracy", normalize=True)
    assert norm.loc["en", "en"] == pytest.approx(1.0) and norm.loc["de", "de"] == pytest.approx(1.0)
    assert norm.loc["en", "de"] == pytest.approx(0.72 / 0.81, abs=1e-3)  # / in-language de
    assert norm.loc["de", "en"] == pytest.approx(0.36 / 0.9, abs=1e-3)  # / in-language en
    acq = A.acquisition_table(c)
    pm = A.pair_acquisition_matrix(acq, task="pos", layer=1, metric="accuracy")
    assert pm.loc["en", "de"] == 20000 and pm.loc["de", "de"] == 2000
    assert A.nearest_step(STEPS, 60000) == 50000 and A.nearest_step(STEPS, 3500) == 2000


def test_spearman_known_monotone():
    langs = ["a", "b", "c", "d", "e"]
    acq = pd.DataFrame({"task": "pos", "setting": "in_language", "layer": 2, "metric": "accuracy",
                        "train_lang": langs, "eval_lang": langs, "acq_step": [5000, 4000, 3000, 2000, 1000]})
    size = {"a": 1.0, "b": 10.0, "c": 20.0, "d": 300.0, "e": 4000.0}  # more data, earlier
    r = A.spearman(acq, size)
    assert r["rho"] == pytest.approx(-1.0) and r["n"] == 5 and r["p"] < 0.05
    t = pd.DataFrame({"lang": langs, "cc100_gb": list(size.values()), "rank": [5, 4, 3, 2, 1]})
    tab = A.spearman_table(acq, t)
    got = tab.set_index("property")
    assert got.loc["cc100_gb", "rho"] == pytest.approx(-1.0) and got.loc["rank", "rho"] == pytest.approx(1.0)
    assert np.isnan(A.spearman(acq.iloc[:2], size)["rho"])
    with pytest.raises(A.AnalysisError, match="numeric columns"):
        A.spearman(acq, t)


def _naive_acquisition(steps, vals, hib, thr, ref_kind, tol):
    pts = sorted((s, v) for s, v in zip(steps, vals) if np.isfinite(v))
    ss, vv = [s for s, _ in pts], [v for _, v in pts]
    sc = [v if hib else -v for v in vv]
    best, final = vv[sc.index(max(sc))], vv[-1]
    ref = best if ref_kind == "best" else final
    target = thr * ref if hib else ref / thr
    ok = [(v >= target) if hib else (v <= target) for v in vv]
    ia = ok.index(True)
    last_miss = max([i for i, o in enumerate(ok) if not o], default=-1)
    run, drop = -np.inf, 0.0
    for x in sc[ia:]:
        run = max(run, x)
        drop = max(drop, run - x)
    return ss[ia], (ss[last_miss + 1] if last_miss + 1 < len(ss) else None), drop / abs(ref)


@pytest.mark.parametrize("ref_kind", ["best", "final"])
def test_acquisition_table_matches_naive_loop_with_gaps(ref_kind):
    rng = np.random.default_rng(1)
    rows = []
    expect = {}
    for c in range(60):
        metric = "bpc" if c % 3 == 0 else "accuracy"
        steps = sorted(rng.choice(STEPS + [3000, 200000], size=rng.integers(2, 9), replace=False).tolist())
        vals = rng.uniform(0.2, 3.0, size=len(steps))
        if c % 7 == 0 and len(steps) > 2:
            vals[1] = np.nan  # failed checkpoint inside a curve
        for s, v in zip(steps, vals):
            rows.append(dict(task="t", train_lang="en", eval_lang=f"l{c}", layer=0, metric=metric, step=s, mean=v))
        expect[f"l{c}"] = _naive_acquisition(steps, vals, metric != "bpc", 0.9, ref_kind, 0.02)
    acq = A.acquisition_table(pd.DataFrame(rows), threshold=0.9, reference=ref_kind).set_index("eval_lang")
    for lang, (step, stable, drop) in expect.items():
        assert acq.loc[lang, "acq_step"] == step, lang
        assert (pd.isna(acq.loc[lang, "stable_step"]) and stable is None) or acq.loc[lang, "stable_step"] == stable
        assert acq.loc[lang, "max_drop"] == pytest.approx(drop)
        assert acq.loc[lang, "non_monotone"] == (drop > 0.02)
