"""HTML report of a results directory: curves, acquisition, best vs final, layers, transfer, failures.

Owns `make_report`. Reads only the results directory (`results.read_results`, `read_failures`), so a
report can be made on a laptop from a pod's results; no JAX. Numbers come from `analysis`; this module
only lays them out.

Output (`<out_dir>/`, default `<results_dir>/report/`): `index.html` (self-contained apart from the
PNGs and CSVs next to it, which it links), one PNG per figure (matplotlib Agg; small multiples so a
report over ~50k rows stays a few seconds) and, next to every PNG, the CSV of the numbers behind it
(`<name>.csv`), plus full tables as CSV. Every file is written atomically (temp + rename).

Choices shown in the report header: the main analysis uses the *last* layer of each task (the paper's
final-layer outputs) unless `layer=` is given, and one main metric per task (`analysis.main_metric`);
all layers and metrics are in the CSVs. Log-step axes draw step 0 (random init) at half the first
positive step, labelled "init". Majority baselines are dashed horizontal lines.
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullLocator  # noqa: E402

from xlmr_dynamics import analysis as A  # noqa: E402
from xlmr_dynamics.results import atomic_write_bytes, nan_rows, read_failures, read_results  # noqa: E402

_DPI = 80
_CSS = """body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:right}th{background:#f0f0f0}img{max-width:100%;border:1px solid #eee}h2{border-bottom:1px solid
#aaa;margin-top:2em}.note{color:#555;font-size:13px}.flag{color:#b00}details{margin:.5em 0}"""


class ReportError(ValueError):
    """Bad report arguments (names the argument or file)."""


# --- small helpers ---------------------------------------------------------------------------------
def _fmt_step(s: float) -> str:
    s = int(s)
    if s >= 1_000_000 and s % 100_000 == 0:
        return f"{s / 1e6:g}M"
    if s >= 1000 and s % 100 == 0:
        return f"{s / 1e3:g}k"
    return str(s)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "x"


class _Writer:
    """Writes figures/CSVs into out_dir atomically and collects the HTML body."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.parts: list[str] = []

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        a = f' id="{anchor}"' if anchor else ""
        self.parts.append(f"<h{level}{a}>{html.escape(text)}</h{level}>")

    def p(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{text}</p>")

    def csv(self, name: str, df: pd.DataFrame, *, index: bool = False) -> str:
        atomic_write_bytes(self.out_dir / name, df.to_csv(index=index).encode("utf-8"))
        return name

    def figure(self, name: str, fig, data: pd.DataFrame, caption: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_DPI)
        plt.close(fig)
        atomic_write_bytes(self.out_dir / f"{name}.png", buf.getvalue())
        self.csv(f"{name}.csv", data)
        self.parts.append(
            f'<figure><img src="{name}.png" alt="{html.escape(caption)}"><figcaption class="note">'
            f'{html.escape(caption)} (<a href="{name}.csv">data: {name}.csv</a>)</figcaption></figure>')

    def table(self, df: pd.DataFrame, *, csv_name: str | None = None, collapse_over: int = 60,
              summary: str = "") -> None:
        if csv_name:
            self.csv(csv_name, df)
            self.p(f'<a href="{csv_name}">{csv_name}</a> ({len(df)} rows)', "note")
        if df.empty:
            self.p("(none)", "note")
            return
        body = _html_table(df)
        if len(df) > collapse_over:
            body = f"<details><summary>{html.escape(summary or f'{len(df)} rows')}</summary>{body}</details>"
        self.parts.append(body)


def _html_table(df: pd.DataFrame) -> str:
    def fmt(v):
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, (bool, np.bool_)):
            return '<span class="flag">yes</span>' if v else ""
        if isinstance(v, (float, np.floating)):
            # steps (and their medians) print as integers; metric values with 4 significant digits
            return f"{int(v)}" if v == round(v) and abs(v) < 1e15 else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r) + "</tr>"
                   for r in df.itertuples(index=False, name=None))
    return f"<table><tr>{head}</tr>{rows}</table>"


def _grid(n: int, *, ncols: int = 6, w: float = 2.8, h: float = 2.1, sharex=True, sharey=False,
          right_in: float = 0.2, bottom_in: float = 0.45):
    """n small-multiple axes with fixed margins (tight_layout costs a draw pass per figure)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fw, fh = w * ncols + right_in, h * nrows + 0.5
    fig, axes = plt.subplots(nrows, ncols, figsize=(fw, fh), squeeze=False, sharex=sharex, sharey=sharey)
    fig.subplots_adjust(left=0.5 / fw, right=1 - right_in / fw, top=1 - 0.5 / fh, bottom=bottom_in / fh,
                        wspace=0.3, hspace=0.55)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


class _StepAxis:
    """Log-step x axis shared by all plots: step 0 drawn at half the first positive step ("init")."""

    def __init__(self, steps: Sequence[int]):
        steps = np.unique(np.asarray(steps, dtype=np.int64))
        pos = steps[steps > 0]
        self.log = pos.size > 0
        self.x0 = float(pos.min()) / 2.0 if pos.size else 0.0
        lo = pos.min() if pos.size else 1
        hi = pos.max() if pos.size else 1
        decades = [10.0 ** k for k in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
        if len(decades) < 2:  # short series: label the checkpoints themselves
            decades = [float(s) for s in pos[:: max(1, len(pos) // 6)]]
        self.ticks = ([self.x0] if (steps == 0).any() and self.log else []) + decades

    def x(self, steps) -> np.ndarray:
        s = np.asarray(steps, dtype=float)
        return np.where(s > 0, s, self.x0) if self.log else s

    def style(self, ax) -> None:
        if not self.log:
            return
        ax.set_xscale("log")
        labels = ["init" if t == self.x0 else _fmt_step(t) for t in self.ticks]
        ax.set_xticks(self.ticks, labels, fontsize=7)
        ax.xaxis.set_minor_locator(NullLocator())


# --- sections --------------------------------------------------------------------------------------
def _curves_section(w: _Writer, curv: pd.DataFrame, acq: pd.DataFrame, major: pd.DataFrame,
                    plan: dict, axis: _StepAxis) -> None:
    w.h(2, "Learning curves", "curves")
    w.p("Mean over probe seeds with a 95% percentile-bootstrap interval (shaded) over probe seeds, plus "
        "test-example resampling (binomial) for accuracy; dotted vertical "
        "line = acquisition step; dashed horizontal line = majority-label baseline; red title = non-monotone "
        "after acquisition. The x axis is log steps; step 0 (random init) is drawn at half the first positive "
        "step and labelled 'init' (the axis is broken there).", "note")
    for task, (metric, layer) in plan.items():
        sel = curv[(curv.task == task) & (curv.metric == metric) & (curv.layer == layer)]
        own = sel[[A.setting_of(task, a, b) != "cross_lingual" for a, b in zip(sel.train_lang, sel.eval_lang)]]
        if own.empty:
            continue
        groups = list(own.groupby(["train_lang", "eval_lang"], sort=True))
        fig, axes = _grid(len(groups))
        for ax, ((tl, el), g) in zip(axes, groups):
            x = axis.x(g.step)
            ax.plot(x, g["mean"], "-o", ms=2.5, lw=1.2, color="C0")
            ax.fill_between(x, g["lo"], g["hi"], color="C0", alpha=0.25, lw=0)
            a = acq[(acq.task == task) & (acq.train_lang == tl) & (acq.eval_lang == el)
                    & (acq.layer == layer) & (acq.metric == metric)]
            flagged = bool(len(a) and a.non_monotone.iloc[0])
            if len(a) and not pd.isna(a.acq_step.iloc[0]):
                ax.axvline(axis.x([a.acq_step.iloc[0]])[0], ls=":", color="k", lw=1)
            mb = major[(major.task == task) & (major.eval_lang == el) & (major.metric == metric)]
            if (mb.train_lang == tl).any():
                mb = mb[mb.train_lang == tl]
            if len(mb):
                ax.axhline(mb.value.mean(), ls="--", color="C3", lw=1)
            title = f"{tl}→{el}" if tl and tl != el else el
            ax.set_title(title + (" (non-monotone)" if flagged else ""), fontsize=9,
                         color="C3" if flagged else "k")
            ax.tick_params(labelsize=7)
            axis.style(ax)
        fig.suptitle(f"{task}: {metric}, layer {layer}", fontsize=11)
        w.figure(f"curves_{_safe(task)}", fig, own, f"{task} {metric} at layer {layer}, per language")

    # cross-lingual: one panel per target, a line per source
    for task, (metric, layer) in plan.items():
        sel = curv[(curv.task == task) & (curv.metric == metric) & (curv.layer == layer)]
        setting = np.array([A.setting_of(task, a, b) for a, b in zip(sel.train_lang, sel.eval_lang)])
        if not (setting == "cross_lingual").any():
            continue
        sel = sel[np.isin(setting, ["cross_lingual", "in_language"])]
        targets = sorted(sel[sel.train_lang != sel.eval_lang].eval_lang.unique())
        sources = sorted(sel.train_lang.unique())
        colors = {s: plt.cm.tab20(i % 20) for i, s in enumerate(sources)}
        fig, axes = _grid(len(targets), right_in=0.9)
        for ax, t in zip(axes, targets):
            for (src,), g in sel[sel.eval_lang == t].groupby(["train_lang"], sort=True):
                inl = src == t
                ax.plot(axis.x(g.step), g["mean"], "-", lw=2.0 if inl else 0.9,
                        color="k" if inl else colors[src], label=src, zorder=3 if inl else 2)
            ax.set_title(f"→{t}", fontsize=9)
            ax.tick_params(labelsize=7)
            axis.style(ax)
        handles = [plt.Line2D([], [], color=colors[s], label=s) for s in sources]
        fig.legend(handles=handles, loc="upper right", fontsize=7, title="source", ncol=1)
        fig.suptitle(f"{task} zero-shot transfer: {metric}, layer {layer} (black = in-language)", fontsize=11)
        w.figure(f"cross_{_safe(task)}", fig, sel, f"{task} cross-lingual curves per target language")


def _acq_section(w: _Writer, acq: pd.DataFrame, lag: pd.DataFrame, plan: dict, threshold: float,
                 reference: str) -> pd.DataFrame:
    w.h(2, "Acquisition steps", "acquisition")
    w.p(f"Acquisition = first step where the seed-mean curve reaches {threshold:g} × its {reference} value "
        f"(lower-is-better metrics such as BPC/AER: value ≤ {reference} / {threshold:g}). stable_step = first step "
        "from which the curve never falls below that target again. non_monotone = after acquisition the curve "
        "falls below its running best by more than the tolerance (fraction of the reference). lag = "
        "cross-lingual acquisition − in-language acquisition of the target; ratio = their quotient.", "note")
    main = pd.concat([acq[(acq.task == t) & (acq.metric == m) & (acq.layer == la)]
                      for t, (m, la) in plan.items()]) if plan else acq.iloc[:0]
    lag_main = lag.merge(main[list(A.CURVE_KEYS)], on=list(A.CURVE_KEYS)) if len(lag) else lag
    # summary per task and setting
    recs = []
    for (task, setting), g in main.groupby(["task", "setting"], sort=True):
        s = g.acq_step.astype(float)
        r = dict(task=task, metric=g.metric.iloc[0], layer=int(g.layer.iloc[0]), setting=setting, curves=len(g),
                 median_acq_step=s.median(), min_acq_step=s.min(), max_acq_step=s.max(),
                 non_monotone=int(g.non_monotone.sum()))
        if setting == "cross_lingual" and len(lag_main):
            lg = lag_main[lag_main.task == task]
            r.update(median_lag=lg["lag"].astype(float).median(), median_ratio=lg["ratio"].median())
        recs.append(r)
    summary = pd.DataFrame(recs)
    w.h(3, "Summary (main metric, report layer)")
    w.table(summary, csv_name="acquisition_summary.csv")
    cols = ["task", "metric", "layer", "train_lang", "eval_lang", "setting", "acq_step", "stable_step",
            "reference_value", "best_step", "best_value", "final_value", "max_drop", "non_monotone"]
    w.h(3, "In-language and unsupervised")
    w.table(main[main.setting != "cross_lingual"][cols], csv_name="acquisition_in_language.csv",
            summary="per-language acquisition steps")
    if len(lag_main):
        w.h(3, "Cross-lingual (with lag behind the target's in-language acquisition)")
        w.table(lag_main[cols + ["in_lang_step", "lag", "ratio"]], csv_name="acquisition_cross_lingual.csv",
                summary=f"{len(lag_main)} language pairs")
    w.p('All tasks, layers and metrics: <a href="acquisition_all.csv">acquisition_all.csv</a>, '
        '<a href="lag_all.csv">lag_all.csv</a>.', "note")
    w.csv("acquisition_all.csv", acq)
    w.csv("lag_all.csv", lag)
    return main


def _best_final_section(w: _Writer, curv: pd.DataFrame, acq: pd.DataFrame, plan: dict) -> None:
    w.h(2, "Best vs final checkpoint", "best-final")
    w.p("drop = how much worse the final checkpoint is than the best one (metric units, ≥ 0; for "
        "lower-is-better metrics final − best); rel_drop = drop / |best|.", "note")
    bf = A.best_vs_final(curv, acq=acq)
    w.csv("best_vs_final_all.csv", bf)
    main = pd.concat([bf[(bf.task == t) & (bf.metric == m) & (bf.layer == la) & (bf.setting != "cross_lingual")]
                      for t, (m, la) in plan.items()]) if plan else bf.iloc[:0]
    w.table(main, csv_name="best_vs_final.csv", summary="per-language best vs final")
    n = len(main)
    if n:
        w.p(f"{int((~main.final_is_best).sum())} of {n} curves peak before the final checkpoint.", "note")


def _layers_section(w: _Writer, curv: pd.DataFrame, plan: dict, axis: _StepAxis) -> None:
    w.h(2, "Layers × steps", "layers")
    w.p("Seed-mean metric per layer (rows, 0 = embeddings) and step (columns), averaged over languages "
        "(in-language / unsupervised curves). White dots: best layer at each step.", "note")
    mats, best_rows, long = [], [], []
    for task, (metric, _) in plan.items():
        try:
            m = A.layer_step_matrix(curv, task=task, metric=metric)
        except A.AnalysisError:
            continue
        if len(m.index) < 2:
            continue
        lib = A.is_lower_better(metric)
        bl = (m.idxmin() if lib else m.idxmax()).astype(int)
        mats.append((task, metric, m, bl))
        for step, layer in bl.items():
            best_rows.append(dict(task=task, metric=metric, step=int(step), best_layer=layer,
                                  best_value=m.at[layer, step], last_layer=int(m.index.max()),
                                  last_value=m.at[m.index.max(), step]))
        lg = m.stack().rename("mean").reset_index()
        lg.insert(0, "metric", metric)
        lg.insert(0, "task", task)
        long.append(lg)
    if not mats:
        w.p("(no task has more than one layer)", "note")
        return
    fig, axes = _grid(len(mats), ncols=3, w=4.6, h=3.2, sharex=False, bottom_in=0.7, right_in=0.6)
    for ax, (task, metric, m, bl) in zip(axes, mats):
        cmap = "viridis_r" if A.is_lower_better(metric) else "viridis"
        im = ax.imshow(m.to_numpy(dtype=float), aspect="auto", origin="lower", cmap=cmap, interpolation="nearest")
        ax.scatter(np.arange(len(m.columns)), [list(m.index).index(b) for b in bl], s=8, c="w")
        ax.set_xticks(np.arange(len(m.columns)), [_fmt_step(s) if s else "init" for s in m.columns],
                      rotation=90, fontsize=6)
        ax.set_yticks(np.arange(len(m.index)), [str(i) for i in m.index], fontsize=6)
        ax.set_title(f"{task} ({metric})", fontsize=9)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("layer", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.04)
    w.figure("layers_heatmaps", fig, pd.concat(long), "layer × step, language-averaged")
    best = pd.DataFrame(best_rows)
    fig, axes = _grid(1, ncols=1, w=6.0, h=3.0)
    fig.subplots_adjust(left=0.1)
    for i, (task, g) in enumerate(best.groupby("task", sort=True)):
        axes[0].plot(axis.x(g.step), g.best_layer + 0.06 * i, "-o", ms=3, label=task)
    axis.style(axes[0])
    axes[0].set_ylabel("best layer")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7)
    w.figure("best_layer", fig, best, "best layer at each step (language-averaged)")
    piv = best.pivot_table(index="step", columns="task", values="best_layer", aggfunc="first").reset_index()
    piv.columns = [str(c) for c in piv.columns]
    w.table(piv, summary="best layer per step")
    w.csv("best_layer_per_step_all.csv", A.best_layer_per_step(curv))


def _heat_values(data: np.ndarray, log: bool) -> np.ma.MaskedArray:
    """Colour values of a heatmap: NaN (missing pair, never acquired) stays masked (drawn grey).

    With `log`, values are log10; finite values <= 0 (step 0: acquired at init) get the colour of half
    the first positive value.
    """
    data = np.asarray(data, dtype=float)
    fin = np.isfinite(data)
    if log:
        pos = data[fin & (data > 0)]
        floor = pos.min() / 2 if pos.size else 1.0
        data = np.log10(np.where(fin & (data > 0), data, floor))
    return np.ma.masked_array(data, mask=~fin)


def _heat(ax, m: pd.DataFrame, title: str, *, fmt="{:.2f}", cmap="viridis", vmin=None, vmax=None, log=False):
    data = m.to_numpy(dtype=float)
    shown = _heat_values(data, log)
    cm = plt.get_cmap(cmap).with_extremes(bad="0.85")  # masked (NaN) cells in light grey
    im = ax.imshow(shown, cmap=cm, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    lo, hi = im.get_clim()
    ax.set_xticks(np.arange(m.shape[1]), list(m.columns), fontsize=6, rotation=90)
    ax.set_yticks(np.arange(m.shape[0]), list(m.index), fontsize=6)
    ax.set_xlabel("target (eval)", fontsize=7)
    ax.set_ylabel("source (train)", fontsize=7)
    ax.set_title(title, fontsize=9)
    if max(m.shape) <= 12:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(data[i, j]):
                    bright = (shown[i, j] - lo) / ((hi - lo) or 1.0) > 0.6
                    if cmap.endswith("_r"):
                        bright = not bright
                    ax.text(j, i, fmt(data[i, j]) if callable(fmt) else fmt.format(data[i, j]),
                            ha="center", va="center", fontsize=6, color="k" if bright else "w")
    else:
        plt.colorbar(im, ax=ax, fraction=0.04)
    return im


def _transfer_section(w: _Writer, curv: pd.DataFrame, acq: pd.DataFrame, plan: dict,
                      steps_for_transfer: Sequence[int] | None) -> None:
    w.h(2, "Transfer matrices", "transfer")
    w.p("Rows = probe training language, columns = evaluation language. Normalised = value / the target's "
        "in-language value at the same step (1 = as good as training on the target). Requested steps are "
        "mapped to the nearest available checkpoint.", "note")
    any_task = False
    for task, (metric, layer) in plan.items():
        sel = curv[(curv.task == task) & (curv.metric == metric) & (curv.layer == layer)]
        if not (sel.train_lang.ne(sel.eval_lang) & sel.train_lang.ne("")).any() or task in A.UNSUPERVISED_TASKS:
            continue
        any_task = True
        avail = sorted(sel.step.unique())
        if steps_for_transfer:
            steps = [A.nearest_step(avail, s) for s in steps_for_transfer]
        else:
            pos = [s for s in avail if s > 0] or avail
            steps = [pos[0], pos[len(pos) // 2], pos[-1]]
        steps = list(dict.fromkeys(steps))
        fig, axes = plt.subplots(2, len(steps), figsize=(3.6 * len(steps), 6.8), squeeze=False)
        fig.subplots_adjust(left=0.6 / (3.6 * len(steps)), right=0.98, top=0.92, bottom=0.1, wspace=0.35,
                            hspace=0.45)
        data = []
        for j, s in enumerate(steps):
            raw = A.transfer_matrix(curv, task=task, step=s, layer=layer, metric=metric)
            norm = A.transfer_matrix(curv, task=task, step=s, layer=layer, metric=metric, normalize=True)
            _heat(axes[0, j], raw, f"raw, step {_fmt_step(s)}")
            _heat(axes[1, j], norm, f"normalised, step {_fmt_step(s)}", cmap="magma", vmin=0, vmax=1.1)
            for kind, m in (("raw", raw), ("normalised", norm)):
                d = m.stack().rename("value").reset_index()
                d.insert(0, "kind", kind)
                d.insert(0, "step", s)
                data.append(d)
        fig.suptitle(f"{task}: {metric}, layer {layer}", fontsize=11)
        w.figure(f"transfer_{_safe(task)}", fig, pd.concat(data), f"{task} transfer at steps "
                 + ", ".join(_fmt_step(s) for s in steps))
        pm = A.pair_acquisition_matrix(acq, task=task, layer=layer, metric=metric)
        fig, axes = plt.subplots(1, 1, figsize=(4.8, 4.0), squeeze=False)
        _heat(axes[0, 0], pm, "acquisition step (log10 colour)", fmt=_fmt_step, log=True, cmap="viridis_r")
        fig.subplots_adjust(left=0.15, bottom=0.18, right=0.95, top=0.9)
        w.figure(f"transfer_acq_{_safe(task)}", fig, pm.reset_index(), f"{task}: step at which each pair is acquired "
                 "(grey: never acquired or missing)")
    if not any_task:
        w.p("(no cross-lingual rows)", "note")


def _lang_table(lang_table) -> Any:
    if lang_table is None or isinstance(lang_table, (Mapping, pd.DataFrame, pd.Series)):
        return lang_table
    path = Path(lang_table)
    if not path.exists():
        raise ReportError(f"lang_table file {path} does not exist")
    t = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".tab") else ",")
    if "lang" not in t.columns:
        raise ReportError(f"lang_table file {path} needs a 'lang' column (has {list(t.columns)})")
    return t


def _checkpoints_section(w: _Writer, df: pd.DataFrame) -> None:
    w.h(2, "Checkpoints", "checkpoints")
    w.p("Rows and units per checkpoint, with the provenance the sweep recorded (a checkpoint with fewer "
        "rows than its neighbours is missing units).", "note")
    if df.empty:
        w.p("(none)", "note")
        return
    cols = ["step", "checkpoint", "checkpoint_path", "checkpoint_hash"]
    agg = df.groupby(cols, as_index=False, sort=True).agg(
        rows=("value", "size"), tasks=("task", lambda s: ",".join(sorted(set(s)))),
        nan_values=("value", lambda v: int((~np.isfinite(v.to_numpy(dtype=float))).sum())))
    w.table(agg, csv_name="checkpoints.csv", summary=f"{len(agg)} checkpoints")


def _failures_section(w: _Writer, results_dir: Path, df: pd.DataFrame) -> None:
    w.h(2, "Failures", "failures")
    f = read_failures(results_dir)
    w.h(3, "Recorded failures (checkpoints that failed to load, stages that raised)")
    w.table(f, csv_name="failures.csv" if len(f) else None)
    bad = nan_rows(df)
    w.h(3, "Rows with NaN / infinite values")
    if len(bad):
        agg = bad.groupby(["checkpoint", "step", "task", "metric"], as_index=False).size()
        w.table(agg, csv_name="nan_rows.csv")
    else:
        w.p("(none)", "note")


def _provenance(df: pd.DataFrame, results_dir: Path, settings: dict) -> str:
    def vals(c):
        v = sorted(x for x in df[c].unique() if x) if c in df else []
        return ", ".join(html.escape(str(x)) for x in v[:5]) + (f" (+{len(v) - 5} more)" if len(v) > 5 else "") or "–"

    curve_rows, major = A.split_baselines(df)
    steps = sorted(curve_rows.step.unique())
    items = [("results dir", html.escape(str(results_dir))),
             ("generated", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")),
             ("rows", f"{len(df):,} ({len(major):,} majority-baseline rows)"),
             ("checkpoints", str(curve_rows.checkpoint.nunique())),
             ("steps", f"{_fmt_step(steps[0])} … {_fmt_step(steps[-1])} ({len(steps)})" if steps else "–"),
             ("tasks", ", ".join(sorted(df.task.unique())) if len(df) else "–"),
             ("config hash", vals("config_hash")), ("data hash", vals("data_hash")),
             ("package version", vals("package_version")), ("run id", vals("run_id"))]
    items += [(k, html.escape(str(v))) for k, v in settings.items()]
    cells = "".join(f"<tr><th>{k}</th><td style='text-align:left'>{v}</td></tr>" for k, v in items)
    warn = []
    for c in ("config_hash", "run_id"):
        n = curve_rows[c].nunique() if len(curve_rows) else 0
        if n > 1:
            warn.append(f"rows from {n} different {c} values are pooled in this report")
    dup = A.duplicate_rows(df) if len(df) else df
    if len(dup):
        warn.append(f"{len(dup)} rows measure the same (step, task, languages, layer, seed, metric) more than once "
                    "and are averaged as if they were extra seeds (see duplicate_rows.csv)")
    warn_html = "".join(f'<p class="flag">Warning: {html.escape(x)}.</p>' for x in warn)
    return f"<table>{cells}</table>{warn_html}"


# --- entry point -----------------------------------------------------------------------------------
def make_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                threshold: float = 0.98, reference: str = "best",
                steps_for_transfer: Sequence[int] | None = None, lang_table=None, layer: int | None = None,
                tolerance: float = 0.02, n_boot: int = 1000, seed: int = 0) -> Path:
    """Write an HTML report of a results directory.

    Args:
        results_dir: a directory written by `results.ResultsStore`.
        out_dir: where to write (default `<results_dir>/report`).
        threshold: acquisition threshold (fraction of the reference value).
        reference: "best" or "final" value of each curve as the acquisition reference.
        steps_for_transfer: steps at which to show transfer matrices (nearest checkpoint is used);
            default: first positive, middle and final checkpoint.
        lang_table: per-language properties for Spearman correlations with acquisition steps: a dict
            {lang: value}, a DataFrame with a `lang` column, or a CSV/TSV path with a `lang` column.
        layer: layer for the main analysis (default: the last layer of each task).
        tolerance: drop (fraction of the reference) after acquisition that flags a curve non-monotone.
        n_boot: bootstrap resamples for the curve intervals.
        seed: bootstrap seed.

    Returns:
        Path of `index.html`.
    """
    if reference not in ("best", "final"):
        raise ReportError(f"reference must be 'best' or 'final', got {reference!r}")
    if not 0 < threshold <= 1:
        raise ReportError(f"threshold must be in (0, 1], got {threshold}")
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReportError(f"results dir {results_dir} does not exist or is not a directory")
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    langs = _lang_table(lang_table)
    df = read_results(results_dir)
    w = _Writer(out)
    settings = {"threshold": threshold, "reference": reference, "non-monotone tolerance": tolerance,
                "layer": "last layer of each task" if layer is None else layer,
                "intervals": f"95% two-level bootstrap: probe seeds resampled, plus test-example resampling "
                             f"for accuracy (binomial, shared by seeds; {n_boot} resamples, seed {seed})"}
    curve_rows, _ = A.split_baselines(df)
    if len(df) and len(A.duplicate_rows(df)):
        w.csv("duplicate_rows.csv", A.duplicate_rows(df))
    if curve_rows.empty:
        w.p("No result rows yet.", "note")
    else:
        curv = A.curves(df, n_boot=n_boot, seed=seed)
        major = A.majority_baselines(df)
        acq = A.acquisition_table(curv, threshold=threshold, reference=reference, tolerance=tolerance)
        lag = A.lag_table(acq)
        plan = {}
        for task, g in curve_rows.groupby("task", sort=True):
            metric = A.main_metric(g.metric.unique())
            layers = sorted(g[g.metric == metric].layer.unique())
            la = layer if layer is not None and layer in layers else int(layers[-1])
            plan[task] = (metric, int(la))
        w.p("Main metric and layer per task: " + "; ".join(f"{t}: {m} @ layer {la}" for t, (m, la) in plan.items())
            + '. Curves of every task, layer and metric: <a href="curves_all.csv">curves_all.csv</a>; '
            'majority baselines: <a href="majority_baselines.csv">majority_baselines.csv</a>.', "note")
        w.csv("curves_all.csv", curv)
        w.csv("majority_baselines.csv", major)
        axis = _StepAxis(curv.step.unique())
        main_acq = _acq_section(w, acq, lag, plan, threshold, reference)
        _curves_section(w, curv, acq, major, plan, axis)
        _best_final_section(w, curv, acq, plan)
        _layers_section(w, curv, plan, axis)
        _transfer_section(w, curv, acq, plan, steps_for_transfer)
        if langs is not None:
            w.h(2, "Correlation with language properties", "spearman")
            w.p("Spearman ρ between acquisition step (main metric, report layer) and each per-language "
                "property; cross-lingual rows are correlated with the target (eval_lang) and the source "
                "(train_lang).", "note")
            w.table(A.spearman_table(main_acq, langs), csv_name="spearman.csv")
    _checkpoints_section(w, df)
    _failures_section(w, results_dir, df)
    toc = " · ".join(f'<a href="#{a}">{t}</a>' for a, t in [
        ("acquisition", "acquisition"), ("curves", "curves"), ("best-final", "best vs final"),
        ("layers", "layers"), ("transfer", "transfer"), ("spearman", "correlations"), ("checkpoints", "checkpoints"),
        ("failures", "failures")])
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>xlmr-dynamics report: "
           f"{html.escape(results_dir.name)}</title><style>{_CSS}</style></head><body>"
           f"<h1>xlmr-dynamics report</h1>{_provenance(df, results_dir, settings)}<p>{toc}</p>"
           + "\n".join(w.parts) + "</body></html>")
    return atomic_write_bytes(out / "index.html", doc.encode("utf-8"))
