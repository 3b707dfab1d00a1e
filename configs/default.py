"""Default sweep config: every key, documented, with its default. Other configs override a few keys.

Run:   xlmr-dynamics sweep --config configs/default.py --config.checkpoints.dir=/path/to/series \
           --config.data_root=/path/to/data
Expect: one results table under `results_dir`, then `xlmr-dynamics report <results_dir>`.

Every OPEN choice of the paper (../shared/docs/method.md) is a key here; the comment says what it
defaults to and why.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.name = "default"
    c.results_dir = "results/default"
    c.seed = 0  # every random choice below derives from this or from its own seed key

    # Checkpoint series: a directory of step-named checkpoints (any format load_encoder reads; the
    # step is the last number in the entry's name, with k/M suffixes: "5k", "step_0005000",
    # "checkpoint_3_5000.pt"), and/or explicit "STEP=PATH" strings.
    c.checkpoints = ml_collections.ConfigDict()
    c.checkpoints.dir = ""
    c.checkpoints.paths = ()
    c.checkpoints.tokenizer = ""  # sentencepiece.bpe.model / HF dir; "" = look next to the checkpoints
    c.checkpoints.random_init = True  # baseline "step 0": a random model of the same architecture
    c.checkpoints.random_init_seed = 0
    c.checkpoints.num_heads = 0  # only for fairseq files without hyperparameters (0: hidden // 64)
    c.checkpoints.dtype = "float32"  # compute dtype; "bfloat16" on accelerators
    c.checkpoints.expected_steps = ()  # if set, the sweep warns when the directory's steps differ

    c.tasks = ("pos", "arc_pred", "arc_cls", "xnli", "align", "bpc")
    c.layers = ()  # hidden-state indices to probe; () = all (0 = embeddings ... L = last layer)
    c.seeds = (0, 1, 2, 3, 4)  # probe reruns [T: 5 in the paper]

    # Where data lives. Relative paths below are resolved against data_root.
    c.data_root = ""
    # ud.dir / xnli.dir may name a TFDS source instead ("tfds:universal_dependencies" with
    # ud.treebanks.LANG = its config, e.g. en_ewt; "tfds:xnli"), read from ArrayRecord files
    # prepared under this TFDS data dir ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets).
    c.tfds_data_dir = ""

    c.extract = ml_collections.ConfigDict()
    c.extract.word_pooling = "first"  # OPEN: first subword (default), "mean" or "last"
    # Each word is tokenized alone, so it starts with SentencePiece's "▁"; where that does not merge
    # with the word's first characters (most Chinese/Japanese words) it is a bare "▁" piece shared by
    # all such words. True: pooling starts after it (the word's first content piece).
    c.extract.skip_space_piece = True
    c.extract.sentence_pooling = "first"  # OPEN (XNLI): "<s>" vector (default) or "mean" over the pair
    c.extract.tokens_per_batch = 8192
    c.extract.seq_buckets = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # one compile each
    c.extract.pack = True  # pack short sequences into shared rows (block-diagonal attention): ~no padding
    c.extract.pack_len = 128  # row length of packed batches; longer sequences use seq_buckets
    # Last batch of each shape shrunk to a power-of-two row count: on small splits (UD test sets)
    # a bucket holding a few long sentences costs a few rows, not a full batch of padding; at most
    # log2(rows) extra compiled shapes per bucket, shared by all datasets and checkpoints.
    c.extract.shrink_last = True
    c.extract.out_dtype = "float32"  # "bfloat16" halves host memory of cached features
    c.extract.cache_dir = ""  # "" = no on-disk feature cache

    c.ud = ml_collections.ConfigDict()
    c.ud.dir = "ud"  # a UD release tree (UD_*/*.conllu), or a TFDS source (see tfds_data_dir)
    c.ud.langs = ("en", "de", "fr", "es", "ru", "zh", "ja", "ar", "hi", "fi", "tr", "ko", "el", "bg", "ur")
    c.ud.cross_langs = ("en", "de", "fr", "es", "ru", "zh", "ja", "ar", "hi", "fi", "tr", "ko", "el", "bg", "ur")
    c.ud.treebanks = ml_collections.ConfigDict()  # lang -> treebank dir (TFDS: config) name; unset = registry default
    c.ud.train_split = "train"
    c.ud.dev_split = "dev"
    c.ud.test_split = "test"
    c.ud.dev_as_train = False  # if a language has no train split, train on 90% of dev, select on the other 10%
    c.ud.max_train_sentences = 0  # OPEN: cap per language so languages are comparable; 0 = all
    c.ud.max_eval_sentences = 0
    c.ud.strip_subtypes = True  # nmod:poss -> nmod for arc classification
    c.ud.strict = True
    c.arc = ml_collections.ConfigDict()
    c.arc.neg_ratio = 1.0  # OPEN: sampled non-arcs per gold arc (Liu et al. 2019 style)
    c.arc.seed = 0

    c.xnli = ml_collections.ConfigDict()
    c.xnli.dir = "xnli"
    c.xnli.langs = ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")
    c.xnli.cross_langs = c.xnli.langs
    c.xnli.train_split = "dev"  # OPEN: MultiNLI train is not available here; dev (2,490) trains, test evaluates
    c.xnli.eval_split = "test"
    c.xnli.max_train = 0
    c.xnli.max_eval = 0

    c.align = ml_collections.ConfigDict()
    c.align.dir = "alignment"  # <dir>/en-<xx>/{en.txt, xx.txt, gold.en-xx.txt}
    c.align.pairs = ("cs", "de", "fa", "fr", "hi", "ro")  # en -> 6 (SimAlign's test sets)
    c.align.method = "argmax"  # OPEN: "argmax" (SimAlign's best), "itermax" or "match"
    c.align.pooling = "mean"  # word vectors = mean of subwords; "subword" = subword-level alignment
    c.align.distortion = 0.0
    c.align.max_pairs = 0

    c.bpc = ml_collections.ConfigDict()
    c.bpc.dir = "text/tatoeba"
    c.bpc.pattern = "tatoeba.{iso3}-eng.{iso3}"  # file name under dir; {lang} = ISO 639-1, {iso3} = 639-3
    c.bpc.files = ml_collections.ConfigDict({"en": "tatoeba.fra-eng.eng"})  # per-language file overrides
    c.bpc.langs = ("en", "de", "fr", "es", "ru", "zh", "ja", "ar", "hi", "fi", "tr", "ko", "el", "bg", "ur",
                   "vi", "th", "sw")
    c.bpc.scheme = "each"  # OPEN: mask each subword once ("each") or a seeded 15% sample ("sample")
    c.bpc.mask_rate = 0.15
    c.bpc.max_sentences = 1000

    # Probe training (OPEN in the paper; method.md's suggested defaults).
    c.probe = ml_collections.ConfigDict()
    c.probe.probe = "linear"  # or "mlp"
    c.probe.hidden_size = 256
    c.probe.learning_rate = 1e-3
    c.probe.batch_size = 64
    c.probe.max_epochs = 50
    c.probe.patience = 3
    c.probe.weight_decay = 0.0
    c.probe.max_train = 0  # cap on training examples per language (0 = all)
    c.probe.standardize = True
    c.probe.shuffle_per_seed = True  # False: one minibatch order for all seeds (~2x faster; reruns differ only in init)
    c.probe.devices = 1  # local devices to spread the layers over (0 = all); pays on GPU/TPU hosts, not on CPU

    c.baselines = ml_collections.ConfigDict()
    c.baselines.majority = True  # majority-label rows per (task, language)

    c.distributed = ml_collections.ConfigDict()
    c.distributed.coordinator_address = ""  # "" = auto-detect (TPU, Slurm, Open MPI) or single process
    c.distributed.num_processes = 0
    c.distributed.process_id = -1

    c.report = ml_collections.ConfigDict()
    c.report.threshold = 0.98
    c.report.reference = "best"  # "best" or "final": sources disagree on which the paper used
    return c
