"""Results store: round trips, idempotent appends, locking, kill-and-rerun safety, no JAX imports."""

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from xlmr_dynamics import results as R

REPO = Path(__file__).resolve().parents[1]
RESULTS_PY = REPO / "xlmr_dynamics" / "results.py"


def _rows(step, task, lang, n_layers=3, seeds=(0, 1)):
    return [dict(run_id="run", checkpoint=f"ckpt{step}", step=step, task=task, train_lang=lang,
                 eval_lang=lang, layer=layer, seed=seed, metric="accuracy",
                 value=round(0.1 * layer + 0.01 * seed + step / 1e6, 6), n=100,
                 extra={"note": "x"} if layer == 0 else None, config_hash="abc")
            for layer in range(n_layers) for seed in seeds]


def test_append_done_table_round_trip(tmp_path):
    with R.ResultsStore(tmp_path) as store:
        assert store.done_units() == set()
        assert store.append("u1", _rows(5000, "pos", "en")) is True
        assert store.append("u2", _rows(0, "pos", "de")) is True
        assert store.append("empty", []) is True
        assert store.is_done("u1") and store.is_done("empty") and not store.is_done("u3")
        df = store.table()
    assert list(df.columns) == list(R.COLUMNS)
    assert len(df) == 12
    assert df["step"].dtype == "int64" and df["value"].dtype == "float64"
    # deterministic order: sorted by the stable keys
    assert df.equals(df.sort_values(list(R.SORT_KEYS), kind="mergesort").reset_index(drop=True))
    row = df[(df.eval_lang == "en") & (df.layer == 2) & (df.seed == 1)].iloc[0]
    assert row.value == pytest.approx(0.21 + 0.005) and row.checkpoint == "ckpt5000"
    assert json.loads(df[df.layer == 0].extra.iloc[0]) == {"note": "x"}
    assert set(df.extra[df.layer > 0]) == {"{}"}
    assert set(df.config_hash) == {"abc"} and set(df.data_hash) == {""}
    # reopen: done units are remembered, read_results needs no lock
    with R.ResultsStore(tmp_path) as store:
        assert store.done_units() == {"u1", "u2", "empty"}
        pd.testing.assert_frame_equal(R.read_results(tmp_path), df)
    out = R.read_results(tmp_path)
    pd.testing.assert_frame_equal(out, df)


def test_reappend_is_noop(tmp_path):
    with R.ResultsStore(tmp_path) as store:
        assert store.append("u1", _rows(5000, "pos", "en"))
        changed = _rows(5000, "pos", "en")
        for r in changed:
            r["value"] = 99.0
        assert store.append("u1", changed) is False
        df = store.table()
    assert len(df) == 6 and (df.value < 1).all()
    with R.ResultsStore(tmp_path) as store:
        assert store.append("u1", changed) is False
        assert len(store.table()) == 6


def test_bad_rows_raise_clear_errors(tmp_path):
    with R.ResultsStore(tmp_path) as store:
        bad = _rows(5000, "pos", "en")
        bad[3]["layer"] = "two"
        with pytest.raises(R.ResultsError, match=r"unit 'u1' row 3: key 'layer'"):
            store.append("u1", bad)
        bad = _rows(5000, "pos", "en")
        bad[0]["bogus"] = 1
        with pytest.raises(R.ResultsError, match="unknown keys.*bogus"):
            store.append("u1", bad)
        bad = _rows(5000, "pos", "en")
        del bad[1]["metric"]
        with pytest.raises(R.ResultsError, match="row 1: missing keys.*metric"):
            store.append("u1", bad)
        assert not store.is_done("u1")
        assert store.table().empty
    with pytest.raises(R.ResultsError, match="does not exist"):
        R.read_results(tmp_path / "nope")


def test_lock_same_process_and_other_process(tmp_path):
    with R.ResultsStore(tmp_path):
        with pytest.raises(R.ResultsLockedError, match=rf"{tmp_path}.*holder pid {os.getpid()}"):
            R.ResultsStore(tmp_path).open()
        code = textwrap.dedent(f"""
            import importlib.util, sys
            spec = importlib.util.spec_from_file_location("res", {str(RESULTS_PY)!r})
            res = importlib.util.module_from_spec(spec); spec.loader.exec_module(res)
            try:
                res.ResultsStore({str(tmp_path)!r}).open()
            except res.ResultsLockedError as e:
                print("LOCKED", e); sys.exit(3)
            sys.exit(0)
        """)
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert p.returncode == 3, p.stderr
        assert f"holder pid {os.getpid()}" in p.stdout
    # released on close: another store can open now
    with R.ResultsStore(tmp_path) as store:
        assert store.done_units() == set()


# Child: appends N_UNITS units in order, optionally SIGKILLing itself at the k-th call of a hook
# ("fsync": mid-write before the rename, "replace": temp file complete but not renamed, "append":
# right after a unit was stored, "compact": during compaction before its rename, "unlink": after
# compaction's rename, while merged parts are being deleted).
CHILD = textwrap.dedent("""
    import importlib.util, os, signal, sys
    spec = importlib.util.spec_from_file_location("res", sys.argv[1])
    res = importlib.util.module_from_spec(spec); spec.loader.exec_module(res)
    results_dir, hook, k = sys.argv[2], sys.argv[3], int(sys.argv[4])
    calls = {"n": 0}
    def maybe_die():
        calls["n"] += 1
        if calls["n"] == k:
            os.kill(os.getpid(), signal.SIGKILL)
    if hook in ("fsync", "replace", "unlink"):
        orig = getattr(os, hook)
        def patched(*a, **kw):
            maybe_die()
            return orig(*a, **kw)
        setattr(res.os, hook, patched)
    with res.ResultsStore(results_dir) as store:
        for i in range(8):
            key = f"step={i * 1000}|pos|en"
            if store.is_done(key):
                continue
            rows = [dict(run_id="r", checkpoint=f"c{i}", step=i * 1000, task="pos", train_lang="en",
                         eval_lang=lang, layer=layer, seed=seed, metric="accuracy",
                         value=i + layer / 10 + seed / 100, n=50)
                    for lang in ("en", "de") for layer in range(3) for seed in range(2)]
            store.append(key, rows)
            if hook == "append":
                maybe_die()
            if i == 4:
                orig_awt = res._atomic_write_table
                if hook == "compact":
                    def dying(*a, **kw):
                        maybe_die()
                        return orig_awt(*a, **kw)
                    res._atomic_write_table = dying
                store.compact()
                res._atomic_write_table = orig_awt
""")


def _run_child(results_dir, hook="none", k=0):
    return subprocess.run([sys.executable, "-c", CHILD, str(RESULTS_PY), str(results_dir), hook, str(k)],
                          capture_output=True, text=True, timeout=60)


def test_sigkill_at_many_points_then_rerun_equals_clean_run(tmp_path):
    clean = tmp_path / "clean"
    assert _run_child(clean).returncode == 0
    ref = R.read_results(clean)
    assert len(ref) == 8 * 12
    scenarios = [("fsync", 1), ("fsync", 4), ("replace", 3), ("append", 1), ("append", 6), ("compact", 1),
                 ("unlink", 2)]
    for hook, k in scenarios:
        d = tmp_path / f"{hook}{k}"
        p = _run_child(d, hook, k)
        assert p.returncode == -signal.SIGKILL, (hook, k, p.stderr)
        partial = R.read_results(d)  # readable after a kill, only whole units
        assert len(partial) % 12 == 0 and len(partial) < len(ref)
        p = _run_child(d)  # rerun: lock was released by the kill
        assert p.returncode == 0, p.stderr
        out = R.read_results(d)
        pd.testing.assert_frame_equal(out, ref)
        assert not out.duplicated(["step", "eval_lang", "layer", "seed", "metric"]).any()
        assert not list(d.rglob(".tmp-*"))  # stale temp files were cleaned by the rerun
        if hook == "unlink":  # killed after compaction's rename: stale parts were ignored
            assert (d / R.COMPACT_FILE).exists()


def test_compact_idempotent_and_failures(tmp_path):
    with R.ResultsStore(tmp_path) as store:
        store.append("a", _rows(1000, "pos", "en"))
        store.append("b", _rows(2000, "pos", "en"))
        before = store.table()
        assert store.compact() == 2
        assert store.compact() == 0
        assert not list((tmp_path / R.PARTS_DIR).glob("*.parquet"))
        store.append("c", _rows(3000, "pos", "en"))
        assert store.append("a", _rows(1000, "pos", "en")) is False
        assert store.compact() == 1
        after = store.table()
        assert store.done_units() == {"a", "b", "c"}
        store.record_failure("ckpt9", "load", "file truncated", step=9000)
        store.record_failure("ckpt9", "nan", "pos en: NaN accuracy", step=9000, unit_key="k")
        csv = store.export_csv(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(after[after.step < 3000].reset_index(drop=True), before)
    assert len(after) == 18
    assert len(pd.read_csv(csv)) == 18
    f = R.read_failures(tmp_path)
    assert list(f.stage) == ["load", "nan"] and list(f.step) == [9000, 9000]
    assert f.message.iloc[0] == "file truncated"
    assert R.read_failures(tmp_path / "none").empty
    with R.ResultsStore(tmp_path) as store:  # a rerun that succeeded clears the matching records
        assert store.clear_failures(unit_key="other") == 0
        assert store.clear_failures(checkpoint="ckpt9", stage="load") == 1
        assert list(store.failures().stage) == ["nan"]
        assert store.clear_failures(unit_key="k") == 1 and store.failures().empty


FORBIDDEN = ("jax", "jaxlib", "flax", "optax", "orbax", "torch", "tensorflow")
LIGHT = ("results", "analysis", "report")


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports (anywhere, lazily too): top-level names, and full dotted names of
    the package's own modules, relative imports resolved against `xlmr_dynamics`."""
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                mods |= {a.name.split(".")[0], a.name}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `from . import x` / `from .x import y` inside xlmr_dynamics/
                base = ".".join(filter(None, ["xlmr_dynamics", base]))
            mods |= {base.split(".")[0], base}
            if base == "xlmr_dynamics":
                mods |= {f"xlmr_dynamics.{a.name}" for a in node.names}
    return mods


def test_modules_do_not_import_jax():
    """results / analysis / report must run on a laptop without JAX (or torch): statically, no
    import of a heavy framework or of any other package module (absolute, dotted or relative)."""
    for name in LIGHT:
        mods = _imported_modules(REPO / "xlmr_dynamics" / f"{name}.py")
        assert not mods & set(FORBIDDEN), (name, mods & set(FORBIDDEN))
        own = {m for m in mods if m.startswith("xlmr_dynamics.")}
        assert not own - {"xlmr_dynamics.results", "xlmr_dynamics.analysis", "xlmr_dynamics.__version__"}, \
            (name, own)


# Child for the no-JAX run: the heavy frameworks are made unimportable before anything is imported,
# as if not installed. (Not `sys.modules[m] = None`: scipy's array-API helpers read
# `sys.modules["torch"].Tensor` whenever the key exists, which no real torch-less machine has.)
NO_JAX_CHILD = textwrap.dedent("""
    import sys, traceback
    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {forbidden!r}:
                stack = [f"{{f.filename}}:{{f.lineno}}" for f in traceback.extract_stack()
                         if "xlmr_dynamics" in f.filename]
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked; imported from {{stack}})",
                                          name=name)
            return None
    sys.meta_path.insert(0, NotInstalled())
    sys.path.insert(0, {repo!r})
    import xlmr_dynamics.results as R, xlmr_dynamics.analysis, xlmr_dynamics.report as RP
    from xlmr_dynamics.cli import main
    assert R.__file__.startswith({repo!r}), R.__file__
    res, steps, langs = sys.argv[1], [0, 1000, 2000, 5000, 10000], ["en", "de"]
    with R.ResultsStore(res) as st:
        for i, step in enumerate(steps):
            for tl in langs:
                st.append(f"step={{step}}|pos|{{tl}}", [
                    dict(run_id="r", checkpoint=f"c{{step}}", step=step, task="pos", train_lang=tl,
                         eval_lang=el, layer=layer, seed=seed, metric="accuracy",
                         value=min(0.95, 0.3 + 0.15 * i + 0.05 * layer - 0.1 * (tl != el) + 0.001 * seed), n=100)
                    for el in langs for layer in range(3) for seed in range(2)])
            st.append(f"step={{step}}|bpc", [
                dict(run_id="r", checkpoint=f"c{{step}}", step=step, task="bpc", train_lang="", eval_lang=el,
                     layer=2, seed=0, metric="bpc", value=5.0 / (1 + i) + 0.1 * j, n=1000)
                for j, el in enumerate(langs)])
        st.record_failure("c3000", "load", "truncated", step=3000)
    index = RP.make_report(res, res + "/rep1", n_boot=50, lang_table={{"en": 3.0, "de": 1.0}})
    assert index.name == "index.html" and "acquisition" in index.read_text().lower()
    assert main(["report", res, "--out", res + "/rep2", "--steps", "0,10000"]) == 0
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden!r})
    assert not loaded, loaded
    print("NO-JAX OK")
""")


def test_results_analysis_report_and_cli_report_run_without_jax_or_torch(tmp_path):
    """Dynamic check (catches transitive, relative and lazy imports): with jax/flax/optax/orbax/torch
    unimportable, write a results store, render the report and run `xlmr-dynamics report`."""
    code = NO_JAX_CHILD.format(forbidden=FORBIDDEN, repo=str(REPO))
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "res")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "NO-JAX OK" in p.stdout
    assert (tmp_path / "res" / "rep1" / "index.html").exists()
    assert (tmp_path / "res" / "rep2" / "index.html").exists()


def test_auto_compaction_keeps_table_and_done_units(tmp_path):
    with R.ResultsStore(tmp_path / "a", compact_every=0) as store:
        for i in range(5):
            store.append(f"u{i}", _rows(i * 1000, "pos", "en"))
        ref = store.table()
    with R.ResultsStore(tmp_path / "b", compact_every=2) as store:
        for i in range(5):
            store.append(f"u{i}", _rows(i * 1000, "pos", "en"))
        assert len(list((tmp_path / "b" / R.PARTS_DIR).glob("*.parquet"))) == 1  # 4 merged, 1 pending
        assert (tmp_path / "b" / R.COMPACT_FILE).exists()
    with R.ResultsStore(tmp_path / "b", compact_every=2) as store:
        assert store.done_units() == {f"u{i}" for i in range(5)}
        assert store.append("u1", _rows(1000, "pos", "en")) is False
    pd.testing.assert_frame_equal(R.read_results(tmp_path / "b"), ref)


def test_lock_free_reads_during_appends_and_compaction(tmp_path):
    """A reader racing a writer that compacts every 2 units never sees partial or lost units."""
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("res", {str(RESULTS_PY)!r})
        res = importlib.util.module_from_spec(spec); spec.loader.exec_module(res)
        with res.ResultsStore({str(tmp_path)!r}, compact_every=2) as st:
            for i in range(40):
                st.append(f"u{{i}}", [dict(run_id="r", checkpoint=f"c{{i}}", step=i, task="pos", train_lang="en",
                                         eval_lang="en", layer=l, seed=0, metric="accuracy", value=0.1, n=1)
                                    for l in range(12)])
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    seen = []
    try:
        while proc.poll() is None:
            if (tmp_path / R.PARTS_DIR).exists():
                df = R.read_results(tmp_path)
                assert len(df) % 12 == 0
                steps = sorted(df.step.unique())
                assert steps == list(range(len(steps)))  # units appear in order, none lost
                seen.append(len(df))
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert seen == sorted(seen)  # monotone: a compaction never hides rows from a reader
    assert len(R.read_results(tmp_path)) == 40 * 12


def test_a_part_or_compact_file_of_another_schema_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with R.ResultsStore(tmp_path) as store:
        store.append("u1", _rows(5000, "pos", "en"))
        store.append("u2", _rows(5000, "pos", "de"))
    part = sorted((tmp_path / R.PARTS_DIR).glob("*.parquet"))[1]
    t = pq.read_table(part)
    old = t.drop_columns(["data_hash"]).replace_schema_metadata(t.schema.metadata)  # an older writer
    pq.write_table(old, part)
    with pytest.raises(R.ResultsError, match=rf"{part.name}: its columns .* do not match the results schema"):
        R.read_results(tmp_path)
    pq.write_table(t, part)  # restored: reads again; a compact file of another schema is named too
    with R.ResultsStore(tmp_path) as store:
        store.compact()
    compact = tmp_path / R.COMPACT_FILE
    t = pq.read_table(compact)
    bad = t.set_column(t.schema.get_field_index("step"), "step", pa.array(["x"] * len(t)))
    pq.write_table(bad.replace_schema_metadata(t.schema.metadata), compact)
    with pytest.raises(R.ResultsError, match=rf"{R.COMPACT_FILE}: its columns"):
        R.read_results(tmp_path)
