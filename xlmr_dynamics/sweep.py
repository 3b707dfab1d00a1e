"""Checkpoint sweeps: every task x language x layer x seed on every checkpoint, crash-safe and resumable.

Owns: checkpoint discovery (`discover_checkpoints`), config validation before any work
(`validate_config`, all problems listed at once), the unit plan, and `run_sweep`.

Flow per checkpoint: load once; for each dataset needed by an unfinished unit, extract features once
(shared by POS, arc prediction and arc classification); run each unit; append its rows atomically to
the results store (`results.ResultsStore`). A unit is one vmapped call: (task, train language) for
probes (all layers x seeds x eval languages), (align, pair) and (bpc, language) for the unsupervised
tasks. Killing the process at any point and rerunning the same command skips finished units.

Baselines: a randomly initialised model of the same architecture is swept as step 0, and majority
label rows (per task and language) are written once with `checkpoint="majority"`, `step=-1`.

Multi-host: every process runs this same function; each reads only its share of every dataset's
batches; the pooled features are gathered to every host; each process trains the probes of its own
contiguous block of layers (early stopping agreed between processes every epoch, so results equal
one process's) and the rows are gathered; with fewer layers than processes every host trains
every layer. Only process 0 writes results (the done-unit list is broadcast from process 0).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from tqdm.auto import tqdm

from xlmr_dynamics import __version__
from xlmr_dynamics import model as M
from xlmr_dynamics import sharding as S
from xlmr_dynamics.config import ConfigError
from xlmr_dynamics.data.tfds_source import is_tfds, tfds_name

log = logging.getLogger("xlmr_dynamics.sweep")

PROBE_TASKS = ("pos", "arc_pred", "arc_cls", "xnli")
UD_TASKS = ("pos", "arc_pred", "arc_cls")
ALL_TASKS = PROBE_TASKS + ("align", "bpc")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    step: int
    name: str
    path: Path | None  # None: random initialisation (baseline step 0)


_STEP_RE = re.compile(r"(\d+)([kKmM]?)")


def step_from_name(name: str) -> int | None:
    """The training step encoded in a checkpoint name: the last number, with k/M suffixes."""
    found = _STEP_RE.findall(Path(name).stem if name.endswith((".pt", ".bin")) else name)
    if not found:
        return None
    digits, suffix = found[-1]
    return int(digits) * {"": 1, "k": 1000, "m": 1_000_000}[suffix.lower()]


def discover_checkpoints(cfg) -> list[Checkpoint]:
    """Checkpoints named by the config, sorted by step (step 0 = random init when configured)."""
    found: dict[int, Checkpoint] = {}
    if cfg.checkpoints.dir:
        root = Path(cfg.checkpoints.dir)
        if not root.is_dir():
            raise ConfigError(f"checkpoints.dir {root} is not a directory")
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or entry.suffix in (".json", ".txt", ".model", ".log"):
                continue
            step = step_from_name(entry.name)
            if step is None:
                continue
            if step in found:
                raise ConfigError(f"checkpoints.dir {root}: two entries for step {step}: "
                                  f"{found[step].path.name} and {entry.name}")
            found[step] = Checkpoint(step, entry.name, entry)
    for spec in cfg.checkpoints.paths:
        step_s, sep, path = str(spec).partition("=")
        if not sep or not step_s.strip().isdigit():
            raise ConfigError(f"checkpoints.paths entry {spec!r} is not STEP=PATH")
        p = Path(path)
        found[int(step_s)] = Checkpoint(int(step_s), p.name, p)
    ckpts = [found[s] for s in sorted(found)]
    if cfg.checkpoints.random_init and 0 not in found and ckpts:
        ckpts.insert(0, Checkpoint(0, "random-init", None))
    return ckpts


def params_hash(encoder: M.Encoder) -> str:
    """sha256 of the architecture and every weight's bytes, in tree order (16 hex chars).

    Hashing the loaded weights, not the files, is stable across formats and re-saves (orbax's OCDBT
    names its files randomly) and still catches a re-downloaded or corrupted checkpoint.
    """
    h = hashlib.sha256(json.dumps(encoder.config.to_dict(), sort_keys=True).encode())
    for path, leaf in jax.tree_util.tree_flatten_with_path(encoder.params)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(S.to_host(leaf)).tobytes())
    return h.hexdigest()[:16]


def _log_cuts(key: tuple, stats: dict, fields: tuple[str, ...]) -> None:
    """Logs (to the sweep log) how many inputs of a dataset did not fit the model's length."""
    cut = {f: stats[f] for f in fields if stats.get(f)}
    if cut:
        log.warning("%s: inputs longer than the model's max length: %s (of %s)", "/".join(key), cut,
                    {k: v for k, v in stats.items() if k in ("sentences", "words", "pairs")})


def sweep_config_hash(cfg) -> str:
    """Hash of everything that changes results (not paths of outputs, report or process settings)."""
    d = cfg.to_dict()
    # tfds_data_dir: a location (added after data_root); the data's content is in each row's data_hash.
    for k in ("results_dir", "report", "distributed", "name", "tfds_data_dir"):
        d.pop(k, None)
    d.get("extract", {}).pop("cache_dir", None)
    # Which checkpoints are swept is not a setting of the results: each step's weights are pinned
    # by their own content hash in sweep.json, so one results dir can collect more checkpoints.
    for k in ("dir", "paths", "expected_steps"):
        d.get("checkpoints", {}).pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Unit:
    """One atomic piece of results: the rows of one vmapped call."""

    task: str
    train_lang: str  # "" for bpc
    eval_langs: tuple[str, ...]

    def key(self, ckpt: Checkpoint) -> str:
        return f"step={ckpt.step}|{self.task}|{self.train_lang}|{','.join(self.eval_langs)}"


def _evals(lang: str, cross: tuple[str, ...]) -> tuple[str, ...]:
    return (lang,) + tuple(x for x in cross if x != lang) if lang in cross else (lang,)


def plan_units(cfg) -> list[Unit]:
    """Units of one checkpoint, in a fixed order (the same on every host).

    UD tasks are grouped by training language so that its train/dev features can be dropped as
    soon as its last unit is done.
    """
    units: list[Unit] = []
    ud_tasks = [t for t in UD_TASKS if t in cfg.tasks]
    for lang in cfg.ud.langs if ud_tasks else ():
        units += [Unit(t, lang, _evals(lang, tuple(cfg.ud.cross_langs))) for t in ud_tasks]
    if "xnli" in cfg.tasks:
        units += [Unit("xnli", lang, _evals(lang, tuple(cfg.xnli.cross_langs))) for lang in cfg.xnli.langs]
    if "align" in cfg.tasks:
        units += [Unit("align", "en", (xx,)) for xx in cfg.align.pairs]
    if "bpc" in cfg.tasks:
        units += [Unit("bpc", "", (lang,)) for lang in cfg.bpc.langs]
    return units


# ------------------------------------------------------------------------------ data access ----


def _resolve(cfg, rel: str) -> Path | str:
    """A data path of the config, relative ones under `data_root`; `tfds:` sources unchanged."""
    if is_tfds(rel):
        return rel
    p = Path(rel)
    return p if p.is_absolute() or not cfg.data_root else Path(cfg.data_root) / p


def _tfds_dir(cfg) -> Path | None:
    """TFDS data dir of `tfds:` UD/XNLI sources (`tfds_data_dir`; "" = TFDS's default)."""
    d = cfg.get("tfds_data_dir", "")
    return _resolve(cfg, d) if d else None


def _data_fingerprint(cfg, source: str) -> str:
    """Names and sizes of the files behind a data source (a `tfds:` source: its dataset's
    prepared files under the TFDS data dir)."""
    if not is_tfds(source):
        return _dir_fingerprint(_resolve(cfg, source))
    root = _tfds_dir(cfg) or Path(os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets")
    return _dir_fingerprint(Path(root) / tfds_name(source).split("/")[0])


class SweepData:
    """Datasets of a sweep, loaded and tokenized once (checkpoint-independent), lazily.

    Holds, per (kind, lang, split): the examples, the encoded segments and this process's batches.
    """

    def __init__(self, cfg, tokenizer, *, mesh, max_len: int):
        from xlmr_dynamics import data as D

        self.cfg, self.tok, self.mesh, self.D = cfg, tokenizer, mesh, D
        self.max_len = min(max_len, max(cfg.extract.seq_buckets))
        self._cache: dict[tuple, Any] = {}

    def _batches(self, encoded):
        cfg = self.cfg
        return list(self.D.make_batches(
            encoded.segments, seq_buckets=tuple(cfg.extract.seq_buckets),
            tokens_per_batch=cfg.extract.tokens_per_batch,
            batch_multiple=S.local_batch_multiple(self.mesh),
            process_index=jax.process_index(), process_count=jax.process_count(),
            pack=cfg.extract.pack, pack_len=min(cfg.extract.pack_len, self.max_len),
            shrink_last=cfg.extract.shrink_last))

    def ud(self, lang: str, split: str):
        """(sentences, batches, num_words) of a UD split, or None if the split does not exist."""
        key = ("ud", lang, split)
        if key not in self._cache:
            cfg = self.cfg
            tb = cfg.ud.treebanks.get(lang) if lang in cfg.ud.treebanks else None
            sents = self.D.find_and_load_ud(_resolve(cfg, cfg.ud.dir), lang, split, treebank=tb,
                                            strict=cfg.ud.strict, strip_subtypes=cfg.ud.strip_subtypes,
                                            data_dir=_tfds_dir(cfg))
            if sents is not None:
                cap = cfg.ud.max_train_sentences if split == cfg.ud.train_split else cfg.ud.max_eval_sentences
                if cap:
                    sents = sents[:cap]
                enc = self.D.encode_words(self.tok, [s.tokens for s in sents], max_len=self.max_len,
                                          skip_space_piece=cfg.extract.skip_space_piece)
                _log_cuts(key, enc.stats, ("truncated_words", "long_sentences"))
                self._cache[key] = (sents, self._batches(enc), enc.num_words)
            else:
                self._cache[key] = None
        return self._cache[key]

    def xnli(self, lang: str, split: str):
        key = ("xnli", lang, split)
        if key not in self._cache:
            cfg = self.cfg
            exs = self.D.load_xnli(_resolve(cfg, cfg.xnli.dir), lang, split, data_dir=_tfds_dir(cfg))
            cap = cfg.xnli.max_train if split == cfg.xnli.train_split else cfg.xnli.max_eval
            if cap:
                exs = exs[:cap]
            enc = self.D.encode_pairs(self.tok, [(e.premise, e.hypothesis) for e in exs], max_len=self.max_len)
            _log_cuts(key, enc.stats, ("truncated_pairs",))
            self._cache[key] = (exs, self._batches(enc), enc.num_words)
        return self._cache[key]

    def alignment(self, xx: str):
        key = ("align", xx)
        if key not in self._cache:
            gold = self.D.load_alignment(_resolve(self.cfg, self.cfg.align.dir) / f"en-{xx}")
            if self.cfg.align.max_pairs:
                gold = gold.subset(self.cfg.align.max_pairs)
            self._cache[key] = gold
        return self._cache[key]

    def text(self, lang: str) -> list[str]:
        key = ("text", lang)
        if key not in self._cache:
            path = self.D.find_text_file(_resolve(self.cfg, self.cfg.bpc.dir), lang, self.cfg.bpc.pattern,
                                         self.cfg.bpc.files.to_dict())
            self._cache[key] = list(self.D.load_text(path))[: self.cfg.bpc.max_sentences or None]
        return self._cache[key]

    def drop(self, pred: Callable[[tuple], bool]) -> None:
        for k in [k for k in self._cache if pred(k)]:
            del self._cache[k]


# --------------------------------------------------------------------------- running units ----


def _batches_hash(batches) -> str:
    """Content hash of the model inputs and word maps of a list of batches."""
    h = hashlib.sha1()
    for b in batches:
        for k in ("input_ids", "segment_ids", "word_start", "word_end", "word_id"):
            if k in b:
                h.update(k.encode())
                h.update(np.ascontiguousarray(b[k]).tobytes())
    return h.hexdigest()[:16]


NUM_CLASSES = {"pos": None, "arc_pred": 2, "arc_cls": None, "xnli": 3}


class CheckpointRun:
    """Everything computed for one checkpoint: its encoder and features per dataset (lazily)."""

    def __init__(self, cfg, encoder: M.Encoder, data: SweepData, *, mesh, layers: np.ndarray,
                 checkpoint_hash: str = ""):
        self.cfg, self.encoder, self.data, self.mesh, self.layers = cfg, encoder, data, mesh, layers
        self.checkpoint_hash = checkpoint_hash  # "" = computed on first use by the feature cache
        self._feats: dict[tuple, np.ndarray] = {}

    def features(self, key: tuple, batches, num_items: int, pooling: str) -> np.ndarray:
        """Features of one dataset split, from memory, the on-disk cache (`extract.cache_dir`) or
        extraction. The cache key covers the weights (params hash), the exact model inputs (a hash
        of the batches), pooling, dtype and layers, so a changed tokenizer, cap or file misses."""
        from xlmr_dynamics.extract import extract_features

        if key not in self._feats:
            def compute():
                return extract_features(
                    self.encoder, batches, num_items, pooling=pooling, mesh=self.mesh,
                    out_dtype=self.cfg.extract.out_dtype, layers=self.layers, progress=False,
                    # On CPU, device memory is host memory: keep features as device arrays, which
                    # probes use without a copy. On GPU/TPU keep them in (larger) host memory: the
                    # test sets of every language stay resident for cross-lingual evaluation.
                    on_device=jax.default_backend() == "cpu")

            if self.cfg.extract.cache_dir:
                self._feats[key] = self._cached(key, batches, num_items, pooling, compute)
            else:
                self._feats[key] = compute()
        return self._feats[key]

    def _cached(self, key, batches, num_items, pooling, compute) -> np.ndarray:
        """Cache lookup that every process agrees on (extraction is collective: all compute or none);
        the key is process 0's (each process hashes only its own rows); process 0 writes."""
        from xlmr_dynamics.extract import FeatureCache

        if not self.checkpoint_hash:
            self.checkpoint_hash = params_hash(self.encoder)
        cache = FeatureCache(Path(self.cfg.extract.cache_dir).expanduser())
        ckey = cache.key(checkpoint=self.checkpoint_hash, dataset=list(key), inputs=_batches_hash(batches),
                         num_items=num_items, pooling=pooling, dtype=self.cfg.extract.out_dtype,
                         compute_dtype=self.encoder.config.dtype, layers=self.layers.tolist())
        ckey = bytes(_from_process_0(np.frombuffer(ckey.encode(), np.uint8)).astype(np.uint8)).decode()
        hit = cache.get(ckey)
        if _from_every_process(np.array([hit is not None])).all():
            log.info("features %s: reused %s", key, cache.path(ckey))
            return hit
        feats = compute()
        if jax.process_index() == 0:
            cache.put(ckey, feats)
        return feats

    def drop(self, pred) -> None:
        for k in [k for k in self._feats if pred(k)]:
            del self._feats[k]

    # -- probe tasks ----------------------------------------------------------------------------
    def _ud_split(self, task: str, lang: str, split: str, *, train: bool):
        from xlmr_dynamics import tasks as T

        got = self.data.ud(lang, split)
        if got is None:
            return None
        sents, batches, n = got
        feats = self.features(("ud", lang, split), batches, n, self.cfg.extract.word_pooling)
        if task == "pos":
            ex = T.pos_examples(sents)
        elif task == "arc_pred":
            ex = T.arc_prediction_examples(sents, neg_ratio=self.cfg.arc.neg_ratio, seed=self.cfg.arc.seed)
        else:
            ex = T.arc_classification_examples(sents)
        return feats, ex

    def _xnli_split(self, lang: str, split: str):
        from xlmr_dynamics import tasks as T

        exs, batches, n = self.data.xnli(lang, split)
        feats = self.features(("xnli", lang, split), batches, n, self.cfg.extract.sentence_pooling)
        return feats, T.sentence_examples(exs)

    def probe_inputs(self, unit: Unit):
        """(train, dev, evals, num_classes) for a probe unit; train is None if the split is missing."""
        cfg = self.cfg
        if unit.task == "xnli":
            train = self._xnli_split(unit.train_lang, cfg.xnli.train_split)
            evals = {lang: self._xnli_split(lang, cfg.xnli.eval_split) for lang in unit.eval_langs}
            return train, None, evals, 3
        from xlmr_dynamics import data as D
        from xlmr_dynamics import tasks as T

        train = self._ud_split(unit.task, unit.train_lang, cfg.ud.train_split, train=True)
        dev = self._ud_split(unit.task, unit.train_lang, cfg.ud.dev_split, train=False)
        if train is None and cfg.ud.dev_as_train and dev is not None:
            train, dev = T.holdout_split(dev, fraction=0.1, seed=cfg.seed)
        evals = {}
        for lang in unit.eval_langs:
            got = self._ud_split(unit.task, lang, cfg.ud.test_split, train=False)
            if got is not None:
                evals[lang] = got
        n_cls = {"pos": len(D.UPOS_TAGS), "arc_pred": 2, "arc_cls": len(D.DEPRELS)}[unit.task]
        return train, dev, evals, n_cls


def _probe_config(cfg):
    from xlmr_dynamics.probes import ProbeConfig

    kw = dict(cfg.probe.to_dict())
    kw["max_train"] = kw.get("max_train") or None
    return ProbeConfig(seeds=tuple(cfg.seeds), **kw)


def _process_layers(num_layers: int) -> tuple[int, int] | None:
    """This process's contiguous block of layers when several processes share a probe unit (each
    trains its block; the rows are gathered); None: one process, or fewer layers than processes
    (then every process trains every layer, as before)."""
    from xlmr_dynamics.probes import layer_ranges

    count = jax.process_count()
    if count == 1 or num_layers < count:
        return None
    return layer_ranges(num_layers, count)[jax.process_index()]


def _from_every_process(values: np.ndarray) -> np.ndarray:
    """Every process's `values` (same shape on all), on every process: `[process_count, ...]`."""
    if jax.process_count() == 1:
        return values[None]
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values)).reshape((-1,) + values.shape)


def _any_process(flag: bool) -> bool:
    """True on every process if `flag` is True on any (early-stopping consensus)."""
    return bool(_from_every_process(np.array([flag])).any())


def _allgather_rows(rows: list[dict], eval_langs: list[str]) -> list[dict]:
    """Every process's result rows, on every process, in one process's order (eval language, then
    layer; within a layer the producing process's order is kept)."""
    raw = np.frombuffer(json.dumps(rows).encode(), np.uint8)
    sizes = _from_every_process(np.array([raw.size])).reshape(-1)
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[:raw.size] = raw
    every = _from_every_process(buf)
    out = [r for p, n in enumerate(sizes) for r in json.loads(bytes(every[p, :n]).decode())]
    order = {lang: i for i, lang in enumerate(eval_langs)}
    return sorted(out, key=lambda r: (order[r["eval_lang"]], r["layer"]))


def run_unit(run: CheckpointRun, unit: Unit) -> list[dict]:
    """Rows of one unit (layer numbers are hidden-state indices: 0 = embeddings)."""
    from xlmr_dynamics import tasks as T

    cfg = run.cfg
    if unit.task in PROBE_TASKS:
        train, dev, evals, n_cls = run.probe_inputs(unit)
        if train is None:
            raise T.TaskInputError(f"task {unit.task}: language {unit.train_lang!r} has no "
                                   f"{cfg.ud.train_split} split (set ud.dev_as_train to train on dev)")
        share = _process_layers(len(run.layers))
        if share:
            log.info("%s %s: this process trains layers %s of %s", unit.task, unit.train_lang,
                     run.layers[share[0]:share[1]].tolist(), run.layers.tolist())
        rows = T.run_probe_task(unit.task, train, evals, num_classes=n_cls, cfg=_probe_config(cfg),
                                train_lang=unit.train_lang, dev=dev, layers=share,
                                any_improved=_any_process if share else None)
        if share:
            rows = _allgather_rows(rows, list(evals))
        for r in rows:
            r["layer"] = int(run.layers[r["layer"]])
        return rows
    if unit.task == "align":
        from xlmr_dynamics import align as A

        return A.run_alignment(run.encoder, run.data.tok, run.data.alignment(unit.eval_langs[0]),
                               max_len=run.data.max_len,
                               layers=[int(x) for x in run.layers], method=cfg.align.method,
                               pooling=cfg.align.pooling, distortion=cfg.align.distortion,
                               eval_lang=unit.eval_langs[0])
    if unit.task == "bpc":
        from xlmr_dynamics import bpc as B

        lang = unit.eval_langs[0]
        return B.bpc_rows(run.encoder, run.data.tok, {lang: run.data.text(lang)}, scheme=cfg.bpc.scheme,
                          mask_rate=cfg.bpc.mask_rate, seed=cfg.seed, max_len=run.data.max_len)
    raise ConfigError(f"unknown task {unit.task!r}")


def majority_rows(data: SweepData, cfg, unit: Unit) -> list[dict]:
    """Majority-label baseline rows of a probe unit (checkpoint-independent)."""
    from xlmr_dynamics import tasks as T

    if unit.task == "xnli":
        train = T.sentence_examples(data.xnli(unit.train_lang, cfg.xnli.train_split)[0])
        evals = {lang: T.sentence_examples(data.xnli(lang, cfg.xnli.eval_split)[0]) for lang in unit.eval_langs}
    else:
        build = {"pos": T.pos_examples, "arc_cls": T.arc_classification_examples,
                 "arc_pred": lambda s: T.arc_prediction_examples(s, neg_ratio=cfg.arc.neg_ratio, seed=cfg.arc.seed)}[unit.task]
        got = data.ud(unit.train_lang, cfg.ud.train_split)
        if got is None and cfg.ud.dev_as_train:
            got = data.ud(unit.train_lang, cfg.ud.dev_split)
        if got is None:
            return []
        train = build(got[0])
        evals = {}
        for lang in unit.eval_langs:
            g = data.ud(lang, cfg.ud.test_split)
            if g is not None:
                evals[lang] = build(g[0])
    return T.majority_baseline_rows(unit.task, train, evals, train_lang=unit.train_lang)


# ------------------------------------------------------------------------------- the sweep ----


def find_tokenizer(cfg, ckpts: list[Checkpoint]) -> Path | None:
    """`checkpoints.tokenizer`, else the first tokenizer found in `checkpoints.dir`, in a
    checkpoint's directory, or in the directory that holds it (a series root: `series/5k/`)."""
    if cfg.checkpoints.tokenizer:
        return Path(cfg.checkpoints.tokenizer)
    names = ("sentencepiece.bpe.model", "tokenizer.json", "tokenizer")
    roots = [Path(cfg.checkpoints.dir)] if cfg.checkpoints.dir else []
    for c in ckpts:
        if c.path is not None:
            home = c.path if c.path.is_dir() else c.path.parent
            roots += [home, home.parent]
    for root in dict.fromkeys(roots):
        for n in names:
            if (root / n).exists():
                return root / n if n != "tokenizer.json" else root
    return None


def validate_config(cfg) -> list[Checkpoint]:
    """Check the whole config before any work; raise one ConfigError listing every problem."""
    from xlmr_dynamics import data as D

    problems: list[str] = []
    unknown = [t for t in cfg.tasks if t not in ALL_TASKS]
    if unknown:
        problems.append(f"unknown tasks {unknown} (known: {list(ALL_TASKS)})")
    problems += _setting_problems(cfg)
    try:
        ckpts = discover_checkpoints(cfg)
    except ConfigError as e:
        problems.append(str(e))
        ckpts = []
    if not ckpts and cfg.checkpoints.dir and not cfg.checkpoints.paths:
        problems.append(f"no checkpoints in checkpoints.dir={cfg.checkpoints.dir}: no entry has a step "
                        f"number in its name (e.g. '5k', 'checkpoint_3_5000.pt')")
    elif not ckpts:
        problems.append("no checkpoints: set checkpoints.dir or checkpoints.paths")
    for c in ckpts:
        if c.path is not None and not c.path.exists():
            problems.append(f"checkpoint for step {c.step}: {c.path} does not exist")
    if ckpts and find_tokenizer(cfg, ckpts) is None:
        problems.append("no tokenizer: set checkpoints.tokenizer (sentencepiece.bpe.model or an HF dir)")
    known = set(D.language_codes())
    tasks = set(cfg.tasks)
    if tasks & set(UD_TASKS):
        root = _resolve(cfg, cfg.ud.dir)
        for lang in sorted(set(cfg.ud.langs) | set(cfg.ud.cross_langs)):
            if lang not in known:
                problems.append(f"ud: unknown language code {lang!r}")
                continue
            tb = cfg.ud.treebanks.get(lang) if lang in cfg.ud.treebanks else None
            try:
                have = {sp: D.ud_available(root, lang, sp, treebank=tb, data_dir=_tfds_dir(cfg))
                        for sp in (cfg.ud.train_split, cfg.ud.dev_split, cfg.ud.test_split)}
            except D.DataError as e:
                problems.append(f"ud ({lang!r}): {e}")
                continue
            if not have[cfg.ud.test_split]:
                problems.append(f"ud: no {cfg.ud.test_split} split for {lang!r} under {root}")
            if lang in cfg.ud.langs and not have[cfg.ud.train_split] and not (cfg.ud.dev_as_train and have[cfg.ud.dev_split]):
                problems.append(f"ud: no {cfg.ud.train_split} split for {lang!r} under {root}"
                                + ("" if cfg.ud.dev_as_train else " (ud.dev_as_train=True would train on dev)"))
    if "xnli" in tasks:
        root = _resolve(cfg, cfg.xnli.dir)
        for lang in sorted(set(cfg.xnli.langs) | set(cfg.xnli.cross_langs)):
            for sp in {cfg.xnli.train_split, cfg.xnli.eval_split}:
                try:
                    if not D.xnli_available(root, lang, sp, data_dir=_tfds_dir(cfg)):
                        problems.append(f"xnli: no {sp} data for {lang!r} under {root}")
                except D.DataError as e:
                    problems.append(f"xnli: {e}")
                    break
    for task, key in (("align", "align.dir"), ("bpc", "bpc.dir")):
        if task in tasks and is_tfds(cfg[task].dir):
            problems.append(f"{key}={cfg[task].dir!r}: TFDS sources are for UD and XNLI only; "
                            f"{task} reads a directory")
            tasks = tasks - {task}
    if "align" in tasks:
        root = _resolve(cfg, cfg.align.dir)
        for xx in cfg.align.pairs:
            if not (root / f"en-{xx}").is_dir():
                problems.append(f"align: no gold set {root / f'en-{xx}'}")
    if "bpc" in tasks:
        root = _resolve(cfg, cfg.bpc.dir)
        try:
            for lang in cfg.bpc.langs:
                if D.find_text_file(root, lang, cfg.bpc.pattern, cfg.bpc.files.to_dict()) is None:
                    problems.append(f"bpc: no text for {lang!r} under {root}")
        except (KeyError, IndexError, ValueError) as e:
            problems.append(f"bpc.pattern={cfg.bpc.pattern!r}: bad placeholder {e} "
                            f"(known: {{lang}} = ISO 639-1, {{iso3}} = ISO 639-3)")
    if problems:
        raise ConfigError("invalid sweep config:\n  - " + "\n  - ".join(problems))
    return ckpts


def _setting_problems(cfg) -> list[str]:
    """Problems of the settings that are only used deep inside a sweep (so that a typo fails
    before any work, naming its key)."""
    from xlmr_dynamics import align, bpc, extract, model

    problems = []
    choices = {
        "extract.word_pooling": (cfg.extract.word_pooling, extract.POOLINGS),
        "extract.sentence_pooling": (cfg.extract.sentence_pooling, extract.POOLINGS),
        "extract.out_dtype": (cfg.extract.out_dtype, ("float32", "bfloat16")),
        "checkpoints.dtype": (cfg.checkpoints.dtype, model.DTYPES),
        "align.method": (cfg.align.method, align.METHODS),
        "align.pooling": (cfg.align.pooling, align.POOLINGS),
        "bpc.scheme": (cfg.bpc.scheme, bpc.SCHEMES),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            problems.append(f"{key}={value!r}: expected one of {list(allowed)}")
    for key in ("seeds", "layers"):
        values = tuple(cfg[key])
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values) \
                or len(set(values)) != len(values):
            problems.append(f"{key}={values!r}: expected distinct non-negative ints")
    try:
        _probe_config(cfg)
    except (TypeError, ValueError) as e:
        problems.append(f"probe: {e}")
    return problems


def check_layers(cfg, num_layers: int) -> np.ndarray:
    """The hidden-state indices to probe (`cfg.layers`, or all `0..num_layers`).

    Raises:
        ConfigError: an index outside the model (checked once its architecture is known).
    """
    if not len(cfg.layers):
        return np.arange(num_layers + 1)
    bad = [int(l) for l in cfg.layers if not 0 <= int(l) <= num_layers]
    if bad:
        raise ConfigError(f"layers={tuple(cfg.layers)}: {bad} outside the model's hidden states "
                          f"0..{num_layers} (0 = embeddings)")
    return np.asarray(cfg.layers)


def _dir_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f"{f.relative_to(path.parent)}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _check_sweep_record(results_dir: Path, cfg_hash: str, cfg, writer: bool, *, has_results: bool) -> dict:
    """`sweep.json` pins the config hash and each checkpoint's content hash. A record of another
    config is replaced if no results were written under it (a sweep that failed at its start)."""
    rec_path = results_dir / "sweep.json"
    if rec_path.exists():
        rec = json.loads(rec_path.read_text())
        if rec.get("config_hash") == cfg_hash:
            return rec
        if has_results:
            raise ConfigError(
                f"{results_dir} holds results of another config (hash {rec.get('config_hash')} vs "
                f"{cfg_hash}); use a new results_dir, or restore the config recorded in {rec_path}")
        log.warning("%s: replacing the record of config %s, which wrote no results",
                    rec_path, rec.get("config_hash"))
    rec = {"config_hash": cfg_hash, "config": json.loads(cfg.to_json_best_effort()), "checkpoints": {},
           "package_version": __version__}
    if writer:
        _write_json(rec_path, rec)
    return rec


def _write_json(path: Path, obj) -> None:
    from xlmr_dynamics.results import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def _load_checkpoint(ckpt: Checkpoint, cfg, arch: M.XLMRConfig | None) -> M.Encoder:
    """The checkpoint's encoder; the random-init baseline (no path) gets `arch` (the series')."""
    from xlmr_dynamics.convert import load_encoder

    if ckpt.path is not None:
        return load_encoder(ckpt.path, dtype=cfg.checkpoints.dtype, num_heads=cfg.checkpoints.num_heads or None)
    params = M.init_params(arch, jax.random.key(cfg.checkpoints.random_init_seed))
    return M.Encoder(arch, params, {"source": "random-init", "has_mlm_head": True})


def _first_loadable(ckpts: list[Checkpoint], cfg, on_failure) -> tuple[str, M.Encoder]:
    """(name, encoder) of the first checkpoint with weights that loads (the series' architecture);
    `on_failure(ckpt, error)` for each one before it that does not (the sweep records it and skips
    it later).

    Raises:
        ConfigError: no checkpoint loads.
    """
    from xlmr_dynamics.convert import CheckpointError

    errors = []
    for c in ckpts:
        if c.path is None:
            continue
        try:
            return c.name, _load_checkpoint(c, cfg, None)
        except (CheckpointError, OSError, ValueError) as e:
            on_failure(c, e)
            errors.append(f"{c.name}: {e}")
    raise ConfigError("no checkpoint could be loaded:\n  - " + "\n  - ".join(errors or ["none given"]))


def _from_process_0(values: np.ndarray) -> np.ndarray:
    """Process 0's `values` (same shape on every process), on every process."""
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(values))


def run_sweep(cfg, *, progress: bool = True) -> Path:
    """Run (or resume) the sweep described by `cfg`; returns the results directory.

    Raises:
      ConfigError: before any work, listing every problem of the config.
      results.ResultsLockedError: another sweep holds the results directory.
    """
    from xlmr_dynamics import tasks as T
    from xlmr_dynamics.convert import CheckpointError
    from xlmr_dynamics.extract import FeatureError
    from xlmr_dynamics.probes import FeatureError as ProbeFeatureError
    from xlmr_dynamics.results import ResultsStore
    from xlmr_dynamics.tokenizer import load_tokenizer

    ckpts = validate_config(cfg)
    expected = set(cfg.checkpoints.get("expected_steps", ()) or ())
    found = {c.step for c in ckpts if c.path is not None}
    if expected and found != expected:
        print(f"warning: checkpoint steps differ from checkpoints.expected_steps: missing "
              f"{sorted(expected - found)[:10]}, unexpected {sorted(found - expected)[:10]}", file=sys.stderr)
    results_dir = Path(cfg.results_dir)
    writer = jax.process_index() == 0
    results_dir.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(results_dir).open() if writer else None
    handler = logging.FileHandler(results_dir / f"sweep.{jax.process_index()}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        cfg_hash = sweep_config_hash(cfg)
        mesh = S.make_mesh()
        tok = load_tokenizer(find_tokenizer(cfg, ckpts))
        unloadable: set[str] = set()

        def load_failed(c: Checkpoint, e: Exception) -> None:
            log.error("checkpoint %s failed to load: %s", c.name, e)
            unloadable.add(c.name)
            if writer:
                store.record_failure(c.name, "load", str(e), step=c.step)

        # Kept until the sweep's first load: reused if that is this checkpoint (no random-init
        # units to run first), else dropped before the other one is loaded.
        first_name, first_encoder = _first_loadable(ckpts, cfg, load_failed)
        arch = first_encoder.config
        check_layers(cfg, arch.num_layers)
        has_results = bool(_from_process_0(np.array([bool(writer and store.done_units())]))[0])
        record = _check_sweep_record(results_dir, cfg_hash, cfg, writer, has_results=has_results)
        data = SweepData(cfg, tok, mesh=mesh, max_len=arch.max_seq_len)
        units = plan_units(cfg)
        data_hashes: dict[str, str] = {}

        def data_hash(task: str) -> str:
            sub = {"align": cfg.align.dir, "bpc": cfg.bpc.dir, "xnli": cfg.xnli.dir}.get(task, cfg.ud.dir)
            if sub not in data_hashes:
                data_hashes[sub] = _data_fingerprint(cfg, sub)
            return data_hashes[sub]

        def provenance(rows, ckpt: Checkpoint | None, ckpt_hash: str, task: str):
            for r in rows:
                r.update(run_id=cfg_hash, config_hash=cfg_hash, package_version=__version__,
                         data_hash=data_hash(task),
                         checkpoint=ckpt.name if ckpt else "majority", step=ckpt.step if ckpt else -1,
                         checkpoint_path=str(ckpt.path or "") if ckpt else "", checkpoint_hash=ckpt_hash)
            return rows

        log.info("sweep %s: %d checkpoints x %d units -> %s", cfg_hash, len(ckpts), len(units), results_dir)
        if cfg.baselines.majority and writer:
            for unit in units:
                if unit.task not in PROBE_TASKS:
                    continue
                key = "majority|" + unit.key(Checkpoint(-1, "majority", None))
                if not store.is_done(key):
                    store.append(key, provenance(majority_rows(data, cfg, unit), None, "", unit.task))

        total = tqdm(total=len(ckpts) * len(units), desc="sweep", unit="unit", disable=not progress or not writer,
                     file=sys.stderr)
        for ckpt in ckpts:
            keys = [u.key(ckpt) for u in units]
            done = _from_process_0(np.array([bool(writer and store.is_done(k)) for k in keys]))
            todo = [u for u, d in zip(units, done) if not d]
            total.update(len(units) - len(todo))
            if not todo:
                continue
            t0 = time.time()
            if ckpt.name in unloadable:  # already recorded
                total.update(len(todo))
                continue
            try:
                reuse = first_encoder if ckpt.name == first_name else None
                first_encoder = None  # dropped before any other checkpoint is loaded
                encoder = reuse if reuse is not None else _load_checkpoint(ckpt, cfg, arch)
                del reuse
                ckpt_hash = params_hash(encoder)
                encoder = encoder.placed(mesh)  # one device copy for all units; host copy dropped
            except (CheckpointError, OSError, ValueError) as e:
                load_failed(ckpt, e)
                total.update(len(todo))
                continue
            if writer:
                store.clear_failures(checkpoint=ckpt.name, stage="load")  # of an earlier run
            known = record["checkpoints"].get(str(ckpt.step))
            if known and known != ckpt_hash:
                raise ConfigError(f"checkpoint {ckpt.path} (step {ckpt.step}) changed since results were written "
                                  f"(content hash {known} -> {ckpt_hash}): re-downloaded or corrupted? "
                                  f"Use a new results_dir to sweep it again.")
            if not known and writer:
                record["checkpoints"][str(ckpt.step)] = ckpt_hash
                _write_json(results_dir / "sweep.json", record)
            layers = check_layers(cfg, encoder.config.num_layers)
            run = CheckpointRun(cfg, encoder, data, mesh=mesh, layers=layers, checkpoint_hash=ckpt_hash)
            total.set_postfix_str(f"step {ckpt.step}")
            for i, unit in enumerate(todo):
                try:
                    with jax.profiler.TraceAnnotation(f"unit {unit.task} {unit.train_lang}"):
                        rows = run_unit(run, unit)
                except (FeatureError, ProbeFeatureError, T.TaskInputError) as e:
                    log.error("step %s %s %s: %s", ckpt.step, unit.task, unit.train_lang, e)
                    if writer:
                        store.record_failure(ckpt.name, f"{unit.task}:{unit.train_lang}", str(e), step=ckpt.step,
                                             unit_key=unit.key(ckpt))
                    rows = None
                if rows is not None and writer:
                    store.append(unit.key(ckpt), provenance(rows, ckpt, ckpt_hash, unit.task))
                    store.clear_failures(unit_key=unit.key(ckpt))  # of an earlier run
                total.update(1)
                nxt = todo[i + 1] if i + 1 < len(todo) else None
                if unit.task in UD_TASKS and (nxt is None or nxt.train_lang != unit.train_lang or nxt.task not in UD_TASKS):
                    lang = unit.train_lang  # its train/dev features are no longer needed
                    run.drop(lambda k: k[0] == "ud" and k[1] == lang and k[2] != cfg.ud.test_split)
            log.info("step %s: %d units in %.1fs", ckpt.step, len(todo), time.time() - t0)
            del run, encoder
        total.close()
        if writer:
            store.export_csv(results_dir / "results.csv")
    except Exception:
        log.error("sweep stopped: %s", traceback.format_exc())
        raise
    finally:
        log.removeHandler(handler)
        handler.close()
        if store is not None:
            store.close()
    return results_dir
