"""The offline demo: pretrain a tiny XLM-R replica on shipped text, sweep all six tasks, report.

Run:    xlmr-dynamics demo                  (this config; `--config demo:ci` is the CI-sized variant)
Expect: on a 2-core CPU about 8 minutes (measured 9m10s before trimming BPC to 8 languages and probes
        to 6 epochs: pretraining 2.4 min, sweep 73 s for step 0 (compiles) + ~39 s per checkpoint); `xlmr_dynamics_demo/report/index.html` shows BPC
        falling over checkpoints and probe curves moving, for every plot of the real report.
Data:   xlmr_dynamics/demo_data (Tatoeba text, CC BY-SA UD subsets, XNLI subset (CC BY-NC 4.0),
        WPT en-fr/en-ro gold alignments); see its README for sources and licences.
"""

from pathlib import Path

import ml_collections

from xlmr_dynamics.config import load_module

TEXT_LANGS = ("ar", "bg", "de", "el", "en", "es", "fi", "fr", "hi", "ja", "ko", "ro", "ru", "tr", "vi", "zh")


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.out_dir = "xlmr_dynamics_demo"
    c.seed = 0
    c.data_root = ""  # "" = the package's demo_data

    c.tokenizer = ml_collections.ConfigDict()
    c.tokenizer.vocab_size = 4000

    c.pretrain_data = ml_collections.ConfigDict()
    c.pretrain_data.dir = ""  # "" = demo_data/text
    c.pretrain_data.langs = TEXT_LANGS
    c.pretrain_data.suffix = ".train.txt"

    # Fields of xlmr_dynamics.pretrain.PretrainConfig (unset ones keep its defaults).
    c.pretrain = ml_collections.ConfigDict()
    c.pretrain.hidden_size = 128
    c.pretrain.num_layers = 4
    c.pretrain.num_heads = 4
    c.pretrain.intermediate_size = 512
    c.pretrain.seq_len = 64
    c.pretrain.batch_size = 32
    c.pretrain.total_steps = 600
    c.pretrain.warmup_steps = 60
    c.pretrain.lr = 1e-3
    c.pretrain.num_checkpoints = 8
    c.pretrain.first_checkpoint = 10
    c.pretrain.save_init = False  # the sweep adds its own random-init step 0 baseline
    c.pretrain.seed = 0

    s = load_module(Path(__file__).with_name("default.py")).get_config()
    s.name = "demo"
    s.checkpoints.random_init = True
    s.seeds = (0, 1)
    s.ud.dir = "ud"
    s.ud.langs = ("en", "fr", "de", "ru", "zh")
    s.ud.cross_langs = s.ud.langs
    s.ud.max_train_sentences = 600
    s.ud.max_eval_sentences = 300
    s.xnli.dir = "xnli"
    s.xnli.langs = ("en", "fr", "de", "ru", "zh")
    s.xnli.cross_langs = s.xnli.langs
    s.align.dir = "alignment"
    s.align.pairs = ("fr", "ro")
    s.bpc.dir = "text"
    s.bpc.langs = ("ar", "de", "el", "en", "hi", "ja", "ru", "zh")  # one per script family
    s.bpc.pattern = "{lang}.heldout.txt"
    s.bpc.files = ml_collections.ConfigDict()
    s.bpc.max_sentences = 100
    s.probe.max_epochs = 6
    s.probe.patience = 2
    s.probe.batch_size = 128
    s.extract.tokens_per_batch = 4096
    s.extract.seq_buckets = (32, 64, 128)
    c.sweep = s

    if arg == "ci":  # small enough for CI (< 5 minutes on 2 cores)
        c.out_dir = "xlmr_dynamics_demo_ci"
        c.pretrain_data.langs = ("en", "fr", "de", "ro", "ru", "zh")
        c.pretrain.hidden_size = 64
        c.pretrain.num_layers = 2
        c.pretrain.intermediate_size = 128
        c.pretrain.total_steps = 120
        c.pretrain.warmup_steps = 12
        c.pretrain.num_checkpoints = 3
        c.tokenizer.vocab_size = 2000
        s.seeds = (0,)
        s.ud.langs = ("en", "fr")
        s.ud.cross_langs = ("en", "fr")
        s.ud.max_train_sentences = 200
        s.ud.max_eval_sentences = 100
        s.xnli.langs = ("en", "fr")
        s.xnli.cross_langs = ("en", "fr")
        s.xnli.max_train = 200
        s.xnli.max_eval = 200
        s.align.max_pairs = 60
        s.bpc.langs = ("en", "fr", "de")
        s.bpc.max_sentences = 50
        s.probe.max_epochs = 4
    elif arg not in (None, ""):
        raise ValueError(f"configs/demo.py: unknown variant {arg!r} (known: ci)")
    return c
