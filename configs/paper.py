"""The study: XLM-R_replica's 39 checkpoints x six tasks x our default language lists.

Run (one GPU):  xlmr-dynamics sweep --config paper --config.checkpoints.dir=/data/xlmr_across_time \
                    --config.data_root=/data/probing
     (TPU pod): the same command on every host, with --config tpu_pod (see configs/tpu_pod.py).
Expect: 39 checkpoints (+ random-init step 0) x (44 UD langs x 3 tasks + 15 XNLI + 6 pairs + 18 BPC)
units; on one A100-class GPU, hours. Then: xlmr-dynamics report results/paper

Checkpoint series (Blevins et al. 2022, https://nlp.cs.washington.edu/xlmr-across-time): fairseq
`model.pt` files of an XLM-R Base replica (12 layers, 768 hidden, 250,002 vocab) with `dict.txt` and
`sentencepiece.bpe.model`. Put each checkpoint in the directory as an entry whose name ends in its
step: `5k/model.pt` ... `1500k/model.pt` (the naming one codebase uses: xlmr_across_time/{5k,50k,...})
or `checkpoint_<epoch>_<updates>.pt` as fairseq writes them; `sentencepiece.bpe.model` and
`dict.txt` next to them. The step schedule below is our inference (every 5k to 50k, then every 50k
to 1.5M = 39); it is not confirmed against the release page, so it is only checked, never assumed.
"""

from pathlib import Path

from xlmr_dynamics.config import load_module


def get_config():
    c = load_module(Path(__file__).with_name("default.py")).get_config()
    langs = load_module(Path(__file__).with_name("languages.py"))
    c.name = "paper"
    c.ud.langs = langs.UD_44
    c.ud.cross_langs = langs.CROSS_18
    c.xnli.langs = langs.XNLI_15
    c.xnli.cross_langs = langs.XNLI_15
    c.align.pairs = langs.ALIGN_6
    c.results_dir = "results/paper"
    c.checkpoints.expected_steps = tuple(range(5000, 50001, 5000)) + tuple(range(100000, 1500001, 50000))
    c.extract.out_dtype = "bfloat16"  # 13 x 768 x 2 B per word keeps all test sets in host memory
    c.ud.max_train_sentences = 4000  # OPEN: a cap keeps languages comparable and the sweep tractable
    c.ud.max_eval_sentences = 2000
    c.xnli.max_eval = 5010
    return c
