"""Probing task definitions over word/sentence features, and running a probe task to result rows.

This module owns the mapping from annotated data to probe examples (labels and word-pair indices
into a global word-feature array) and the evaluation protocol (in-language and zero-shot
cross-lingual rows, majority baselines). It never calls the model: features come from the lead's
extraction (`extract_features`, `[L, num_words, D]`, words of sentence k in consecutive rows
starting at `offsets[k]`), probes from `probes.py`.

Tasks:
  * "pos": word -> UPOS index (all words).
  * "arc_pred": (dependent, head) word pair -> 1 for gold arcs (root excluded), 0 for sampled
    non-arcs of the same sentence (pairs connected by a gold arc in neither direction, unless
    `directed_negatives`), `neg_ratio` negatives per positive per sentence, seeded.
  * "arc_cls": gold (dependent, head) pair -> deprel index (root excluded: it has no head word).
  * "xnli": sentence-pair feature -> label in (entailment, neutral, contradiction).

Sentences are duck-typed: anything with `tokens` (list[str]), `upos`, `head` (0 = root, 1-based)
and `deprel` (int arrays of length n), e.g. `xlmr_dynamics.data.Sentence`.

Result rows follow the contract: `task, train_lang, eval_lang, layer, seed, metric, value, n`
(+ `extra`). Majority baselines are rows with `layer = -1`, `seed = 0` and
`extra = {"baseline": "majority", ...}`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xlmr_dynamics import probes

__all__ = [
    "TASKS",
    "TaskData",
    "TaskInputError",
    "arc_classification_examples",
    "arc_prediction_examples",
    "check_task_inputs",
    "holdout_split",
    "majority_baseline_rows",
    "pos_examples",
    "run_probe_task",
    "sentence_examples",
    "sentence_offsets",
]

TASKS = ("pos", "arc_pred", "arc_cls", "xnli")
PAIR_TASKS = ("arc_pred", "arc_cls")


class TaskInputError(ValueError):
    """Bad task input (missing split, malformed tree, mismatched shapes); names the culprit."""


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Probe examples of one task and split.

    Attributes:
        labels: int32 `[M]`.
        pairs: int32 `[M, 2]` (dependent row, head row) into the word-feature array, or None.
        rows: int32 `[M]` feature rows of the examples, or None (example m = row m).
    """

    labels: np.ndarray
    pairs: np.ndarray | None = None
    rows: np.ndarray | None = None


def _name(sent, k: int) -> str:
    sid = getattr(sent, "sent_id", None)
    return f"sentence {k}" + (f" ({sid})" if sid else "")


def _tree(sent, k: int):
    """Validated (upos, head, deprel) int arrays of one sentence."""
    n = len(sent.tokens)
    out = []
    for field in ("upos", "head", "deprel"):
        a = np.asarray(getattr(sent, field))
        if a.shape != (n,):
            raise TaskInputError(f"{_name(sent, k)}: {field} has shape {a.shape}, expected ({n},)")
        out.append(a.astype(np.int64))
    head = out[1]
    if n and (head.min() < 0 or head.max() > n):
        bad = int(np.argmax((head < 0) | (head > n)))
        raise TaskInputError(f"{_name(sent, k)}: head[{bad}] = {head[bad]} outside [0, {n}]")
    if n and np.any(head == np.arange(1, n + 1)):
        bad = int(np.argmax(head == np.arange(1, n + 1)))
        raise TaskInputError(f"{_name(sent, k)}: word {bad + 1} is its own head")
    return out


def sentence_offsets(sentences: Sequence[Any]) -> np.ndarray:
    """Row offset of each sentence when sentences are stacked in order: int64 `[K]`."""
    lengths = np.asarray([len(s.tokens) for s in sentences], np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths


def _offsets(sentences, offsets) -> np.ndarray:
    if offsets is None:
        return sentence_offsets(sentences)
    offsets = np.asarray(offsets, np.int64)
    if offsets.shape != (len(sentences),):
        raise TaskInputError(f"offsets has shape {offsets.shape}, expected ({len(sentences)},)")
    return offsets


def pos_examples(sentences: Sequence[Any], offsets=None) -> TaskData:
    """POS tagging: one example per word, label = UPOS index.

    Args:
        sentences: K sentences (duck-typed, see module docstring).
        offsets: optional int `[K]` row of each sentence's first word; default = stacked in order.

    Returns:
        TaskData(labels [W], rows [W] = word rows; rows is None when they are exactly 0..W-1).
    """
    offsets = _offsets(sentences, offsets)
    labels, rows = [], []
    for k, (sent, off) in enumerate(zip(sentences, offsets)):
        upos, _, _ = _tree(sent, k)
        labels.append(upos)
        rows.append(off + np.arange(len(upos)))
    labels = np.concatenate(labels).astype(np.int32) if labels else np.zeros((0,), np.int32)
    rows = np.concatenate(rows).astype(np.int32) if rows else np.zeros((0,), np.int32)
    contiguous = np.array_equal(rows, np.arange(rows.shape[0]))
    return TaskData(labels=labels, rows=None if contiguous else rows)


def _gold_arcs(head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based (dependent, head) index arrays of the non-root arcs of one sentence."""
    dep = np.nonzero(head > 0)[0]
    return dep, head[dep] - 1


def arc_prediction_examples(
    sentences: Sequence[Any],
    offsets=None,
    *,
    neg_ratio: float = 1.0,
    seed: int = 0,
    directed_negatives: bool = False,
) -> TaskData:
    """Dependency arc prediction: binary, is (i, j) a gold (dependent, head) arc?

    Positives: every gold arc with a head word (root excluded). Negatives, per sentence:
    `round(neg_ratio * positives)` ordered pairs (i, j), i != j, drawn without replacement from
    the same sentence's non-arcs (fewer if the sentence has fewer). By default a non-arc is a pair
    connected by no gold arc in either direction, so reversed arcs are never negatives; with
    `directed_negatives` a reversed arc (head, dependent) may be drawn. Deterministic given `seed`.

    Args:
        sentences: K sentences; offsets: optional int `[K]` (default: stacked in order).
        neg_ratio: negatives per positive (>= 0).
        seed: numpy Generator seed for negative sampling.
        directed_negatives: allow reversed gold arcs as negatives.

    Returns:
        TaskData(labels int32 [M] in {0, 1}, pairs int32 [M, 2] global (dependent, head) rows).
        Within a sentence, positives come first (in dependent order), then its negatives.
    """
    if not neg_ratio >= 0:
        raise TaskInputError(f"neg_ratio must be >= 0, got {neg_ratio}")
    offsets = _offsets(sentences, offsets)
    rng = np.random.default_rng(seed)
    pairs, labels = [], []
    for k, (sent, off) in enumerate(zip(sentences, offsets)):
        _, head, _ = _tree(sent, k)
        n = head.shape[0]
        dep, hd = _gold_arcs(head)
        arc = np.zeros((n, n), bool)
        arc[dep, hd] = True
        blocked = arc if directed_negatives else (arc | arc.T)
        blocked = blocked | np.eye(n, dtype=bool)
        cand = np.flatnonzero(~blocked)  # row-major (i, j) candidates
        want = min(int(round(neg_ratio * dep.shape[0])), cand.shape[0])
        neg = np.sort(rng.choice(cand, size=want, replace=False)) if want else cand[:0]
        pos_pairs = np.stack([dep, hd], axis=1)
        neg_pairs = np.stack([neg // n, neg % n], axis=1) if n else np.zeros((0, 2), np.int64)
        pairs.append(np.concatenate([pos_pairs, neg_pairs]) + off)
        labels.append(np.concatenate([np.ones(dep.shape[0]), np.zeros(want)]))
    if not pairs:
        return TaskData(labels=np.zeros((0,), np.int32), pairs=np.zeros((0, 2), np.int32))
    return TaskData(labels=np.concatenate(labels).astype(np.int32),
                    pairs=np.concatenate(pairs).astype(np.int32))


def arc_classification_examples(sentences: Sequence[Any], offsets=None) -> TaskData:
    """Dependency arc classification: gold (dependent, head) pair -> deprel index.

    The root word (head 0) has no head word and is skipped.

    Returns:
        TaskData(labels int32 [M] = deprel, pairs int32 [M, 2] global (dependent, head) rows).
    """
    offsets = _offsets(sentences, offsets)
    pairs, labels = [], []
    for k, (sent, off) in enumerate(zip(sentences, offsets)):
        _, head, deprel = _tree(sent, k)
        dep, hd = _gold_arcs(head)
        pairs.append(np.stack([dep, hd], axis=1) + off)
        labels.append(deprel[dep])
    if not pairs:
        return TaskData(labels=np.zeros((0,), np.int32), pairs=np.zeros((0, 2), np.int32))
    return TaskData(labels=np.concatenate(labels).astype(np.int32),
                    pairs=np.concatenate(pairs).astype(np.int32))


def sentence_examples(labels) -> TaskData:
    """Sentence(-pair) classification (XNLI): example m = feature row m, label = labels[m].

    Accepts ints or objects with a `label` attribute (e.g. `data.NLIExample`).
    """
    out = [getattr(v, "label", v) for v in labels]
    return TaskData(labels=np.asarray(out, np.int32).reshape(-1))


# ----------------------------------------------------------------------------- running


def _unpack(name: str, split) -> tuple[Any, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(feats, labels, pairs, rows) from a (feats, labels[, pairs]) tuple or (feats, TaskData)."""
    if split is None:
        raise TaskInputError(f"{name}: no data (missing split)")
    if not isinstance(split, (tuple, list)) or len(split) not in (2, 3):
        raise TaskInputError(f"{name}: expected (feats, labels[, pairs]) or (feats, TaskData)")
    feats, labels = split[0], split[1]
    pairs = split[2] if len(split) == 3 else None
    rows = None
    if isinstance(labels, TaskData):
        labels, pairs, rows = labels.labels, labels.pairs, labels.rows
    if feats is None:
        raise TaskInputError(f"{name}: features are missing")
    return feats, np.asarray(labels), None if pairs is None else np.asarray(pairs), rows


def check_task_inputs(task: str, train, evals: Mapping[str, Any], *, num_classes: int,
                      train_lang: str, dev=None) -> None:
    """Checks everything `run_probe_task` needs before any training starts.

    Raises:
        TaskInputError: unknown task; missing train split (names `train_lang`); empty or
            mismatched features/labels/pairs; pairs given (or missing) for the wrong task; train
            labels outside [0, num_classes); layer/dim mismatch between splits.
    """
    if task not in TASKS:
        raise TaskInputError(f"unknown task {task!r}; expected one of {TASKS}")
    if train is None:
        raise TaskInputError(f"task {task}: language {train_lang!r} has no train split")
    if num_classes < 2:
        raise TaskInputError(f"task {task}: num_classes must be >= 2, got {num_classes}")
    splits = {f"train[{train_lang}]": train}
    if dev is not None:
        splits[f"dev[{train_lang}]"] = dev
    for lang, split in evals.items():
        splits[f"eval[{lang}]"] = split
    shape0 = None
    for name, split in splits.items():
        feats, labels, pairs, rows = _unpack(f"task {task} {name}", split)
        shape = tuple(feats.shape)
        where = f"task {task} {name}"
        if len(shape) != 3:
            raise TaskInputError(f"{where}: features must be [L, N, D], got shape {shape}")
        if shape0 is None:
            shape0 = shape
        elif (shape[0], shape[2]) != (shape0[0], shape0[2]):
            raise TaskInputError(f"{where}: features {shape} differ in L or D from train {shape0}")
        if labels.ndim != 1 or labels.shape[0] == 0:
            raise TaskInputError(f"{where}: labels must be a non-empty int [M], got {labels.shape}")
        if (pairs is not None) != (task in PAIR_TASKS):
            raise TaskInputError(f"{where}: task {task} {'needs' if task in PAIR_TASKS else 'takes no'} pairs")
        m = labels.shape[0]
        if pairs is not None and pairs.shape != (m, 2):
            raise TaskInputError(f"{where}: pairs shape {pairs.shape}, expected ({m}, 2)")
        if rows is not None and rows.shape != (m,):
            raise TaskInputError(f"{where}: rows shape {rows.shape}, expected ({m},)")
        if pairs is None and rows is None and m != shape[1]:
            raise TaskInputError(f"{where}: {m} labels for {shape[1]} feature rows")
        index = pairs if pairs is not None else rows
        if index is not None and (index.min() < 0 or index.max() >= shape[1]):
            raise TaskInputError(f"{where}: indices outside [0, {shape[1]})")
        if labels.min() < 0:
            raise TaskInputError(f"{where}: negative label {labels.min()}")
        if name.startswith(("train", "dev")) and labels.max() >= num_classes:
            raise TaskInputError(f"{where}: label {labels.max()} >= num_classes {num_classes}")


def holdout_split(split, *, fraction: float, seed: int):
    """Splits `(feats, TaskData)` into (train, held-out) parts sharing the features: a seeded
    `fraction` of the examples (at least one) is held out, e.g. to select probes on when a language
    has only a dev split. Examples, not sentences, are drawn (the probes' features are frozen)."""
    feats, labels, pairs, rows = _unpack("holdout", split)
    m = labels.shape[0]
    if m < 2:
        raise TaskInputError(f"cannot hold out {fraction:.0%} of {m} example(s)")
    held = np.zeros(m, bool)
    held[np.random.default_rng(seed).choice(m, max(1, round(fraction * m)), replace=False)] = True
    if rows is None and pairs is None:
        rows = np.arange(m, dtype=np.int32)

    def part(keep):
        return feats, TaskData(labels[keep], None if pairs is None else pairs[keep],
                               None if rows is None else rows[keep])

    return part(~held), part(held)


def _split_kwargs(prefix: str, pairs, rows) -> dict:
    return {f"{prefix}pairs": pairs, f"{prefix}rows": rows}


def run_probe_task(
    task: str,
    train,
    evals: Mapping[str, Any],
    *,
    num_classes: int,
    cfg: probes.ProbeConfig = probes.ProbeConfig(),
    train_lang: str,
    dev=None,
    layers: tuple[int, int] | None = None,
    any_improved=None,
) -> list[dict]:
    """Trains probes on one language and evaluates them, unchanged, on every eval language.

    Args:
        task: one of `TASKS`.
        train: `(feats [L, N, D], labels [M][, pairs [M, 2]])` or `(feats, TaskData)`.
        evals: {lang: same form}; the entry for `train_lang` (its test set) gives the in-language
            diagonal, the others zero-shot cross-lingual cells.
        num_classes: C (e.g. 17 for UPOS, 2 for arc prediction, len(DEPRELS), 3 for XNLI).
        cfg: probe config ("linear"/"mlp" SGD probes with cfg.seeds, or "ridge").
        train_lang: language of the training split.
        dev: optional in-language dev split (same form) for model selection / early stopping.
        layers: optional `(start, stop)`: train and report only these layers of the features (a
            process's share when a multi-host sweep splits the layers between processes); every
            split is first checked for NaN/Inf on all layers, so all processes raise alike.
        any_improved: early-stopping consensus between such processes (see `probes.fit_probes`).

    Returns:
        Rows `{task, train_lang, eval_lang, layer, seed, metric, value, n}` for metrics
        "accuracy" and "macro_f1", every eval language, layer 0..L-1 and probe seed (ridge:
        seed 0), with `extra` saying how the probe was selected (`best_epoch` kept, 0-based, and
        `epochs_run`; ridge: `l2`). `n` counts every eval example, including those whose gold label
        never occurs in the training examples used (after `cfg.max_train`; always wrong for the
        probe); such labels are listed in
        `extra = {"unseen_labels": [...], "n_unseen": k}`.

    Raises:
        TaskInputError: from `check_task_inputs`, before any training.
        probes.FeatureError: non-finite features (names the layers; the caller may skip).
    """
    check_task_inputs(task, train, evals, num_classes=num_classes, train_lang=train_lang, dev=dev)
    first = 0 if layers is None else int(layers[0])

    def unpack(name, split):
        feats, labels, pairs, rows = _unpack(name, split)
        if layers is not None:
            probes.check_features(feats, rows=rows, pairs=pairs, name=f"{name} features")
            feats = feats[layers[0]:layers[1]]
        return feats, labels, pairs, rows

    feats, labels, pairs, rows = unpack(f"train[{train_lang}]", train)
    kwargs = _split_kwargs("train_", pairs, rows)
    if dev is not None:
        d_feats, d_labels, d_pairs, d_rows = unpack(f"dev[{train_lang}]", dev)
        kwargs.update(dev_x=d_feats, dev_y=d_labels, **_split_kwargs("dev_", d_pairs, d_rows))
    fit = probes.fit_probes(feats, labels, num_classes, cfg=cfg, any_improved=any_improved, **kwargs)
    seen = np.unique(labels[probes.train_subset(labels.shape[0], cfg)])  # what training saw
    rows_out = []
    for lang, split in evals.items():
        e_feats, e_labels, e_pairs, e_rows = unpack(f"eval[{lang}]", split)
        pred = probes.predict_probes(fit, e_feats, e_pairs, rows=e_rows,
                                     batch_size=cfg.eval_batch_size, name=f"eval[{lang}] features")
        # Labels beyond num_classes (eval-only relations) are kept: they can only be wrong.
        metrics = probes.evaluate(pred, e_labels, max(num_classes, int(e_labels.max()) + 1))
        unseen = np.setdiff1d(np.unique(e_labels), seen)
        extra = {}
        if unseen.size:
            extra = {"unseen_labels": unseen.tolist(),
                     "n_unseen": int(np.isin(e_labels, unseen).sum())}
        for layer in range(pred.shape[0]):
            for s_idx, seed in enumerate(fit.seeds):
                selection = _selection(fit, layer, s_idx)
                for metric in ("accuracy", "macro_f1"):
                    rows_out.append({"task": task, "train_lang": train_lang, "eval_lang": lang,
                                     "layer": first + layer, "seed": int(seed), "metric": metric,
                                     "value": float(metrics[metric][layer, s_idx]),
                                     "n": int(e_labels.shape[0]), "extra": {**selection, **extra}})
    return rows_out


def _selection(fit: probes.ProbeFit, layer: int, s_idx: int) -> dict:
    """How the probe was selected: SGD probes' kept epoch and epochs trained; ridge's l2."""
    if fit.kind == "ridge":
        return {"l2": float(fit.info["l2"][layer])}
    return {"best_epoch": int(fit.best_epoch[layer, s_idx]), "epochs_run": int(fit.epochs_run)}


def majority_baseline_rows(task: str, train_labels, evals: Mapping[str, Any], *,
                           train_lang: str, num_classes: int | None = None) -> list[dict]:
    """Majority-label baseline: always predict the most frequent training label.

    Args:
        task: task name.
        train_labels: int `[M]` training labels (or a TaskData).
        evals: {lang: labels [M'] or TaskData or (feats, labels[, pairs])}.
        train_lang: language of the training labels.
        num_classes: optional C for macro-F1 (default: max label + 1).

    Returns:
        Rows with `layer = -1`, `seed = 0`, metrics "accuracy" and "macro_f1",
        `extra = {"baseline": "majority", "label": <majority label>}`. Ties go to the smallest
        label.
    """
    if isinstance(train_labels, TaskData):
        train_labels = train_labels.labels
    train_labels = np.asarray(train_labels)
    if train_labels.size == 0:
        raise TaskInputError(f"task {task}: language {train_lang!r} has no training labels")
    majority = int(np.argmax(np.bincount(train_labels)))
    out = []
    for lang, split in evals.items():
        if isinstance(split, (tuple, list)):
            split = split[1]
        y = np.asarray(split.labels if isinstance(split, TaskData) else split)
        if y.size == 0:
            raise TaskInputError(f"task {task}: eval[{lang}] has no labels")
        c = max(num_classes or 0, int(y.max()) + 1, majority + 1)
        m = probes.evaluate(np.full((1, y.shape[0]), majority), y, c)
        for metric in ("accuracy", "macro_f1"):
            out.append({"task": task, "train_lang": train_lang, "eval_lang": lang, "layer": -1,
                        "seed": 0, "metric": metric, "value": float(m[metric][0]),
                        "n": int(y.shape[0]),
                        "extra": {"baseline": "majority", "label": majority}})
    return out
