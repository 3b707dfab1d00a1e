"""Analysis of the tidy results table: curves, acquisition steps, best vs final, layers, transfer.

Owns every number the report shows (method.md sections 4 and 5). Pure pandas/numpy/scipy on the
table of `results.py` (columns `results.COLUMNS`); no JAX, no plotting.

Conventions:
- A *curve* is one (task, train_lang, eval_lang, layer, metric) over `step` (`CURVE_KEYS`).
- Baselines: majority-label rows (`extra` has `"baseline": "majority"`, or `step < 0`) are split off
  by `split_baselines` and shown as horizontal lines; the random-init model is `step = 0` and stays
  on every curve as its floor (and can be the acquisition step if a skill is there at init).
- Direction: metrics in `LOWER_IS_BETTER` (BPC, AER, losses) are better when lower; all others when
  higher. Every function takes `lower_is_better=` to override the set.
- Settings: `in_language` (train_lang == eval_lang), `unsupervised` (tasks in `UNSUPERVISED_TASKS`
  or train_lang == "": BPC, alignment) and `cross_lingual` (a probe trained on one language and
  evaluated zero-shot on another).

Limits: intervals resample probe seeds and, for accuracy (`PROPORTION_METRICS`), add a parametric
example-level (binomial) term; other metrics get the seed level only. Rows carry no per-example
correctness yet; once they do (e.g. a per-example correctness vector in `extra`), `curves` should
resample examples within each seed instead (a nonparametric two-level bootstrap). With 5 seeds a
percentile bootstrap is coarse (means of 5-point resamples) and under-covers; read the intervals as
probe-seed (plus, for accuracy, test-set) variability, not as a test.

Tables read back from CSV (`pd.read_csv`) have NaN where a string key was "" (BPC's train_lang); every
function below that takes a table reads such NaN as "" (`STRING_KEYS`), so a CSV round trip gives the
same results as the in-memory rows.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

CURVE_KEYS = ("task", "train_lang", "eval_lang", "layer", "metric")
STRING_KEYS = ("task", "train_lang", "eval_lang", "metric")
"""String key columns; NaN in them (a CSV round trip of "") is read as ""."""
LOWER_IS_BETTER = frozenset({"bpc", "aer", "loss", "nll", "perplexity", "ppl", "error"})
UNSUPERVISED_TASKS = frozenset({"bpc", "align"})
MAIN_METRICS = ("accuracy", "f1", "bpc", "aer", "macro_f1")
"""Preference order for the one metric per task the report plots (others stay in the CSVs)."""


class AnalysisError(ValueError):
    """Input that the analysis cannot use (names the column, curve or key)."""


def is_lower_better(metric: str, lower_is_better: Iterable[str] | None = None) -> bool:
    """Whether smaller values of `metric` are better (`LOWER_IS_BETTER` unless overridden)."""
    return metric.lower() in (LOWER_IS_BETTER if lower_is_better is None else set(lower_is_better))


def setting_of(task: str, train_lang: str, eval_lang: str) -> str:
    """"unsupervised", "in_language" or "cross_lingual" (see the module docstring)."""
    if task in UNSUPERVISED_TASKS or train_lang == "":
        return "unsupervised"
    return "in_language" if train_lang == eval_lang else "cross_lingual"


def main_metric(metrics: Iterable[str]) -> str:
    """The metric to plot for a task: the first of `MAIN_METRICS` present, else the first by name."""
    metrics = sorted(set(metrics))
    if not metrics:
        raise AnalysisError("no metrics")
    return next((m for m in MAIN_METRICS if m in metrics), metrics[0])


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AnalysisError(f"{what}: missing columns {missing} (have {list(df.columns)})")


def _fill_keys(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with NaN in its `STRING_KEYS` columns replaced by "" (how `pd.read_csv` reads "")."""
    cols = [c for c in STRING_KEYS if c in df.columns and df[c].isna().any()]
    return df.fillna({c: "" for c in cols}) if cols else df


# --- baselines -------------------------------------------------------------------------------------
def split_baselines(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the table into curve rows and majority-baseline rows.

    Returns:
        (curve_rows, majority_rows). Majority rows: `extra` JSON has `"baseline": "majority"`, or
        `step < 0` (the sweep writes them with `checkpoint="majority", step=-1`). Step-0 rows (random
        init) stay in curve_rows.
    """
    _require(df, ("step", "extra"), "split_baselines")
    df = _fill_keys(df)
    extra = df["extra"].astype(str)
    cand = extra.str.contains('"baseline"', regex=False)
    is_major = pd.Series(False, index=df.index)
    for i, s in extra[cand].items():
        try:
            is_major[i] = json.loads(s).get("baseline") == "majority"
        except ValueError:
            raise AnalysisError(f"row {i}: 'extra' is not JSON: {s[:80]!r}") from None
    is_major |= df["step"] < 0
    return df[~is_major], df[is_major]


def majority_baselines(df: pd.DataFrame) -> pd.DataFrame:
    """Majority-label baseline per (task, train_lang, eval_lang, metric): column `value` (mean)."""
    _, major = split_baselines(df)
    keys = ["task", "train_lang", "eval_lang", "metric"]
    if major.empty:
        return pd.DataFrame(columns=keys + ["value"])
    return major.groupby(keys, as_index=False, sort=True)["value"].mean()


def duplicate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows measuring the same thing twice: same step, `CURVE_KEYS`, seed and baseline status.

    `curves` would average them as if they were extra seeds; the report warns when any exist (e.g.
    two runs with different configs written into one results directory).
    """
    keys = ["step", "seed", "extra"] + list(CURVE_KEYS)
    _require(df, keys, "duplicate_rows")
    df = _fill_keys(df)
    return df[df.duplicated(keys, keep=False)]


# --- curves ----------------------------------------------------------------------------------------
PROPORTION_METRICS = ("accuracy",)
"""Metrics that are a mean of per-example 0/1 outcomes over `n` test examples."""


def curves(df: pd.DataFrame, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
           examples: bool = True) -> pd.DataFrame:
    """Mean over seeds per curve point, with a percentile-bootstrap interval over seeds and examples.

    Two-level bootstrap: each replicate resamples the seeds and, for `PROPORTION_METRICS` with
    `n > 0`, adds the effect of resampling the `n` test examples. Rows store no per-example outcomes,
    so that level is parametric: the mean accuracy m of n examples moves by N(0, m(1-m)/n) under an
    example bootstrap, and the same draw is shared by every seed of a replicate (all seeds are scored
    on the same examples). Other metrics (F1, AER, BPC) get the seed level only.

    Args:
        df: results table (baseline rows are dropped here; see `split_baselines`).
        n_boot: bootstrap resamples.
        ci: interval mass (0.95 = 2.5th..97.5th percentiles).
        seed: seed of the resampling (same seed, same intervals).
        examples: include the example level (False: seeds only).

    Returns:
        One row per (`CURVE_KEYS`, step): `mean, lo, hi, std, n_seeds, n_nan, n` (n = examples
        of the evaluation, max over seeds). NaN values are excluded and counted in `n_nan`. One
        seed gives lo = hi = mean, except with the example level (then about mean -+ z*sqrt(m(1-m)/n),
        e.g. accuracy 0.8 on n = 100: 0.72..0.88). The same resampling weights are used for every
        point that has the same number of seeds (each interval is a valid marginal bootstrap).
    """
    _require(df, CURVE_KEYS + ("step", "seed", "value", "n"), "curves")
    rows, _ = split_baselines(df)
    keys = list(CURVE_KEYS) + ["step"]
    cols = keys + ["mean", "lo", "hi", "std", "n_seeds", "n_nan", "n"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.sort_values(keys + ["seed"], kind="mergesort")
    grouped = rows.groupby(keys, sort=True)
    out = grouped.agg(n=("n", "max")).reset_index()  # same order as ngroup()
    gid = grouped.ngroup().to_numpy()
    order = np.argsort(gid, kind="stable")
    gid = gid[order]
    v = rows["value"].to_numpy(dtype=float)[order]
    G = len(out)
    fin = np.isfinite(v)
    out["n_nan"] = np.bincount(gid[~fin], minlength=G)
    gf, vf = gid[fin], v[fin]
    cnt = np.bincount(gf, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(gf, weights=vf, minlength=G) / cnt
        sq = np.bincount(gf, weights=(vf - mean[gf]) ** 2, minlength=G)
        std = np.where(cnt > 1, np.sqrt(sq / np.maximum(cnt - 1, 1)), 0.0)
    out["mean"], out["std"], out["n_seeds"] = mean, std, cnt
    lo = np.full(G, np.nan)
    hi = np.full(G, np.nan)
    starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    rng = np.random.default_rng(seed)
    alpha = (1.0 - ci) / 2.0
    n_ex = out["n"].to_numpy(dtype=float)
    prop = out["metric"].isin(PROPORTION_METRICS).to_numpy() & (n_ex > 0) if examples else np.zeros(G, bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        ex_sd = np.where(prop, np.sqrt(np.clip(mean * (1 - mean), 0, None) / np.maximum(n_ex, 1)), 0.0)
    z = rng.standard_normal(n_boot)  # example-level draws, shared by all points (common random numbers)
    for k in np.unique(cnt[cnt > 0]):
        gs = np.flatnonzero(cnt == k)
        mat = vf[starts[gs][:, None] + np.arange(k)]  # [G_k, k] the seeds of each point
        if k == 1 and not prop[gs].any():
            lo[gs] = hi[gs] = mat[:, 0]
            continue
        # A resample of k seeds is a multinomial count vector c; its mean is mat @ c / k.
        w = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).T / k  # [k, B]
        for s in range(0, len(gs), 4096):
            reps = mat[s:s + 4096] @ w + ex_sd[gs[s:s + 4096], None] * z[None, :]
            q = np.quantile(reps, [alpha, 1.0 - alpha], axis=1)
            lo[gs[s:s + 4096]], hi[gs[s:s + 4096]] = q[0], q[1]
    out["lo"], out["hi"] = lo, hi
    return out[cols].reset_index(drop=True)


def plot_steps(steps: Sequence[int] | np.ndarray) -> tuple[np.ndarray, float | None]:
    """x positions for a log-step axis: step 0 (random init) is drawn at half the first positive step.

    Args:
        steps: int `[S]`.

    Returns:
        (x `[S]` float, x0) where x0 is the position used for step 0 (None if no step 0). Label that
        tick "0 (init)" so the reader knows the axis is broken there.
    """
    steps = np.asarray(steps, dtype=float)
    pos = steps[steps > 0]
    x0 = None
    if (steps == 0).any():
        x0 = float(pos.min()) / 2.0 if pos.size else 1.0
    return np.where(steps > 0, steps, x0 if x0 is not None else np.nan), x0


# --- acquisition -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Acquisition:
    """When a curve reaches `threshold` of its reference.

    Attributes:
        step: first step whose value reaches the target (None if the curve is all NaN).
        stable_step: first step from which the curve stays at or beyond the target to the end.
        target: the value to reach (threshold x reference, or reference / threshold if lower is better).
        reference_value: best or final value.
        best_step, best_value, final_step, final_value: of the curve.
        max_drop: largest fall below the running best after `step`, as a fraction of |reference|.
        non_monotone: max_drop > tolerance (the skill is lost again after being acquired).
    """

    step: int | None
    stable_step: int | None
    target: float
    reference_value: float
    best_step: int | None
    best_value: float
    final_step: int | None
    final_value: float
    max_drop: float
    non_monotone: bool


def _acquire(steps: np.ndarray, vals: np.ndarray, hib: np.ndarray, *, threshold: float, reference: str,
             tolerance: float) -> dict[str, np.ndarray]:
    """Vectorised acquisition over C curves on a shared step grid.

    Args:
        steps: int `[S]`, sorted, unique.
        vals: float `[C, S]`; NaN = missing or failed point (ignored).
        hib: bool `[C]`, higher is better.

    Returns:
        Dict of `[C]` arrays: indices into `steps` (-1 = none) `ia, istab, ib, il`, and float
        `target, ref, best, final, max_drop`.
    """
    C, S = vals.shape
    rows, idx = np.arange(C), np.arange(S)
    fin = np.isfinite(vals)
    has = fin.any(axis=1)
    sign = np.where(hib, 1.0, -1.0)
    v = np.where(fin, sign[:, None] * vals, -np.inf)  # higher is better from here on
    ib = np.argmax(v, axis=1)  # first best (ties -> earliest)
    il = S - 1 - np.argmax(fin[:, ::-1], axis=1)  # last finite point
    best, final = vals[rows, ib], vals[rows, il]
    ref = best if reference == "best" else final
    target = np.where(hib, threshold * ref, ref / threshold)
    slack = 1e-12 * np.maximum(1.0, np.abs(target))  # float noise when target == ref * 1.0
    with np.errstate(invalid="ignore"):
        reached = fin & (v >= (sign * target - slack)[:, None])
    ok = has & reached.any(axis=1)
    ia = np.where(ok, np.argmax(reached, axis=1), -1)
    miss = fin & ~reached
    any_miss = miss.any(axis=1)
    last_miss = np.where(any_miss, S - 1 - np.argmax(miss[:, ::-1], axis=1), -1)
    after = fin & (idx[None, :] > last_miss[:, None])
    istab = np.where(ok & after.any(axis=1), np.argmax(after, axis=1), -1)
    # largest fall below the running best after acquisition
    w = np.where(fin & (idx[None, :] >= ia[:, None]) & ok[:, None], v, -np.inf)
    run = np.maximum.accumulate(w, axis=1)
    with np.errstate(invalid="ignore"):
        dd = np.where(np.isfinite(w), run - w, 0.0)
    drop = dd.max(axis=1) if S else np.zeros(C)
    aref = np.abs(ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        max_drop = np.where(aref > 0, drop / np.where(aref > 0, aref, 1.0), drop)
    nan = np.full(C, np.nan)
    return dict(ia=ia, istab=istab, ib=np.where(has, ib, -1), il=np.where(has, il, -1),
                target=np.where(has, target, nan), ref=np.where(has, ref, nan), best=np.where(has, best, nan),
                final=np.where(has, final, nan), max_drop=np.where(ok, max_drop, nan),
                non_monotone=ok & (max_drop > tolerance))


def _check_args(threshold: float, reference: str) -> None:
    if reference not in ("best", "final"):
        raise AnalysisError(f"reference must be 'best' or 'final', got {reference!r}")
    if not 0 < threshold <= 1:
        raise AnalysisError(f"threshold must be in (0, 1], got {threshold}")


def acquisition_step(steps, values, *, threshold: float = 0.98, reference: str = "best",
                     higher_is_better: bool = True, tolerance: float = 0.02) -> Acquisition:
    """First step at which a curve reaches `threshold` of its best or final value.

    Higher is better: target = threshold * reference; acquired at the first step with value >=
    target. Lower is better (BPC, AER): target = reference / threshold (e.g. best BPC 1.00 ->
    1.0204), acquired at the first step with value <= target. Both say "within a factor 1/threshold
    of the reference". NaN points are ignored (so "final" is the last finite value). Metric values
    are assumed non-negative (accuracy, F1, BPC, AER).

    Args:
        steps: int `[S]` (any order; sorted here; step 0 = random init counts).
        values: float `[S]`.
        threshold: fraction of the reference, in (0, 1].
        reference: "best" (best over the curve) or "final" (last step).
        higher_is_better: direction of the metric.
        tolerance: fraction of |reference| the curve may fall back below its running best after
            acquisition before it is flagged `non_monotone`.

    Returns:
        Acquisition.
    """
    _check_args(threshold, reference)
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    if steps.shape != values.shape or steps.ndim != 1:
        raise AnalysisError(f"steps {steps.shape} and values {values.shape} must be equal 1-d shapes")
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    if len(np.unique(steps)) != len(steps):
        raise AnalysisError(f"duplicate steps in a curve: {steps.tolist()}")
    r = _acquire(steps, values[None, :], np.array([higher_is_better]), threshold=threshold,
                 reference=reference, tolerance=tolerance)
    st = lambda k: int(steps[r[k][0]]) if r[k][0] >= 0 else None  # noqa: E731
    return Acquisition(step=st("ia"), stable_step=st("istab"), target=float(r["target"][0]),
                       reference_value=float(r["ref"][0]), best_step=st("ib"), best_value=float(r["best"][0]),
                       final_step=st("il"), final_value=float(r["final"][0]), max_drop=float(r["max_drop"][0]),
                       non_monotone=bool(r["non_monotone"][0]))


def acquisition_table(curv: pd.DataFrame, *, threshold: float = 0.98, reference: str = "best",
                      tolerance: float = 0.02, lower_is_better: Iterable[str] | None = None) -> pd.DataFrame:
    """`acquisition_step` for every curve of `curves()` output (uses the seed mean), vectorised.

    Returns:
        One row per curve: `CURVE_KEYS`, `setting`, `higher_is_better`, and the `Acquisition` fields
        (`acq_step`, `stable_step`, `target`, `reference_value`, `best_step`, `best_value`,
        `final_step`, `final_value`, `max_drop`, `non_monotone`); steps are nullable Int64.
    """
    _require(curv, CURVE_KEYS + ("step", "mean"), "acquisition_table")
    _check_args(threshold, reference)
    curv = _fill_keys(curv)
    cols = list(CURVE_KEYS) + ["setting", "higher_is_better", "acq_step", "stable_step", "target",
                               "reference_value", "best_step", "best_value", "final_step", "final_value",
                               "max_drop", "non_monotone"]
    if curv.empty:
        return pd.DataFrame(columns=cols)
    grouped = curv.groupby(list(CURVE_KEYS), sort=True)
    cid = grouped.ngroup().to_numpy()
    out = grouped.size().reset_index()[list(CURVE_KEYS)]
    steps = np.unique(curv["step"].to_numpy(dtype=np.int64))
    sidx = np.searchsorted(steps, curv["step"].to_numpy(dtype=np.int64))
    flat = cid * len(steps) + sidx
    if len(np.unique(flat)) != len(flat):
        raise AnalysisError("acquisition_table: several rows for one (curve, step); pass curves() output")
    vals = np.full((len(out), len(steps)), np.nan)
    vals[cid, sidx] = curv["mean"].to_numpy(dtype=float)
    lib = {m: is_lower_better(m, lower_is_better) for m in out["metric"].unique()}
    hib = ~out["metric"].map(lib).to_numpy(dtype=bool)
    r = _acquire(steps, vals, hib, threshold=threshold, reference=reference, tolerance=tolerance)
    out["setting"] = [setting_of(*k) for k in zip(out["task"], out["train_lang"], out["eval_lang"])]
    out["higher_is_better"] = hib
    for name, k in (("acq_step", "ia"), ("stable_step", "istab"), ("best_step", "ib"), ("final_step", "il")):
        out[name] = pd.array(np.where(r[k] >= 0, steps[np.maximum(r[k], 0)], 0), dtype="Int64")
        out.loc[r[k] < 0, name] = pd.NA
    out["target"], out["reference_value"] = r["target"], r["ref"]
    out["best_value"], out["final_value"] = r["best"], r["final"]
    out["max_drop"], out["non_monotone"] = r["max_drop"], r["non_monotone"]
    return out[cols]


def lag_table(acq: pd.DataFrame) -> pd.DataFrame:
    """Cross-lingual acquisition vs in-language acquisition of the target language.

    For each cross-lingual curve (task, train_lang=s, eval_lang=t, layer, metric), the in-language
    curve is (task, t, t, layer, metric). `lag = acq_step - in_lang_step` (steps), `ratio =
    acq_step / in_lang_step` (NaN when the in-language step is 0 or missing).

    Returns:
        Rows of the cross-lingual curves with `in_lang_step`, `lag`, `ratio`.
    """
    _require(acq, CURVE_KEYS + ("setting", "acq_step"), "lag_table")
    acq = _fill_keys(acq)
    cross = acq[acq["setting"] == "cross_lingual"]
    inl = acq[acq["setting"] == "in_language"][["task", "eval_lang", "layer", "metric", "acq_step"]]
    inl = inl.rename(columns={"acq_step": "in_lang_step"})
    out = cross.merge(inl, on=["task", "eval_lang", "layer", "metric"], how="left")
    out["lag"] = (out["acq_step"] - out["in_lang_step"]).astype("Int64")
    a = out["acq_step"].astype("Float64")
    b = out["in_lang_step"].astype("Float64")
    out["ratio"] = (a / b.where(b > 0)).astype(float)
    return out.reset_index(drop=True)


# --- best vs final, layers -------------------------------------------------------------------------
def best_vs_final(curv: pd.DataFrame, *, lower_is_better: Iterable[str] | None = None,
                  acq: pd.DataFrame | None = None) -> pd.DataFrame:
    """Best checkpoint vs final checkpoint per curve.

    Args:
        curv: `curves()` output.
        lower_is_better: metric names overriding `LOWER_IS_BETTER`.
        acq: an `acquisition_table` of `curv` already computed (any threshold/reference), to reuse.

    Returns:
        `CURVE_KEYS`, `best_step, best_value, final_step, final_value, drop, rel_drop, final_is_best`.
        `drop` >= 0 is how much worse the final checkpoint is than the best one, in the metric's
        units (best - final when higher is better; final - best when lower is better);
        `rel_drop` = drop / |best|. `final_is_best`: the final value is as good as the best (drop <= 0;
        true on a plateau even though `best_step` is the earliest best).
    """
    if acq is None:
        acq = acquisition_table(curv, lower_is_better=lower_is_better)
    acq = _fill_keys(acq)
    out = acq[list(CURVE_KEYS) + ["setting", "best_step", "best_value", "final_step", "final_value"]].copy()
    sign = np.where(acq["higher_is_better"], 1.0, -1.0)
    out["drop"] = sign * (out["best_value"] - out["final_value"])
    out["rel_drop"] = out["drop"] / out["best_value"].abs().replace(0, np.nan)
    out["final_is_best"] = out["drop"] <= 0
    return out


def layer_step_matrix(curv: pd.DataFrame, *, task: str, metric: str, train_lang: str | None = None,
                      eval_lang: str | None = None, value: str = "mean") -> pd.DataFrame:
    """Layer x step matrix of one task and metric.

    Args:
        curv: `curves()` output.
        task, metric: which curves.
        train_lang, eval_lang: which pair; None = average over the matching in-language (or
            unsupervised) curves, i.e. over languages.
        value: column to tabulate.

    Returns:
        DataFrame indexed by layer (rows) with one column per step.
    """
    curv = _fill_keys(curv)
    sel = curv[(curv["task"] == task) & (curv["metric"] == metric)]
    if train_lang is not None:
        sel = sel[sel["train_lang"] == train_lang]
    if eval_lang is not None:
        sel = sel[sel["eval_lang"] == eval_lang]
    if train_lang is None and eval_lang is None:
        setting = [setting_of(*k) for k in zip(sel["task"], sel["train_lang"], sel["eval_lang"])]
        sel = sel[np.isin(setting, ["in_language", "unsupervised"])]
    if sel.empty:
        raise AnalysisError(f"no curves for task={task!r} metric={metric!r} train_lang={train_lang!r} "
                            f"eval_lang={eval_lang!r}")
    return sel.pivot_table(index="layer", columns="step", values=value, aggfunc="mean").sort_index()


def best_layer_per_step(curv: pd.DataFrame, *, lower_is_better: Iterable[str] | None = None) -> pd.DataFrame:
    """The best layer at each step of every (task, train_lang, eval_lang, metric).

    Returns:
        `task, train_lang, eval_lang, metric, step, best_layer, best_value, last_layer, last_value`
        (ties go to the lower layer).
    """
    _require(curv, CURVE_KEYS + ("step", "mean"), "best_layer_per_step")
    curv = _fill_keys(curv)
    keys = ["task", "train_lang", "eval_lang", "metric", "step"]
    d = curv[np.isfinite(curv["mean"].to_numpy(dtype=float))].copy()
    lib = np.array([is_lower_better(m, lower_is_better) for m in d["metric"]], dtype=bool)
    d["_score"] = np.where(lib, -d["mean"], d["mean"])
    d = d.sort_values(keys + ["layer"], kind="mergesort")
    best = d.loc[d.groupby(keys, sort=True)["_score"].idxmax(), keys + ["layer", "mean"]]
    best = best.rename(columns={"layer": "best_layer", "mean": "best_value"})
    last = d.loc[d.groupby(keys, sort=True)["layer"].idxmax(), keys + ["layer", "mean"]]
    last = last.rename(columns={"layer": "last_layer", "mean": "last_value"})
    return best.merge(last, on=keys).reset_index(drop=True)


# --- transfer --------------------------------------------------------------------------------------
def nearest_step(available: Iterable[int], step: int) -> int:
    """The available step closest to `step` (ties: the earlier one)."""
    av = np.array(sorted(set(int(s) for s in available)))
    if av.size == 0:
        raise AnalysisError("no steps available")
    return int(av[np.argmin(np.abs(av - step))])


def transfer_matrix(curv: pd.DataFrame, *, task: str, step: int, layer: int, metric: str,
                    normalize: bool = False, lower_is_better: Iterable[str] | None = None) -> pd.DataFrame:
    """train_lang x eval_lang matrix of one task at one step and layer.

    Args:
        normalize: divide each column by the target's in-language score at that step (eval_lang
            trained on itself), so 1.0 = as good as in-language. For lower-is-better metrics the
            ratio is inverted (in-language / value) to keep 1.0 = as good and < 1 = worse.

    Returns:
        DataFrame index train_lang, columns eval_lang (NaN where a pair is missing).
    """
    curv = _fill_keys(curv)
    sel = curv[(curv["task"] == task) & (curv["step"] == step) & (curv["layer"] == layer)
               & (curv["metric"] == metric)]
    if sel.empty:
        raise AnalysisError(f"no rows for task={task!r} step={step} layer={layer} metric={metric!r}")
    m = sel.pivot_table(index="train_lang", columns="eval_lang", values="mean", aggfunc="mean")
    if not normalize:
        return m
    diag = pd.Series({t: m.at[t, t] if t in m.index else np.nan for t in m.columns})
    if is_lower_better(metric, lower_is_better):
        return (1.0 / m).mul(diag, axis=1)
    return m.div(diag, axis=1)


def pair_acquisition_matrix(acq: pd.DataFrame, *, task: str, layer: int, metric: str,
                            column: str = "acq_step") -> pd.DataFrame:
    """train_lang x eval_lang matrix of acquisition steps (or another `acquisition_table` column)."""
    acq = _fill_keys(acq)
    sel = acq[(acq["task"] == task) & (acq["layer"] == layer) & (acq["metric"] == metric)]
    if sel.empty:
        raise AnalysisError(f"no acquisition rows for task={task!r} layer={layer} metric={metric!r}")
    return sel.pivot(index="train_lang", columns="eval_lang", values=column).astype(float)


# --- correlation with per-language properties ------------------------------------------------------
def _lang_series(lang_table, column: str | None) -> pd.Series:
    if isinstance(lang_table, Mapping):
        return pd.Series(dict(lang_table), dtype=float)
    if isinstance(lang_table, pd.Series):
        return lang_table.astype(float)
    if isinstance(lang_table, pd.DataFrame):
        t = lang_table.set_index("lang") if "lang" in lang_table.columns else lang_table
        if column is None:
            num = [c for c in t.columns if pd.api.types.is_numeric_dtype(t[c])]
            if len(num) != 1:
                raise AnalysisError(f"lang_table has numeric columns {num}; pass column=")
            column = num[0]
        if column not in t.columns:
            raise AnalysisError(f"lang_table has no column {column!r} (have {list(t.columns)})")
        return t[column].astype(float)
    raise AnalysisError(f"lang_table must be a dict, Series or DataFrame, got {type(lang_table).__name__}")


def spearman(acq: pd.DataFrame, lang_table, *, column: str | None = None, lang_key: str = "eval_lang",
             value: str = "acq_step") -> dict:
    """Spearman correlation of a per-curve value with a per-language property.

    Args:
        acq: rows to correlate (e.g. `acquisition_table` filtered to one task, layer, metric).
        lang_table: {lang: x}, a Series indexed by language, or a DataFrame with a `lang` column (or
            language index) and `column`.
        lang_key: which language of each row to look up ("eval_lang" or "train_lang").
        value: column of `acq` to correlate.

    Returns:
        {"rho", "p", "n"} (NaN rho/p when fewer than 3 pairs or a constant input).
    """
    x = _lang_series(lang_table, column)
    d = pd.DataFrame({"y": acq[value].astype(float).to_numpy(),
                      "x": acq[lang_key].map(x).astype(float).to_numpy()}).dropna()
    n = len(d)
    if n < 3 or d["x"].nunique() < 2 or d["y"].nunique() < 2:
        return {"rho": float("nan"), "p": float("nan"), "n": n}
    r = stats.spearmanr(d["x"], d["y"])
    return {"rho": float(r.statistic), "p": float(r.pvalue), "n": n}


def spearman_table(acq: pd.DataFrame, lang_table, *, columns: Sequence[str] | None = None,
                   by: Sequence[str] = ("task", "setting", "layer", "metric")) -> pd.DataFrame:
    """`spearman` of acquisition step with each lang_table column, per group of `by`.

    In-language and unsupervised rows use the eval language; cross-lingual rows are correlated with
    both the target (`lang_key=eval_lang`) and the source (`train_lang`).

    Returns:
        `by..., property, lang_key, rho, p, n`.
    """
    if isinstance(lang_table, (Mapping, pd.Series)):
        props = {"value": _lang_series(lang_table, None)}
    else:
        t = lang_table.set_index("lang") if "lang" in lang_table.columns else lang_table
        cols = columns or [c for c in t.columns if pd.api.types.is_numeric_dtype(t[c])]
        props = {c: _lang_series(t, c) for c in cols}
    recs = []
    for key, g in acq.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        keys = ["eval_lang", "train_lang"] if "cross_lingual" in set(g.get("setting", [])) else ["eval_lang"]
        for name, ser in props.items():
            for lk in keys:
                r = spearman(g, ser, lang_key=lk)
                recs.append(dict(zip(by, key), property=name, lang_key=lk, **r))
    return pd.DataFrame(recs, columns=list(by) + ["property", "lang_key", "rho", "p", "n"])
