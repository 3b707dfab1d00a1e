"""The README's main job at CI size: pretrain -> sweep -> report, offline, deterministic."""


import pandas as pd
import pytest

from xlmr_dynamics import demo
from xlmr_dynamics import tokenizer as T
from xlmr_dynamics.cli import main
from xlmr_dynamics.config import load_config
from xlmr_dynamics.pretrain import PretrainError
from xlmr_dynamics.results import read_results


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    outs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(name)
        assert main(["demo", "--config", "demo:ci", "--out", str(out), "--quiet"]) == 0
        outs.append(out)
    return outs


def test_demo_learns_and_covers_every_task_checkpoint_and_layer(demo_runs):
    out = demo_runs[0]
    cfg = load_config("demo:ci")
    df = read_results(out / "results")
    steps = sorted(s for s in df["step"].unique() if s >= 0)
    assert steps[0] == 0 and len(steps) == cfg.pretrain.num_checkpoints + 1  # random init + series
    bpc = df[df.task == "bpc"].groupby("step")["value"].mean()
    assert bpc.loc[steps[-1]] < bpc.loc[steps[1]] < bpc.loc[0]  # MLM pretraining lowers bits per char
    layers = set(range(cfg.pretrain.num_layers + 1))
    for task in cfg.sweep.tasks:
        rows = df[(df.task == task) & (df.step >= 0)]
        for step in steps:
            got = set(rows[rows.step == step]["layer"])
            assert got == ({cfg.pretrain.num_layers} if task == "bpc" else layers), (task, step, got)
    pos = df[(df.task == "pos") & (df.metric == "accuracy") & (df.train_lang == df.eval_lang) & (df.step >= 0)]
    majority = df[(df.task == "pos") & (df.step == -1) & (df.metric == "accuracy")]["value"].max()
    assert pos[pos.step == steps[-1]]["value"].max() > majority  # probes beat the majority tag


def test_demo_report_files(demo_runs):
    report = demo_runs[0] / "report"
    html = (report / "index.html").read_text()
    for task in ("pos", "arc_pred", "arc_cls", "xnli", "align", "bpc"):
        png = report / f"curves_{task}.png"
        assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
        assert f"curves_{task}.png" in html
    for part in ("Acquisition", "best vs final", "transfer"):
        assert part.lower() in html.lower()


def test_same_seed_same_results_bitwise(demo_runs):
    a, b = (read_results(d / "results") for d in demo_runs)
    # run_id / config_hash / checkpoint_path name the output directory, which differs by design;
    # everything else (values, checkpoint content hashes, data hashes) must be identical.
    cols = [c for c in a.columns if c not in ("checkpoint_path", "run_id", "config_hash")]
    assert (a[a["step"] > 0]["checkpoint_hash"].str.len() == 16).all()
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)


def test_tokenizer_is_retrained_when_its_settings_change(tmp_path, monkeypatch):
    text = tmp_path / "text"
    text.mkdir()
    for lang in ("en", "fr"):
        src = demo.demo_data_root() / "text" / f"{lang}.train.txt"
        (text / f"{lang}.train.txt").write_text("\n".join(src.read_text().splitlines()[:300]))
    tiny = ["pretrain.hidden_size=16", "pretrain.num_layers=1", "pretrain.num_heads=2",
            "pretrain.intermediate_size=32", "pretrain.seq_len=16", "pretrain.batch_size=8",
            "pretrain.total_steps=2", "pretrain.warmup_steps=0", "pretrain.num_checkpoints=1"]

    def cfg(*overrides):
        return load_config("demo:ci", [f"out_dir={tmp_path / 'out'}", f"pretrain_data.dir={text}",
                                       "pretrain_data.langs=en,fr", *tiny, *overrides])

    def vocab(c):
        return T.load_tokenizer(demo.ensure_tokenizer(c, demo._text_by_lang(c))).vocab_size

    assert len(demo.pretrain_from_config(cfg("tokenizer.vocab_size=300"))) == 1
    trained, orig = [], T.train_sentencepiece
    monkeypatch.setattr(T, "train_sentencepiece", lambda *a, **k: trained.append(a[2]) or orig(*a, **k))
    assert vocab(cfg("tokenizer.vocab_size=300")) == 302 and trained == []  # same settings: reused
    assert vocab(cfg("tokenizer.vocab_size=400")) == 402 and trained == [400]
    # The old checkpoints were made with the old tokenizer: pretraining refuses to mix them.
    with pytest.raises(PretrainError, match="different run"):
        demo.pretrain_from_config(cfg("tokenizer.vocab_size=400"))
    (text / "fr.train.txt").write_text("\n".join((text / "fr.train.txt").read_text().splitlines()[:200]))
    vocab(cfg("tokenizer.vocab_size=400"))
    vocab(cfg("tokenizer.vocab_size=400", "seed=1"))
    (tmp_path / "out" / "tokenizer" / demo.TOKENIZER_SETTINGS).unlink()  # made before settings were kept
    vocab(cfg("tokenizer.vocab_size=400", "seed=1"))
    assert trained == [400] * 4
