"""Unsupervised word alignment from encoder similarities (SimAlign-style), batched over layers and pairs.

Owns: the pure array functions (`similarity`, `distortion`, `argmax_align`, `itermax_align`,
`match_align`), the metrics (`alignment_counts`, `alignment_metrics`: precision/recall/F1/AER against
sure/possible gold links, Och & Ney 2003) and the driver `run_alignment`.

Method (Jalili Sabet et al. 2020, "SimAlign"; the array functions reproduce the semantics of
SimAlign's `simalign/simalign.py` exactly, re-implemented batched in JAX without copying its GPL-3.0
code): each sentence is encoded on its own; word vectors are subword vectors (`pooling="subword"`: any
aligned subword pair aligns the words) or the mean of a word's subword vectors (`pooling="mean"`);
similarity is `(cos + 1) / 2`, optionally multiplied by the distortion prior
`1 - ratio * (i/(m-1) - j/(n-1))^2` (as SimAlign's `apply_distortion`: none when a side has fewer
than 2 units).
- ArgMax: keep (i, j) when j is the argmax of row i and i the argmax of column j (mutual argmax).
- IterMax (SimAlign's `iter_max`): ArgMax, then at most `max_count - 1` further rounds (default
  `max_count=2`: one round). In a round, pairs whose two words are both already aligned get weight 0,
  other pairs `clip(alpha * [row free] + alpha * [col free], 0, 1)` (alpha 0.9: 0.9 with one free
  word, 1 with two); new mutual argmaxes of the reweighted matrix that involve at least one unaligned
  word are added. Pairs with `min(m, n) <= 2` get plain ArgMax; a round adds nothing once every
  source or every target word is aligned (saturation); a round that adds nothing ends SimAlign's loop,
  which the batched version reproduces by running the remaining rounds as no-ops (same state, same
  result).
- Match: maximum-weight bipartite matching (`scipy.optimize.linear_sum_assignment`, on the host).

Shapes: similarities are `[L, B, S, T]` (layers, sentence pairs, source / target units), padded; the
true lengths `src_len_b`, `tgt_len_b` mask the padding. `run_alignment` groups pairs by padded row
length (powers of two) and runs ONE jit per pair batch: encode the B source and B target rows
together (`[2B, T]`), mean-pool units on device (`extract.pool_words`), similarity, distortion and
ArgMax / IterMax for every requested layer; only the boolean links `[L, B, S, T]` (or, for Match, the
similarities) reach the host. Words are tokenized with the data layer's `encode_words` when present,
else word by word with `tokenizer.encode(word)` (as SimAlign does); `<s>`/`</s>` are never units.

Bad input: mismatched line counts or gold links past a sentence end raise `AlignmentError` (naming the
pair / line); empty sentences, sentences that are all `<unk>` and sentences longer than `max_len`
are skipped and counted in every row's `extra["skipped"]`.

Limits: single device (params replicated by `jax.device_put`); each sentence must fit in one encoder
row (`max_len`, default 512 subwords incl. specials, capped at the model's `max_seq_len`). Ties in argmax go to the lowest index.
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

METHODS = ("argmax", "itermax", "match")
POOLINGS = ("mean", "subword")
METRICS = ("precision", "recall", "f1", "aer")


class AlignmentError(ValueError):
    """Gold alignments or sentences unusable (names the pair index / file line)."""


# ------------------------------------------------------------------------------ array functions ----

def similarity(src_lbsd, tgt_lbtd):
    """SimAlign similarity `(cos + 1) / 2` in [0, 1].

    Args:
      src_lbsd: float [L, B, S, D] source unit vectors (padding rows may be zero).
      tgt_lbtd: float [L, B, T, D] target unit vectors.

    Returns:
      float32 [L, B, S, T].
    """
    eps = 1e-12
    s = src_lbsd.astype(jnp.float32)
    t = tgt_lbtd.astype(jnp.float32)
    s = s / jnp.maximum(jnp.linalg.norm(s, axis=-1, keepdims=True), eps)
    t = t / jnp.maximum(jnp.linalg.norm(t, axis=-1, keepdims=True), eps)
    cos = jnp.einsum("lbsd,lbtd->lbst", s, t)
    return (cos + 1.0) / 2.0


def distortion(src_len_b, tgt_len_b, s: int, t: int, ratio):
    """Distortion prior `1 - ratio * (i/(m-1) - j/(n-1))^2` per pair (SimAlign's `apply_distortion`).

    Pairs with a side shorter than 2 units get no distortion (all ones), as in SimAlign; values on
    padding are harmless (padding is masked downstream).

    Args:
      src_len_b, tgt_len_b: int [B] true lengths m, n.
      s, t: padded sizes S, T.
      ratio: float scalar (0 disables).

    Returns:
      float32 [B, S, T].
    """
    i = jnp.arange(s, dtype=jnp.float32)[None, :] / jnp.maximum(src_len_b - 1, 1).astype(jnp.float32)[:, None]
    j = jnp.arange(t, dtype=jnp.float32)[None, :] / jnp.maximum(tgt_len_b - 1, 1).astype(jnp.float32)[:, None]
    d = 1.0 - ratio * jnp.square(i[:, :, None] - j[:, None, :])
    short = (src_len_b < 2) | (tgt_len_b < 2)
    return jnp.where(short[:, None, None], jnp.float32(1.0), d)


def _valid(src_len_b, tgt_len_b, s: int, t: int):
    vs = jnp.arange(s)[None, :] < src_len_b[:, None]
    vt = jnp.arange(t)[None, :] < tgt_len_b[:, None]
    return vs[:, :, None] & vt[:, None, :]  # [B, S, T]


def _mutual_argmax(sim_lbst, valid_bst):
    """Mutual-argmax one-hots of a masked similarity: bool [L, B, S, T]."""
    x = jnp.where(valid_bst[None], sim_lbst, -jnp.inf)
    s, t = x.shape[-2:]
    fwd = jnp.argmax(x, axis=-1)[..., :, None] == jnp.arange(t)  # row argmax, [L,B,S,T]
    rev = jnp.argmax(x, axis=-2)[..., None, :] == jnp.arange(s)[:, None]  # column argmax
    return fwd & rev & valid_bst[None]


def argmax_align(sim_lbst, src_len_b, tgt_len_b):
    """ArgMax (mutual argmax) alignment.

    Args:
      sim_lbst: float [L, B, S, T] similarities (padding entries ignored).
      src_len_b, tgt_len_b: int [B] true lengths.

    Returns:
      bool [L, B, S, T] links (False on padding).
    """
    s, t = sim_lbst.shape[-2:]
    return _mutual_argmax(sim_lbst, _valid(src_len_b, tgt_len_b, s, t))


def itermax_align(sim_lbst, src_len_b, tgt_len_b, *, max_count: int = 2, alpha: float = 0.9):
    """IterMax alignment, equivalent to SimAlign's `iter_max(sim, max_count, alpha_ratio)` per pair.

    ArgMax, then `max_count - 1` reweighted mutual-argmax rounds (see the module docstring); pairs with
    `min(m, n) <= 2` keep plain ArgMax, and a round adds nothing once every (valid) source row or every
    target column is aligned. Padding rows / columns are excluded from the argmaxes and the counts.
    Rounds run in a `lax.fori_loop` with a static trip count (a round that adds nothing leaves the
    state unchanged, so running it again is a no-op, matching SimAlign's early `break`).

    Args:
      sim_lbst: float [L, B, S, T] similarities (e.g. from `similarity`).
      src_len_b, tgt_len_b: int [B] true lengths.
      max_count: SimAlign's `max_count`: total rounds including the initial ArgMax.
      alpha: SimAlign's `alpha_ratio`.

    Returns:
      bool [L, B, S, T] links.
    """
    s, t = sim_lbst.shape[-2:]
    src_len_b = jnp.asarray(src_len_b)
    tgt_len_b = jnp.asarray(tgt_len_b)
    valid = _valid(src_len_b, tgt_len_b, s, t)
    links = _mutual_argmax(sim_lbst, valid)
    rounds = max(int(max_count) - 1, 0)
    if rounds == 0:
        return links
    row_valid = (jnp.arange(s)[None, :] < src_len_b[:, None])[None, :, :, None]  # [1,B,S,1]
    col_valid = (jnp.arange(t)[None, :] < tgt_len_b[:, None])[None, :, None, :]  # [1,B,1,T]
    long_pair = (jnp.minimum(src_len_b, tgt_len_b) > 2)[None, :, None, None]  # [1,B,1,1]
    sim = sim_lbst.astype(jnp.float32)

    def one_round(_, links):
        row_free = row_valid & ~links.any(axis=-1, keepdims=True)  # [L,B,S,1]
        col_free = col_valid & ~links.any(axis=-2, keepdims=True)  # [L,B,1,T]
        # SimAlign zeroes both masks when no source row or no target column is free
        open_ = row_free.any(axis=-2, keepdims=True) & col_free.any(axis=-1, keepdims=True)  # [L,B,1,1]
        w = jnp.clip(alpha * row_free.astype(jnp.float32) + alpha * col_free.astype(jnp.float32), 0.0, 1.0)
        w = jnp.where(open_, w, 0.0)
        new = _mutual_argmax(sim * w, valid) & (row_free | col_free) & open_ & long_pair
        return links | new

    return jax.lax.fori_loop(0, rounds, one_round, links)


def match_align(sim_st: np.ndarray) -> np.ndarray:
    """Match: maximum-weight bipartite matching on one (unpadded) similarity matrix.

    Args:
      sim_st: float [m, n] similarities.

    Returns:
      bool [m, n] links (min(m, n) of them).
    """
    sim_st = np.asarray(sim_st, np.float64)
    out = np.zeros(sim_st.shape, bool)
    if sim_st.size:
        r, c = linear_sum_assignment(sim_st, maximize=True)
        out[r, c] = True
    return out


@functools.partial(jax.jit, static_argnames=("method", "max_count", "alpha"))
def align_batch(src_lbsd, tgt_lbtd, src_len_b, tgt_len_b, ratio, *, method: str = "argmax",
                max_count: int = 2, alpha: float = 0.9):
    """Similarity (+ distortion) and ArgMax / IterMax for a padded pair batch, all layers at once.

    Args:
      src_lbsd, tgt_lbtd: float [L, B, S, D], [L, B, T, D] unit vectors.
      src_len_b, tgt_len_b: int [B] true lengths (0 for padding pairs).
      ratio: float scalar distortion ratio (0 = off).
      method: "argmax", "itermax", or "sim" (return the similarities, for Match on the host).

    Returns:
      bool [L, B, S, T] links, or float32 [L, B, S, T] similarities for `method="sim"`.
    """
    s, t = src_lbsd.shape[2], tgt_lbtd.shape[2]
    sim = similarity(src_lbsd, tgt_lbtd) * distortion(src_len_b, tgt_len_b, s, t, ratio)[None]
    if method == "sim":
        return sim
    if method == "argmax":
        return argmax_align(sim, src_len_b, tgt_len_b)
    if method == "itermax":
        return itermax_align(sim, src_len_b, tgt_len_b, max_count=max_count, alpha=alpha)
    raise ValueError(f"method must be 'argmax', 'itermax' or 'sim', got {method!r}")


# -------------------------------------------------------------------------------------- metrics ----

def alignment_counts(pred: set, sure: set, possible: set) -> np.ndarray:
    """Counts `[|A|, |S|, |A & S|, |A & P|]` for one sentence (P is taken as possible | sure)."""
    p = set(possible) | set(sure)
    a = set(pred)
    return np.array([len(a), len(sure), len(a & set(sure)), len(a & p)], np.int64)


def alignment_metrics(counts) -> dict[str, float]:
    """Precision, recall, F1 and AER from corpus-summed counts `[|A|, |S|, |A & S|, |A & P|]`.

    P = |A&P| / |A|, R = |A&S| / |S|, F1 = 2PR / (P + R), AER = 1 - (|A&S| + |A&P|) / (|A| + |S|)
    (Och & Ney 2003). Empty denominators give 0 (precision, recall, F1) and 1 (AER).
    """
    a, s, a_s, a_p = (float(x) for x in counts)
    prec = a_p / a if a else 0.0
    rec = a_s / s if s else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    aer = 1.0 - (a_s + a_p) / (a + s) if a + s else 1.0
    return {"precision": prec, "recall": rec, "f1": f1, "aer": aer}


# --------------------------------------------------------------------------------------- driver ----

def _layer_ids(layers, num_layers: int) -> list[int]:
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers must be 'all', an int or a list of ints, got {layers!r}")
        return list(range(num_layers + 1))
    ids = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    bad = [i for i in ids if not 0 <= int(i) <= num_layers]
    if bad or not ids:
        raise ValueError(f"layers {bad or ids} out of range 0..{num_layers}")
    return [int(i) for i in ids]


def _check_gold(gold) -> None:
    n = len(gold.src)
    lens = {"src": n, "tgt": len(gold.tgt), "sure": len(gold.sure), "possible": len(gold.possible)}
    if len(set(lens.values())) != 1:
        raise AlignmentError(f"alignment set: mismatched line counts {lens}")
    for k in range(n):
        m, nt = len(gold.src[k]), len(gold.tgt[k])
        for kind, links in (("sure", gold.sure[k]), ("possible", gold.possible[k])):
            for i, j in links:
                if not (0 <= i < m and 0 <= j < nt):
                    raise AlignmentError(
                        f"alignment set: pair {k} (line {k + 1}): {kind} link {i}-{j} is past the sentence "
                        f"end (src {m} words, tgt {nt} words)")


def _encode_sentences(tokenizer, sentences, *, max_len: int):
    """Subword ids and word spans of each sentence, one encoder row per sentence.

    Uses the data layer's `encode_words` (each word tokenized on its own, as SimAlign does).

    Returns:
      per sentence `(ids int32 [n+2] with <s> ... </s>, word_start int32 [w], word_end int32 [w], status)`
      with status in {"ok", "empty", "unk", "too_long"} (ids None unless "ok").
    """
    from xlmr_dynamics.data import encode_words

    out = []
    nonempty = [k for k, x in enumerate(sentences) if len(x)]
    offsets = np.concatenate([[0], np.cumsum([len(sentences[k]) for k in nonempty])]).astype(np.int64)
    enc = encode_words(tokenizer, [list(sentences[k]) for k in nonempty], max_len=max_len)
    by_sent: dict[int, list] = {}
    for seg in enc.segments:
        wid = np.asarray(seg.word_id)
        if wid.size:
            k = nonempty[int(np.searchsorted(offsets, wid.min(), side="right") - 1)]
            by_sent.setdefault(k, []).append(seg)
    for k, words in enumerate(sentences):
        segs = by_sent.get(k, [])
        if not words:
            out.append((None, None, None, "empty"))
        elif len(segs) != 1 or len(segs[0].word_id) != len(words):
            out.append((None, None, None, "too_long"))
        else:
            seg = segs[0]
            order = np.argsort(np.asarray(seg.word_id))
            out.append((np.asarray(seg.ids, np.int32), np.asarray(seg.word_start, np.int32)[order],
                        np.asarray(seg.word_end, np.int32)[order], "ok"))
    # "all <unk>": every subword is <unk> or a bare '\u2581' (the word-start marker spm emits before an
    # unknown character)
    bare = {i for i in (getattr(tokenizer, "piece_to_id", lambda p: None)("\u2581"),) if i is not None}
    res = []
    for ids, ws, we, status in out:
        if status == "ok":
            body = ids[1:-1]
            if not bare and hasattr(tokenizer, "id_to_piece"):
                bare = {int(i) for i in set(body.tolist()) if tokenizer.id_to_piece(int(i)) == "\u2581"}
            if np.isin(body, [tokenizer.unk_id, *bare]).all():
                status = "unk"
        res.append((ids, ws, we, status))
    return res


def _units(ws, we, pooling):
    """Unit spans of one sentence: words (mean) or subwords; plus unit -> word map."""
    if pooling == "mean":
        return ws, we, np.arange(ws.size)
    lens = np.maximum(we - ws, 1)
    starts = np.concatenate([np.arange(a, a + n) for a, n in zip(ws, lens)]).astype(np.int32)
    return starts, starts + 1, np.repeat(np.arange(ws.size), lens)


@functools.partial(jax.jit, static_argnames=("cfg", "method", "max_count", "alpha"))
def _encode_align_step(params, ids_2bt, start_2bu, end_2bu, src_len_b, tgt_len_b, layers, ratio, *, cfg,
                       method: str, max_count: int, alpha: float):
    """Encode source rows [:B] and target rows [B:] together, pool units, align all layers."""
    from xlmr_dynamics import extract, model

    b = src_len_b.shape[0]
    mask = (ids_2bt != cfg.pad_token_id).astype(jnp.int32)
    hidden = model.hidden_states(params, ids_2bt, mask, cfg=cfg)[layers]  # [L', 2B, T, D]
    units = extract.pool_words(hidden, start_2bu, end_2bu, "mean")  # [L', 2B, U, D]
    return align_batch(units[:, :b], units[:, b:], src_len_b, tgt_len_b, ratio, method=method,
                       max_count=max_count, alpha=alpha)


def _bucket(x: int, minimum: int = 8) -> int:
    return max(minimum, 1 << (max(int(x), 1) - 1).bit_length())


def align_vectors(src_vecs: Sequence[np.ndarray], tgt_vecs: Sequence[np.ndarray], *, method: str = "argmax",
                  distortion_ratio: float = 0.0, pairs_per_batch: int = 32, max_count: int = 2,
                  alpha: float = 0.9) -> list[np.ndarray]:
    """Align unit vectors of many sentence pairs, all layers at once.

    Args:
      src_vecs, tgt_vecs: per pair, float [L, m_k, D] and [L, n_k, D] (same L, D for all pairs).
      method: "argmax", "itermax" or "match".
      distortion_ratio: distortion prior ratio (0 = off).
      pairs_per_batch: pairs per jitted call (pairs are grouped by padded size to limit recompiles).

    Returns:
      per pair, bool [L, m_k, n_k] unit links.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n = len(src_vecs)
    out: list[np.ndarray | None] = [None] * n
    if not n:
        return []
    sizes = [(_bucket(s.shape[1]), _bucket(t.shape[1])) for s, t in zip(src_vecs, tgt_vecs)]
    groups: dict[tuple[int, int], list[int]] = {}
    for k, st in enumerate(sizes):
        groups.setdefault(st, []).append(k)
    l_, d = src_vecs[0].shape[0], src_vecs[0].shape[2]
    jmethod = "sim" if method == "match" else method
    for (sp, tp), idx in sorted(groups.items()):
        for c in range(0, len(idx), pairs_per_batch):
            chunk = idx[c:c + pairs_per_batch]
            b = pairs_per_batch if len(idx) > pairs_per_batch else _bucket(len(chunk), 1)
            src = np.zeros((l_, b, sp, d), np.float32)
            tgt = np.zeros((l_, b, tp, d), np.float32)
            sl = np.zeros(b, np.int32)
            tl = np.zeros(b, np.int32)
            for r, k in enumerate(chunk):
                m, nn = src_vecs[k].shape[1], tgt_vecs[k].shape[1]
                src[:, r, :m], tgt[:, r, :nn], sl[r], tl[r] = src_vecs[k], tgt_vecs[k], m, nn
            res = np.asarray(align_batch(src, tgt, sl, tl, jnp.float32(distortion_ratio), method=jmethod,
                                         max_count=max_count, alpha=alpha))
            for r, k in enumerate(chunk):
                block = res[:, r, :sl[r], :tl[r]]
                out[k] = np.stack([match_align(x) for x in block]) if method == "match" else block
    return out


def run_alignment(encoder, tokenizer, gold, *, layers="all", method: str = "argmax", pooling: str = "mean",
                  distortion: float = 0.0, max_len: int = 512, tokens_per_batch: int = 8192,
                  pairs_per_batch: int = 32, max_count: int = 2, alpha: float = 0.9,
                  eval_lang: str | None = None) -> list[dict]:
    """Align every gold pair with the encoder and score every requested layer.

    Args:
      encoder: `xlmr_dynamics.model.Encoder`.
      tokenizer: `XLMRTokenizer` (needs `unk_id` and whatever `encode_words` uses).
      gold: `AlignmentSet` (src/tgt word lists, sure/possible 0-based link sets, English first).
      layers: "all", a hidden-state index (0 = embeddings) or a list of them.
      method: "argmax", "itermax" or "match".
      pooling: "mean" (word = mean of its subwords) or "subword" (subword links -> word links).
      distortion: distortion prior ratio (0 = off).
      max_len: longest segment (subwords incl. specials), capped at the model's `max_seq_len`; longer
        sentences are skipped and counted as "too_long".
      tokens_per_batch: cap on encoder tokens per jitted call (2 * pairs * padded row length).
      pairs_per_batch: cap on sentence pairs per jitted call.
      max_count, alpha: IterMax settings (SimAlign's `max_count`, total rounds incl. ArgMax, and
        `alpha_ratio`).
      eval_lang: target language code for the rows (default `gold.lang` if present, else "xx").

    Returns:
      rows `{task: "align", train_lang: "en", eval_lang, layer, seed: 0, metric, value, n, extra}`, four
      per layer (precision, recall, f1, aer); `n` = sentence pairs scored; `extra` has the corpus counts,
      settings and skipped pairs by reason.

    Raises:
      AlignmentError: mismatched line counts or gold links past a sentence end.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    _check_gold(gold)
    lay = _layer_ids(layers, encoder.config.num_layers)
    max_len = min(max_len, encoder.config.max_seq_len)  # longer rows would run past the position table
    src = _encode_sentences(tokenizer, gold.src, max_len=max_len)
    tgt = _encode_sentences(tokenizer, gold.tgt, max_len=max_len)
    keep, skipped = [], {"empty": 0, "unk": 0, "too_long": 0}
    for k in range(len(gold.src)):
        reason = next((r for r in ("empty", "unk", "too_long") if r in (src[k][3], tgt[k][3])), None)
        if reason:
            skipped[reason] += 1
        else:
            keep.append(k)
    su = {k: _units(src[k][1], src[k][2], pooling) for k in keep}
    tu = {k: _units(tgt[k][1], tgt[k][2], pooling) for k in keep}
    cfg = encoder.config
    params = encoder.device_params()
    jmethod = "sim" if method == "match" else method
    lay_arr = jnp.asarray(lay, jnp.int32)
    # group pairs by row length rounded up to a multiple of 16 (and the batch to a multiple of 4), so
    # few shapes compile and little padding is computed; the unit axis is padded to the row length
    # (units <= subwords), which costs little next to the encoder
    groups: dict[tuple[int, int], list[int]] = {}
    for k in keep:
        t = -(-max(src[k][0].size, tgt[k][0].size) // 16) * 16
        groups.setdefault((t, t), []).append(k)
    pending = []
    for (t, u), idx in sorted(groups.items()):
        bmax = max(1, min(pairs_per_batch, tokens_per_batch // (2 * t)))
        for c in range(0, len(idx), bmax):
            chunk = idx[c:c + bmax]
            b = min(bmax, -(-len(chunk) // 4) * 4)
            ids = np.full((2 * b, t), cfg.pad_token_id, np.int32)
            st = np.zeros((2 * b, u), np.int32)
            en = np.ones((2 * b, u), np.int32)
            sl = np.zeros(b, np.int32)
            tl = np.zeros(b, np.int32)
            for r, k in enumerate(chunk):
                for row, (seq, units_) in ((r, (src[k][0], su[k])), (b + r, (tgt[k][0], tu[k]))):
                    ids[row, :seq.size] = seq
                    n_u = units_[0].size
                    st[row, :n_u], en[row, :n_u] = units_[0], units_[1]
                sl[r], tl[r] = su[k][0].size, tu[k][0].size
            out = _encode_align_step(params, ids, st, en, sl, tl, lay_arr, jnp.float32(distortion),
                                     cfg=cfg, method=jmethod, max_count=max_count, alpha=alpha)
            pending.append((chunk, out, sl, tl))
    links = {}
    for chunk, out, sl, tl in pending:
        res = np.asarray(out)
        for r, k in enumerate(chunk):
            block = res[:, r, :sl[r], :tl[r]]
            links[k] = np.stack([match_align(x) for x in block]) if method == "match" else block
    su = {k: v[2] for k, v in su.items()}
    tu = {k: v[2] for k, v in tu.items()}
    links = [links[k] for k in keep]
    counts = np.zeros((len(lay), 4), np.int64)
    for k, a_lst in zip(keep, links):
        m, nt = len(gold.src[k]), len(gold.tgt[k])
        sure = np.zeros((m, nt), bool)
        poss = np.zeros((m, nt), bool)
        for i, j in gold.sure[k]:
            sure[i, j] = poss[i, j] = True
        for i, j in gold.possible[k]:
            poss[i, j] = True
        for li in range(len(lay)):
            pred = np.zeros((m, nt), bool)
            ii, jj = np.nonzero(a_lst[li])
            pred[su[k][ii], tu[k][jj]] = True
            counts[li] += [pred.sum(), sure.sum(), (pred & sure).sum(), (pred & poss).sum()]
    lang = eval_lang or getattr(gold, "lang", None) or "xx"
    rows = []
    for li, layer in enumerate(lay):
        vals = alignment_metrics(counts[li])
        extra = {"method": method, "pooling": pooling, "distortion": float(distortion),
                 "counts": dict(zip(("pred", "sure", "pred_sure", "pred_possible"), counts[li].tolist())),
                 "skipped": dict(skipped)}
        for metric in METRICS:
            rows.append({"task": "align", "train_lang": "en", "eval_lang": lang, "layer": layer, "seed": 0,
                         "metric": metric, "value": float(vals[metric]), "n": len(keep), "extra": extra})
    return rows


__all__: Iterable[str] = (
    "AlignmentError", "similarity", "distortion", "argmax_align", "itermax_align", "match_align",
    "align_batch", "align_vectors", "alignment_counts", "alignment_metrics", "run_alignment",
)
