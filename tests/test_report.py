"""Report: renders from a small synthetic results dir; files, PNGs, CSVs and key numbers are there."""

import re
import time

import numpy as np
import pandas as pd
import pytest

from xlmr_dynamics import report as RP
from xlmr_dynamics.results import ResultsStore

STEPS = [0, 1000, 2000, 5000, 10000, 20000, 50000, 100000]
LANGS = ["en", "de", "fr"]
PNG = b"\x89PNG\r\n\x1a\n"


def _write_results(d):
    rng = np.random.default_rng(0)
    # en in-language POS reaches 98 % of its best (0.95) first at 5000 (0.94 > 0.931 at 5000, 0.90 before)
    inl = {"en": [0.3, 0.6, 0.90, 0.94, 0.95, 0.95, 0.95, 0.95]}
    with ResultsStore(d) as st:
        for s_i, step in enumerate(STEPS):
            for tl in LANGS:
                rows = []
                for el in LANGS:
                    for layer in range(4):
                        for seed in range(3):
                            if tl == el == "en":
                                v = inl["en"][s_i] * (1.0 if layer == 3 else 0.9)
                            elif tl == el:
                                v = [0.5, 0.8, 0.83, 0.86, 0.86, 0.86, 0.86, 0.86][s_i]  # acq 5000
                            else:  # cross-lingual rises later: en->de reaches 0.98*0.7 at 50000
                                v = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.69, 0.7][s_i]
                            rows.append(dict(run_id="run1", checkpoint=f"ckpt_{step}", step=step, task="pos",
                                             train_lang=tl, eval_lang=el, layer=layer, seed=seed,
                                             metric="accuracy", value=v + rng.normal(0, 1e-5), n=200,
                                             config_hash="cfg123abc", package_version="0.1.0"))
                st.append(f"step={step}|pos|{tl}", rows)
            st.append(f"step={step}|bpc", [dict(run_id="run1", checkpoint=f"ckpt_{step}", step=step, task="bpc",
                                                train_lang="", eval_lang=el, layer=3, seed=0, metric="bpc",
                                                value=[9, 5, 3, 2.5, 2.2, 2.1, 2.04, 2.0][s_i] * (1 + i / 10),
                                                n=1000, config_hash="cfg123abc")
                                           for i, el in enumerate(LANGS)])
        st.append("majority|pos", [dict(run_id="run1", checkpoint="majority", step=-1, task="pos", train_lang=tl,
                                         eval_lang=el, layer=-1, seed=0, metric="accuracy", value=0.17, n=200,
                                         extra={"baseline": "majority", "label": 7})
                                    for tl in LANGS for el in LANGS])
        st.record_failure("ckpt_3000", "load", "unexpected EOF in checkpoint_3000.pt", step=3000)


def test_report_renders_with_key_numbers(tmp_path):
    res = tmp_path / "res"
    _write_results(res)
    t0 = time.perf_counter()
    index = RP.make_report(res, tmp_path / "rep", steps_for_transfer=[5000, 90000],
                           lang_table={"en": 300.0, "de": 66.0, "fr": 57.0}, n_boot=200)
    elapsed = time.perf_counter() - t0
    assert index == tmp_path / "rep" / "index.html"
    doc = index.read_text()
    out = index.parent
    # every linked PNG and CSV exists; PNGs are real, non-trivial images with their data CSV
    pngs = re.findall(r'src="([^"]+\.png)"', doc)
    assert {"curves_pos.png", "curves_bpc.png", "cross_pos.png", "layers_heatmaps.png", "best_layer.png",
            "transfer_pos.png", "transfer_acq_pos.png"} <= set(pngs)
    for p in pngs:
        data = (out / p).read_bytes()
        assert data.startswith(PNG) and len(data) > 2000, p
        assert (out / p.replace(".png", ".csv")).exists()
    for link in re.findall(r'href="([^"#]+)"', doc):
        assert (out / link).exists(), link
    assert not list(out.glob(".tmp-*"))
    # provenance header
    assert "cfg123abc" in doc and "0.1.0" in doc and "897 (9 majority" in doc  # 8*3*3*4*3 + 8*3 + 9 rows
    # known acquisition steps: en in-language at 5000, en->de at 50000 (lag 45000, ratio 10), bpc at 50000
    acq = pd.read_csv(out / "acquisition_in_language.csv")
    en = acq[(acq.task == "pos") & (acq.eval_lang == "en")].iloc[0]
    assert en.acq_step == 5000 and en.layer == 3
    assert (acq[acq.task == "bpc"].acq_step == 50000).all()
    cross = pd.read_csv(out / "acquisition_cross_lingual.csv")
    ende = cross[(cross.train_lang == "en") & (cross.eval_lang == "de")].iloc[0]
    assert ende.acq_step == 50000 and ende.lag == 45000 and ende.ratio == pytest.approx(10)
    assert "<td>45000</td>" in doc and "<td>5000</td>" in doc
    # best vs final and layers
    bf = pd.read_csv(out / "best_vs_final.csv")
    assert set(bf.task) == {"pos", "bpc"} and (bf.setting != "cross_lingual").all()
    best = pd.read_csv(out / "best_layer.csv")
    assert (best[best.task == "pos"].best_layer == 3).all()
    # transfer matrices at the nearest available steps (90000 -> 100000), normalised diagonal = 1
    tr = pd.read_csv(out / "transfer_pos.csv")
    assert sorted(tr.step.unique()) == [5000, 100000]
    diag = tr[(tr.kind == "normalised") & (tr.train_lang == tr.eval_lang)]
    assert np.allclose(diag.value, 1.0)
    # Spearman table, majority baseline, failures
    sp = pd.read_csv(out / "spearman.csv")
    assert {"rho", "p", "n"} <= set(sp.columns) and len(sp)
    assert pd.read_csv(out / "majority_baselines.csv").value.eq(0.17).all()
    assert "unexpected EOF in checkpoint_3000.pt" in doc
    # log-step axis note: step 0 is drawn at a visible position
    assert "init" in doc
    # the curve note describes both interval levels (seeds, and binomial examples for accuracy)
    assert "interval over seeds" not in doc and "test-example resampling (binomial) for accuracy" in doc
    assert elapsed < 30, elapsed


def test_report_nan_rows_empty_dir_and_bad_args(tmp_path):
    res = tmp_path / "res"
    with ResultsStore(res) as st:
        st.append("u", [dict(run_id="r", checkpoint="c5", step=5, task="pos", train_lang="en", eval_lang="en",
                             layer=0, seed=0, metric="accuracy", value=float("nan"), n=1)])
    doc = RP.make_report(res).read_text()  # default out dir: <res>/report
    assert (res / "report" / "index.html").exists()
    assert "NaN / infinite" in doc and "c5" in doc
    empty = tmp_path / "empty"
    with ResultsStore(empty):
        pass
    assert "No result rows yet" in RP.make_report(empty).read_text()
    with pytest.raises(RP.ReportError, match="reference"):
        RP.make_report(res, reference="mean")
    with pytest.raises(RP.ReportError, match="lang_table file"):
        RP.make_report(res, lang_table=tmp_path / "missing.csv")


def test_report_missing_results_dir_raises_and_writes_nothing(tmp_path):
    missing = tmp_path / "resluts"  # mistyped
    with pytest.raises(RP.ReportError, match="resluts"):
        RP.make_report(missing)
    assert not missing.exists()
    a_file = tmp_path / "results.csv"
    a_file.write_text("x\n")
    with pytest.raises(RP.ReportError, match="not a directory"):
        RP.make_report(a_file, tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


def test_heat_values_keep_nan_masked():
    data = np.array([[0.0, 1000.0], [np.nan, 100000.0]])  # 0 = acquired at init, NaN = never / missing
    shown = RP._heat_values(data, log=True)
    assert shown.mask.tolist() == [[False, False], [True, False]]
    assert shown[0, 0] == pytest.approx(np.log10(500.0))  # init drawn at half the first positive step
    assert shown[0, 1] == pytest.approx(3.0) and shown[1, 1] == pytest.approx(5.0)
    lin = RP._heat_values(np.array([[0.5, np.nan]]), log=False)
    assert lin.mask.tolist() == [[False, True]] and lin[0, 0] == 0.5


def test_report_warns_on_pooled_configs_and_duplicates(tmp_path):
    res = tmp_path / "res"
    row = dict(run_id="r", checkpoint="c5", step=5, task="pos", train_lang="en", eval_lang="en", layer=0, seed=0,
               metric="accuracy", value=0.5, n=1)
    with ResultsStore(res) as st:
        st.append("a", [dict(row, config_hash="aaa")])
        st.append("b", [dict(row, config_hash="bbb", value=0.7)])
    doc = RP.make_report(res).read_text()
    assert "2 different config_hash values" in doc and "2 rows measure the same" in doc
    assert len(pd.read_csv(res / "report" / "duplicate_rows.csv")) == 2
