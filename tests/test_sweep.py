"""Sweep: kill -9 at several points + resume == uninterrupted; lock; config validation; 2 processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from xlmr_dynamics import model as M
from xlmr_dynamics.config import ConfigError, load_config
from xlmr_dynamics.convert import save_converted
from xlmr_dynamics.results import ResultsLockedError, ResultsStore, read_failures, read_results
from xlmr_dynamics.sweep import discover_checkpoints, run_sweep, step_from_name
from xlmr_dynamics.tokenizer import load_tokenizer, train_sentencepiece

REPO = Path(__file__).resolve().parents[1]

OVERRIDES = [
    "tasks=('pos', 'arc_pred', 'xnli', 'align', 'bpc')",
    "ud.langs=('en',)", "ud.cross_langs=('en', 'fr')", "ud.max_train_sentences=80", "ud.max_eval_sentences=40",
    "xnli.langs=('en',)", "xnli.cross_langs=('en', 'fr')", "xnli.max_train=60", "xnli.max_eval=30",
    "align.pairs=('fr',)", "align.max_pairs=20", "bpc.langs=('en', 'fr')", "bpc.max_sentences=10",
    "probe.max_epochs=2", "seeds=(0, 1)",
]


def sweep_config(ckpt_dir: Path, results: Path, extra=()):
    from xlmr_dynamics.demo import demo_data_root

    cfg = load_config("demo:ci")
    s = cfg.sweep.copy_and_resolve_references()
    s.unlock()
    from xlmr_dynamics.config import apply_override

    for o in list(OVERRIDES) + [f"checkpoints.dir={ckpt_dir}", f"results_dir={results}",
                                f"data_root={demo_data_root()}"] + list(extra):
        apply_override(s, o)
    s.lock()
    return s


pytestmark = pytest.mark.usefixtures("fast_compiles")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    from xlmr_dynamics import demo_data

    d = tmp_path_factory.mktemp("series")
    lines = [ln for ls in demo_data.load_text("train", ("en", "fr", "ro")).values() for ln in ls[:300]]
    tok = load_tokenizer(train_sentencepiece(lines, d, 600))
    cfg = M.XLMRConfig.tiny(vocab_size=tok.vocab_size, num_layers=2)
    for i, step in enumerate((1000, 20000, 300000)):
        save_converted(d / f"checkpoint_{step // 1000}k", cfg, M.init_params(cfg, jax.random.key(i + 1)))
    return d


WORKER = r"""
import os, sys, json, jax
jax.config.update("jax_compilation_cache_dir", os.environ["XD_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_disable_most_optimizations", True)
sys.path.insert(0, os.environ["XD_TESTS"])
if os.environ.get("XD_PROCS"):
    jax.config.update("jax_num_cpu_devices", 4)
    from xlmr_dynamics import sharding as S
    S.init_distributed("127.0.0.1:" + os.environ["XD_PORT"], 2, int(os.environ["XD_PID"]))
from test_sweep import sweep_config
from xlmr_dynamics.sweep import run_sweep
from pathlib import Path
run_sweep(sweep_config(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])), progress=False)
"""


def _env(tmp_cache, **kw):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(XD_CACHE=str(tmp_cache), XD_TESTS=str(Path(__file__).parent), **kw)
    return env


def _start(series, results, cache, extra=(), **env):
    return subprocess.Popen([sys.executable, "-c", WORKER, str(series), str(results), json.dumps(list(extra))],
                            env=_env(cache, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(series, results, cache, extra=()):
    p = _start(series, results, cache, extra)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-4000:]


def _table(results):
    df = read_results(results)
    return df.sort_values(list(df.columns.drop(["value", "extra"]))).reset_index(drop=True)


def test_step_names():
    assert [step_from_name(n) for n in ("5k", "1500k", "step_0005000", "checkpoint_3_5000.pt", "1.5M", "x")] == [
        5000, 1500000, 5000, 5000, 5000000, None]


def test_discovery_and_random_init(series, tmp_path):
    ckpts = discover_checkpoints(sweep_config(series, tmp_path / "r"))
    assert [c.step for c in ckpts] == [0, 1000, 20000, 300000]
    assert ckpts[0].path is None and ckpts[1].name == "checkpoint_1k"


def test_kill9_at_several_points_then_resume_equals_uninterrupted(series, tmp_path):
    cache = tmp_path / "jax_cache"
    _run(series, tmp_path / "clean", cache)
    clean = _table(tmp_path / "clean")
    assert set(clean["task"]) == {"pos", "arc_pred", "xnli", "align", "bpc"}
    assert set(clean["step"]) == {-1, 0, 1000, 20000, 300000}
    units_total = len(list((tmp_path / "clean" / "parts").glob("*.parquet")))

    killed = tmp_path / "killed"
    for target in (2, units_total // 2, units_total - 3):  # kill -9 after this many finished units
        p = _start(series, killed, cache)
        while p.poll() is None:
            done = len(list((killed / "parts").glob("*.parquet"))) if (killed / "parts").exists() else 0
            if done >= target:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        p.wait()
    _run(series, killed, cache)
    resumed = _table(killed)
    assert not resumed.duplicated(["step", "task", "train_lang", "eval_lang", "layer", "seed", "metric"]).any()
    pd.testing.assert_frame_equal(resumed, clean)


def test_second_sweep_on_same_dir_gets_lock_error(series, tmp_path):
    results = tmp_path / "locked"
    with ResultsStore(results):
        with pytest.raises(ResultsLockedError, match=str(results)):
            run_sweep(sweep_config(series, results), progress=False)


def test_bad_config_lists_every_problem_before_work(series, tmp_path):
    cfg = sweep_config(series, tmp_path / "r", ["tasks=('pos', 'align', 'bpc', 'sentiment')", "ud.langs=('en', 'xx')",
                                                 "align.pairs=('fr', 'fa')", "bpc.langs=('en', 'qq')"])
    with pytest.raises(ConfigError) as e:
        run_sweep(cfg, progress=False)
    msg = str(e.value)
    for part in ("unknown tasks ['sentiment']", "unknown language code 'xx'", "en-fa", "'qq'"):
        assert part in msg, msg
    assert not (tmp_path / "r").exists()  # nothing started


def test_bad_settings_and_layers_fail_before_work_naming_keys(series, tmp_path):
    cfg = sweep_config(series, tmp_path / "r", ["extract.word_pooling='avg'", "probe.probe='xyz'",
                                                 "seeds=(0, 0)", "checkpoints.dtype='fp16'",
                                                 "bpc.pattern='{language}.txt'"])
    with pytest.raises(ConfigError) as e:
        run_sweep(cfg, progress=False)
    msg = str(e.value)
    for part in ("extract.word_pooling='avg'", "probe: ProbeConfig.probe", "seeds=(0, 0)",
                 "checkpoints.dtype='fp16'", "bpc.pattern='{language}.txt'"):
        assert part in msg, msg
    assert not (tmp_path / "r").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=f"no checkpoints in checkpoints.dir={empty}"):
        run_sweep(sweep_config(empty, tmp_path / "r"), progress=False)
    # Layers are checked against the model (2 layers: hidden states 0..2) before any record.
    results = tmp_path / "layers"
    with pytest.raises(ConfigError, match=r"\[5\] outside the model's hidden states 0..2"):
        run_sweep(sweep_config(series, results, ["tasks=('pos',)", "layers=(0, 5)"]), progress=False)
    assert not (results / "sweep.json").exists() and read_results(results).empty


def test_record_of_a_sweep_that_wrote_nothing_is_replaced(series, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    (results / "sweep.json").write_text(json.dumps({"config_hash": "0123456789abcdef", "checkpoints": {}}))
    cfg = sweep_config(series, results, ["tasks=('bpc',)", "bpc.langs=('en',)"])
    run_sweep(cfg, progress=False)  # a failed start left a record of another config, no results
    assert json.loads((results / "sweep.json").read_text())["config_hash"] != "0123456789abcdef"
    assert set(read_results(results)["step"]) == {0, 1000, 20000, 300000}


def test_one_results_dir_collects_checkpoints_given_one_at_a_time(series, tmp_path):
    results = tmp_path / "r"
    for step, name in ((1000, "checkpoint_1k"), (20000, "checkpoint_20k")):
        run_sweep(sweep_config(series, results, [
            "tasks=('bpc',)", "bpc.langs=('en',)", "checkpoints.dir=''", "checkpoints.random_init=False",
            f"checkpoints.paths=('{step}={series / name}',)"]), progress=False)
    assert set(read_results(results)["step"]) == {1000, 20000}
    assert set(json.loads((results / "sweep.json").read_text())["checkpoints"]) == {"1000", "20000"}


def test_language_without_train_split_trains_on_dev_with_a_holdout(series, tmp_path):
    import shutil

    from xlmr_dynamics.demo import demo_data_root

    root = tmp_path / "data"
    shutil.copytree(demo_data_root() / "ud", root / "ud")
    (root / "ud" / "UD_English-EWT" / "en_ewt-ud-train.conllu").unlink()
    base = ["tasks=('pos',)", "ud.langs=('en',)", "ud.cross_langs=('en',)", f"data_root={root}",
            "checkpoints.random_init=False", "baselines.majority=False"]
    with pytest.raises(ConfigError, match="ud.dev_as_train=True would train on dev"):
        run_sweep(sweep_config(series, tmp_path / "r0", base), progress=False)
    results = tmp_path / "r"
    run_sweep(sweep_config(series, results, base + ["ud.dev_as_train=True", "probe.max_epochs=3",
                                                     "probe.patience=1"]), progress=False)
    df = read_results(results)
    assert set(df["train_lang"]) == {"en"} and set(df["step"]) == {1000, 20000, 300000}
    assert read_failures(results).empty


def test_config_changed_under_same_results_dir_is_refused(series, tmp_path):
    results = tmp_path / "r"
    run_sweep(sweep_config(series, results, ["tasks=('bpc',)", "bpc.langs=('en',)"]), progress=False)
    with pytest.raises(ConfigError, match="another config"):
        run_sweep(sweep_config(series, results, ["tasks=('bpc',)", "bpc.langs=('fr',)"]), progress=False)


@pytest.mark.parametrize("broken,steps", [("checkpoint_20k", {0, 1000, 300000}),
                                          ("checkpoint_1k", {0, 20000, 300000})])
def test_broken_checkpoint_is_reported_and_skipped(series, tmp_path, broken, steps):
    import shutil

    d = tmp_path / "series"
    shutil.copytree(series, d)
    (d / broken / "config.json").write_text("{broken")
    results = tmp_path / "r"
    run_sweep(sweep_config(d, results, ["tasks=('bpc',)", "bpc.langs=('en',)"]), progress=False)
    df = read_results(results)
    assert set(df["step"]) == steps  # the first checkpoint too: the architecture comes from the next
    fails = read_failures(results)
    assert list(fails["checkpoint"]) == [broken] and broken in fails["message"].iloc[0]
    # Repaired, a rerun fills in that step and its failure record goes.
    shutil.copy(series / broken / "config.json", d / broken / "config.json")
    run_sweep(sweep_config(d, results, ["tasks=('bpc',)", "bpc.langs=('en',)"]), progress=False)
    assert set(read_results(results)["step"]) == {0, 1000, 20000, 300000}
    assert read_failures(results).empty


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_loopback_sweep_equals_single_process(series, tmp_path):
    cache = tmp_path / "jax_cache"
    # Up to 8 epochs with patience 1: probes stop early, and the two processes (layers [0, 1] and
    # [2]) must stop at the same epoch as one process training all layers does.
    extra = ["tasks=('pos', 'align', 'bpc')", "probe.max_epochs=8", "probe.patience=1",
             "probe.learning_rate=0.05"]
    _run(series, tmp_path / "single", cache, extra)
    port = str(_free_port())
    for name in ("multi", "multi_cached"):  # the second run reads the features the first one cached
        port = str(_free_port())
        procs = [_start(series, tmp_path / name, cache, extra + [f"extract.cache_dir={tmp_path / 'feats'}"],
                        XD_PROCS="2", XD_PORT=port, XD_PID=str(i)) for i in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-4000:]
    single, multi = _table(tmp_path / "single"), _table(tmp_path / "multi")
    probe_rows = single[(single.task == "pos") & (single.layer >= 0)]
    epochs = {json.loads(e)["epochs_run"] for e in probe_rows["extra"]}
    assert min(epochs) < 8, epochs  # some probes stopped early (so the agreement is exercised)
    pd.testing.assert_frame_equal(multi.drop(columns="value"), single.drop(columns="value"))
    np.testing.assert_allclose(multi["value"], single["value"], atol=1e-4)
    assert "reused" in (tmp_path / "multi_cached" / "sweep.1.log").read_text()
    pd.testing.assert_frame_equal(_table(tmp_path / "multi_cached").drop(columns=["run_id", "config_hash"],
                                                                        errors="ignore"),
                                  multi.drop(columns=["run_id", "config_hash"], errors="ignore"))


def test_feature_cache_reused_across_sweeps_bf16(series, tmp_path, monkeypatch):
    from xlmr_dynamics import extract

    extra = ["tasks=('pos', 'xnli')", f"extract.cache_dir={tmp_path / 'feats'}", "extract.out_dtype='bfloat16'"]
    run_sweep(sweep_config(series, tmp_path / "a", extra), progress=False)
    files = sorted((tmp_path / "feats").glob("*.npy"))
    assert files and not list((tmp_path / "feats").glob("*.tmp"))

    def no_extraction(*a, **k):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(extract, "extract_features", no_extraction)
    run_sweep(sweep_config(series, tmp_path / "b", extra), progress=False)
    assert sorted((tmp_path / "feats").glob("*.npy")) == files
    pd.testing.assert_frame_equal(_table(tmp_path / "b"), _table(tmp_path / "a"))
    # Anything that changes the features misses the cache: pooling, layers, stored dtype.
    for change in ("extract.word_pooling='mean'", "layers=(0, 1)", "extract.skip_space_piece=False"):
        with pytest.raises(AssertionError, match="from the cache"):
            run_sweep(sweep_config(series, tmp_path / change.split("=")[0], extra + [change]),
                      progress=False)
    with pytest.raises(AssertionError, match="from the cache"):
        run_sweep(sweep_config(series, tmp_path / "f32", extra + ["extract.out_dtype='float32'"]),
                  progress=False)


def test_a_step_whose_weights_changed_since_its_results_is_refused(series, tmp_path, monkeypatch):
    import shutil

    from xlmr_dynamics import sweep as SW

    d = tmp_path / "series"
    shutil.copytree(series, d)
    results = tmp_path / "r"
    extra = ["tasks=('bpc',)", "bpc.langs=('en', 'fr')", "checkpoints.random_init=False"]
    real_run_unit = SW.run_unit

    def killed_at_fr(run, unit):
        if unit.eval_langs == ("fr",) and run.encoder is not None:
            raise KeyboardInterrupt("killed")
        return real_run_unit(run, unit)

    monkeypatch.setattr(SW, "run_unit", killed_at_fr)
    with pytest.raises(KeyboardInterrupt):  # step 1000: en done, fr not
        run_sweep(sweep_config(d, results, extra), progress=False)
    monkeypatch.setattr(SW, "run_unit", real_run_unit)
    shutil.rmtree(d / "checkpoint_1k")  # re-downloaded as other weights
    shutil.copytree(series / "checkpoint_20k", d / "checkpoint_1k")
    with pytest.raises(ConfigError, match=r"step 1000\) changed since results were written"):
        run_sweep(sweep_config(d, results, extra), progress=False)


def test_cli_one_checkpoint_commands_print_tables(series, tmp_path, capsys):
    from xlmr_dynamics.cli import main
    from xlmr_dynamics.demo import demo_data_root

    ckpt = series / "checkpoint_300k"
    common = ["--checkpoint", str(ckpt), "--step", "300000", "--tokenizer", str(series / "sentencepiece.bpe.model"),
              "--data-root", str(demo_data_root()), "--quiet"]
    main(["probe", "--task", "pos", "--train-lang", "en", "--eval-langs", "en,fr", "--results-dir",
          str(tmp_path / "p"), *common, "--config.ud.max_train_sentences=60", "--config.probe.max_epochs=1",
          "--config.seeds=(0,)"])
    out = capsys.readouterr().out
    assert "pos" in out and "accuracy" in out and "macro_f1" in out
    df = read_results(tmp_path / "p")
    assert set(df[df.step == 300000]["eval_lang"]) == {"en", "fr"}
    assert (tmp_path / "p" / "results.csv").exists()
    main(["align", "--pairs", "fr", "--results-dir", str(tmp_path / "a"), *common, "--config.align.max_pairs=10"])
    assert "aer" in capsys.readouterr().out
    main(["bpc", "--langs", "fr", "--results-dir", str(tmp_path / "b"), *common,
          "--config.bpc.pattern={lang}.heldout.txt", "--config.bpc.dir=text", "--config.bpc.max_sentences=5"])
    assert "bpc" in capsys.readouterr().out
    main(["report", str(tmp_path / "p")])
    assert (tmp_path / "p" / "report" / "index.html").exists()


def test_params_hash_is_stable_across_saves_and_sees_changes(series, tmp_path):
    from xlmr_dynamics.convert import load_encoder
    from xlmr_dynamics.sweep import params_hash

    enc = load_encoder(series / "checkpoint_1k")
    save_converted(tmp_path / "again", enc.config, enc.params)  # orbax writes different file names
    assert params_hash(load_encoder(tmp_path / "again")) == params_hash(enc)
    changed = jax.tree.map(lambda x: x, enc.params)
    changed["lm_head"]["bias"] = np.asarray(changed["lm_head"]["bias"]).copy()
    changed["lm_head"]["bias"][0] += 1e-3
    assert params_hash(M.Encoder(enc.config, changed)) != params_hash(enc)


def test_inputs_cut_to_the_model_length_are_logged(caplog):
    from xlmr_dynamics.sweep import _log_cuts

    with caplog.at_level("WARNING", logger="xlmr_dynamics.sweep"):
        _log_cuts(("xnli", "en", "test"), {"pairs": 50, "truncated_pairs": 3}, ("truncated_pairs",))
        _log_cuts(("ud", "en", "test"), {"sentences": 9, "truncated_words": 0}, ("truncated_words",))
    assert "xnli/en/test" in caplog.text and "'truncated_pairs': 3" in caplog.text and "'pairs': 50" in caplog.text
    assert "ud/en/test" not in caplog.text


def test_sweep_pos_rows_equal_an_unbatched_computation_from_public_pieces(series, tmp_path):
    """The sweep packs, buckets, shards and scatters features and joins them with labels; the
    reference runs each encoded segment alone through the model and pools in numpy."""
    from xlmr_dynamics import data as D
    from xlmr_dynamics import sweep as SW
    from xlmr_dynamics import tasks as T
    from xlmr_dynamics.convert import load_encoder
    from xlmr_dynamics.demo import demo_data_root

    ckpt = series / "checkpoint_1k"
    cfg = sweep_config(series, tmp_path / "r", [
        "tasks=('pos',)", "checkpoints.dir=''", f"checkpoints.paths=('1000={ckpt}',)",
        "checkpoints.random_init=False", "baselines.majority=False"])
    df = read_results(run_sweep(cfg, progress=False))

    enc, tok = load_encoder(ckpt), load_tokenizer(series / "sentencepiece.bpe.model")
    max_len = min(enc.config.max_seq_len, max(cfg.extract.seq_buckets))

    def split(lang, name, cap):
        sents = D.find_and_load_ud(demo_data_root() / "ud", lang, name)[:cap]
        encoded = D.encode_words(tok, [s.tokens for s in sents], max_len=max_len, skip_space_piece=True)
        out = np.full((enc.config.num_layers + 1, encoded.num_words, enc.config.hidden_size), np.nan, np.float32)
        for seg in encoded.segments:  # one segment at a time, padded to one shape (one compile)
            ids = np.full((1, max_len), enc.config.pad_token_id, np.int32)
            ids[0, :len(seg.ids)] = seg.ids
            hidden = np.asarray(enc.hidden_states(ids, (ids != enc.config.pad_token_id).astype(np.int32)))
            out[:, seg.word_id] = hidden[:, 0, seg.word_start]  # first (content) subword
        assert not np.isnan(out).any()
        return out, T.pos_examples(sents)

    train, dev = split("en", "train", 80), split("en", "dev", 40)
    evals = {"en": split("en", "test", 40), "fr": split("fr", "test", 40)}
    ref = T.run_probe_task("pos", train, evals, num_classes=len(D.UPOS_TAGS), cfg=SW._probe_config(cfg),
                           train_lang="en", dev=dev)
    got = {(r.eval_lang, r.layer, r.seed, r.metric): (r.value, r.n) for r in df.itertuples()}
    assert len(got) == len(ref) == 2 * 3 * 2 * 2  # eval langs x layers x seeds x metrics
    for r in ref:
        value, n = got[(r["eval_lang"], r["layer"], r["seed"], r["metric"])]
        assert n == r["n"]
        # Same features up to float rounding; a borderline example may flip after training.
        assert abs(value - r["value"]) <= 2.0 / n, (r, value)


def test_tfds_ud_source_gives_the_rows_of_the_conllu_files(series, tmp_path):
    """ud.dir = a TFDS source (ArrayRecord prepared from the same CoNLL-U files) -> the same results."""
    from xlmr_dynamics.data.tfds_ud import build_local_ud
    from xlmr_dynamics.demo import demo_data_root

    ewt = demo_data_root() / "ud" / "UD_English-EWT"
    build_local_ud({sp: ewt / f"en_ewt-ud-{sp}.conllu" for sp in ("train", "dev", "test")}, tmp_path / "tfds")
    base = ["tasks=('pos', 'arc_pred')", "ud.langs=('en',)", "ud.cross_langs=('en',)",
            "checkpoints.random_init=False", "baselines.majority=False"]
    run_sweep(sweep_config(series, tmp_path / "files", base), progress=False)
    run_sweep(sweep_config(series, tmp_path / "tfds_r", base + [
        "ud.dir=tfds:local_ud/ud", f"tfds_data_dir={tmp_path / 'tfds'}"]), progress=False)
    cols = ["step", "task", "train_lang", "eval_lang", "layer", "seed", "metric", "n"]
    a, b = (_table(tmp_path / r).sort_values(cols).reset_index(drop=True) for r in ("files", "tfds_r"))
    assert len(a) == len(b) > 0 and set(a["task"]) == {"pos", "arc_pred"}
    pd.testing.assert_frame_equal(a[cols], b[cols])
    np.testing.assert_allclose(b["value"], a["value"], atol=1e-6)
    assert (a["data_hash"] != b["data_hash"]).all()  # each names its own files

    # Not prepared under the given TFDS dir; a TFDS source for a directory-only task.
    with pytest.raises(ConfigError) as e:
        run_sweep(sweep_config(series, tmp_path / "bad", base + [
            "tasks=('pos', 'align')", "ud.dir=tfds:local_ud/ud", f"tfds_data_dir={tmp_path / 'none'}",
            "align.dir=tfds:wpt"]), progress=False)
    assert "tfds:local_ud/ud: not prepared under" in str(e.value)
    assert "align.dir='tfds:wpt': TFDS sources are for UD and XNLI only" in str(e.value)


def test_each_checkpoint_is_loaded_once_per_run(series, tmp_path, monkeypatch):
    """The first checkpoint, loaded at start-up for the series' architecture, is reused when it is
    the first one swept (no random-init units before it), not loaded again."""
    from xlmr_dynamics import sweep as SW

    loads = []
    real = SW._load_checkpoint
    monkeypatch.setattr(SW, "_load_checkpoint", lambda c, cfg, arch: loads.append(c.name) or real(c, cfg, arch))
    base = ["tasks=('bpc',)", "bpc.langs=('en',)", "baselines.majority=False"]
    run_sweep(sweep_config(series, tmp_path / "r", base + ["checkpoints.random_init=False"]), progress=False)
    assert loads == ["checkpoint_1k", "checkpoint_20k", "checkpoint_300k"]
    loads.clear()  # with random-init first, the kept encoder is dropped before random-init is built
    run_sweep(sweep_config(series, tmp_path / "r2", base), progress=False)
    assert loads == ["checkpoint_1k", "random-init", "checkpoint_1k", "checkpoint_20k", "checkpoint_300k"]
    assert set(read_results(tmp_path / "r2")["step"]) == {0, 1000, 20000, 300000}
