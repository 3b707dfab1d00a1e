"""Masked-LM bits per character (BPC) per language.

Owns: `piece_chars` (character counting), `masked_copies` (host-side int arrays of masked inputs),
`sentence_bits` (jitted scoring) and the driver `bpc_rows`.

Definition (method.md, BPC: the paper's exact recipe is OPEN; this is the documented default):
  BPC = sum over masked subwords of -log2 p(gold subword | masked input) / characters those subwords cover.
- `scheme="each"`: every subword of a sentence is masked once, in its own copy of the sentence (n
  copies for n subwords), so every subword is scored and the characters are the whole text.
- `scheme="sample"`: one copy per sentence with `max(1, round(mask_rate * n))` subwords, drawn without
  replacement with `numpy.random.default_rng(seed)`, all replaced by `<mask>` (no 80/10/10 rule).
- Characters: those of the line with whitespace runs collapsed to one space and trimmed (what
  SentencePiece's normaliser does to whitespace; other characters count as written, before NFKC).
  For `scheme="sample"` they are attributed to pieces: a piece covers `len(piece)` characters with
  each '▁' meta symbol counted as the space it stands for, except a leading '▁' of a sentence's first
  piece (the dummy prefix); `<unk>` pieces (a run of unknown characters is one `<unk>`) share the
  characters the other pieces leave; a remaining difference (NFKC, e.g. '…' -> '...') is spread in
  proportion. So every sentence's pieces cover exactly its characters, and "each" counts them all.
  The number of `<unk>` pieces is reported in `extra["unk"]`.
- Sentences longer than `max_len - 2` subwords are cut into consecutive chunks, each scored with
  `<s> chunk </s>` as its only context. Empty lines (no subwords) are skipped and counted.

Compute: copies are grouped by padded length (powers of two up to `max_len`) into fixed-shape
`[B, T]` batches with `B = tokens_per_batch // T`. Inside the jit the final hidden state is gathered at
the masked positions and only those rows go through the model's own MLM head (`model.LMHead`, the
layer `mlm_logits` applies at every position), so the `[B, T, V]` logits are never formed;
`full_logits=True` uses `model.mlm_logits` and gathers after (same numbers, slower). Only the
per-position bits `[B, K]` reach the host.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from xlmr_dynamics import model as M

SCHEMES = ("each", "sample")
_LN2 = math.log(2.0)
META = "\u2581"


class BPCError(ValueError):
    """Unusable BPC input (names the language and line)."""


def text_chars(text: str) -> int:
    """Characters of a line for BPC: whitespace runs count as one space, none at the ends."""
    return len(" ".join(text.split()))


def piece_chars(pieces: Sequence[str], *, unk_piece: str = "<unk>", text: str | None = None) -> np.ndarray:
    """Characters covered by each piece of one sentence (see module docstring).

    Args:
      pieces: the sentence's SentencePiece pieces, in order (no special tokens).
      text: the sentence; if given, `<unk>` pieces share the characters the others leave and the
        result sums to `text_chars(text)`.

    Returns:
      float64 [n]: the surface length of each piece (`<unk>` = 1 without `text`).
    """
    unk = np.array([p == unk_piece for p in pieces], bool)
    out = np.array([1 if u else len(p) for p, u in zip(pieces, unk)], np.float64)
    if len(pieces) and pieces[0].startswith(META):
        out[0] -= 1
    if text is None or not len(pieces):
        return out
    n = text_chars(text)
    if unk.any():
        out[unk] = max(n - out[~unk].sum(), 0.0) / unk.sum()
    total = out.sum()
    return out * (n / total) if total > 0 else np.full(len(pieces), n / len(pieces))


def _bucket(n: int, max_len: int) -> int:
    return min(max_len, max(16, 1 << (n - 1).bit_length()))


def masked_copies(tokenizer, lines: Sequence[str], *, scheme: str = "each", mask_rate: float = 0.15,
                  seed: int = 0, max_len: int = 512, lang: str = "?"):
    """Build masked copies of every line on the host.

    Args:
      tokenizer: XLM-R tokenizer (`encode`, `id_to_piece`, `bos_id`, `eos_id`, `unk_id`, `mask_id`).
      lines: raw text, one sentence per item.
      scheme: "each" or "sample".
      max_len: longest row, specials included.

    Returns:
      (rows, stats): rows is a list of `(ids int32 [n+2], positions int32 [k], gold int32 [k],
      chars float)` per masked copy (ids already hold `<mask>` at the positions); stats has
      `sentences`, `skipped_empty`, `unk`, `subwords`.
    """
    if scheme not in SCHEMES:
        raise BPCError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not 0.0 < mask_rate <= 1.0:
        raise BPCError(f"mask_rate must be in (0, 1], got {mask_rate}")
    if max_len < 3:
        raise BPCError(f"max_len must be >= 3, got {max_len}")
    rng = np.random.default_rng(seed)
    chunk = max_len - 2
    rows = []
    stats = {"sentences": 0, "skipped_empty": 0, "unk": 0, "subwords": 0}
    for ln, text in enumerate(lines, 1):
        if not isinstance(text, str):
            raise BPCError(f"{lang}: line {ln} is {type(text).__name__}, not str")
        ids = np.asarray(tokenizer.encode(text), np.int32)
        if ids.size == 0:
            stats["skipped_empty"] += 1
            continue
        stats["sentences"] += 1
        stats["subwords"] += int(ids.size)
        stats["unk"] += int((ids == tokenizer.unk_id).sum())
        chars = piece_chars([tokenizer.id_to_piece(int(i)) for i in ids],
                            unk_piece=tokenizer.id_to_piece(tokenizer.unk_id), text=text)
        for c0 in range(0, ids.size, chunk):
            cid, cch = ids[c0:c0 + chunk], chars[c0:c0 + chunk]
            base = np.concatenate([[tokenizer.bos_id], cid, [tokenizer.eos_id]]).astype(np.int32)
            if scheme == "each":
                picks = [np.array([p]) for p in range(cid.size)]
            else:
                k = max(1, int(round(mask_rate * cid.size)))
                picks = [np.sort(rng.choice(cid.size, size=k, replace=False))]
            for p in picks:
                row = base.copy()
                row[p + 1] = tokenizer.mask_id
                rows.append((row, (p + 1).astype(np.int32), cid[p].astype(np.int32), float(cch[p].sum())))
    return rows, stats


@functools.partial(jax.jit, static_argnames=("cfg", "full_logits"))
def sentence_bits(params, input_ids, attention_mask, positions, gold, *, cfg: M.XLMRConfig,
                  full_logits: bool = False):
    """-log2 p(gold | masked input) at the given positions.

    Args:
      params: encoder params (with the MLM head).
      input_ids, attention_mask: int32 [B, T].
      positions: int32 [B, K] masked positions (any in-range value for padding slots).
      gold: int32 [B, K] gold ids at those positions.
      full_logits: use `model.mlm_logits` over all positions, then gather (reference path).

    Returns:
      float32 [B, K] bits.
    """
    if full_logits:
        logits = M.mlm_logits(params, input_ids, attention_mask, cfg=cfg)
        logits_bkv = jnp.take_along_axis(logits, positions[:, :, None], axis=1)
    else:
        _, hidden = M.forward(params, input_ids, attention_mask, cfg=cfg, with_logits=False)
        x_bkd = jnp.take_along_axis(hidden[-1], positions[:, :, None], axis=1)
        logits_bkv = M.LMHead(cfg).apply({"params": params["lm_head"]}, x_bkd,
                                         params["embeddings"]["word_embeddings"])
    logp_bkv = jax.nn.log_softmax(logits_bkv.astype(jnp.float32), axis=-1)
    return -jnp.take_along_axis(logp_bkv, gold[:, :, None], axis=-1)[:, :, 0] / _LN2


def _batches(rows, *, max_len: int, tokens_per_batch: int, pad_id: int):
    """Group rows by padded length into fixed-shape batches (all-pad filler rows have weight 0)."""
    by_t: dict[int, list[int]] = {}
    for r, (ids, _, _, _) in enumerate(rows):
        by_t.setdefault(_bucket(ids.size, max_len), []).append(r)
    for t, idx in sorted(by_t.items()):
        kmax = max(rows[r][1].size for r in idx)
        k = 1 if kmax == 1 else 1 << (kmax - 1).bit_length()
        b = max(1, tokens_per_batch // t)
        for c in range(0, len(idx), b):
            chunk = idx[c:c + b]
            ids = np.full((b, t), pad_id, np.int32)
            pos = np.zeros((b, k), np.int32)
            gold = np.zeros((b, k), np.int32)
            w = np.zeros((b, k), np.float64)
            for i, r in enumerate(chunk):
                row, p, g, _ = rows[r]
                ids[i, :row.size] = row
                pos[i, :p.size], gold[i, :g.size], w[i, :p.size] = p, g, 1.0
            yield ids, (ids != pad_id).astype(np.int32), pos, gold, w


def bpc_rows(encoder, tokenizer, lines_by_lang: dict[str, list[str]], *, scheme: str = "each",
             mask_rate: float = 0.15, seed: int = 0, max_len: int = 512, tokens_per_batch: int = 8192,
             full_logits: bool = False) -> list[dict]:
    """BPC of every language's text under the encoder's MLM head.

    Args:
      encoder: `Encoder` with an MLM head.
      tokenizer: XLM-R tokenizer matching the encoder's vocabulary.
      lines_by_lang: language code -> raw sentences.
      scheme: "each" (mask every subword once) or "sample" (`mask_rate` of each sentence, seeded).
      max_len: longest row incl. specials (capped at the model's `max_seq_len`).
      tokens_per_batch: B * T per jitted call.

    Returns:
      one row per language: `{task: "bpc", train_lang: "", eval_lang, layer: L, seed, metric: "bpc",
      value, n: masked subwords, extra: {bits, chars, sentences, skipped_empty, unk, scheme, ...}}`.

    Raises:
      BPCError: bad settings, a language with no usable line, or an encoder without an MLM head.
    """
    cfg = encoder.config
    if getattr(encoder, "metadata", {}).get("has_mlm_head") is False:
        raise BPCError("bpc needs an MLM head; this encoder was loaded without one")
    max_len = min(max_len, cfg.max_seq_len)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise BPCError(f"tokenizer has {tokenizer.vocab_size} ids but the model only {cfg.vocab_size}")
    params = encoder.device_params()
    out = []
    for lang, lines in lines_by_lang.items():
        rows, stats = masked_copies(tokenizer, lines, scheme=scheme, mask_rate=mask_rate, seed=seed,
                                    max_len=max_len, lang=lang)
        if not rows:
            raise BPCError(f"{lang}: no usable line ({len(lines)} lines, all empty)")
        pending = []
        for ids, mask, pos, gold, w in _batches(rows, max_len=max_len, tokens_per_batch=tokens_per_batch,
                                                pad_id=cfg.pad_token_id):
            pending.append((sentence_bits(params, ids, mask, pos, gold, cfg=cfg,
                                          full_logits=full_logits), w))
        bits = float(sum((np.asarray(b, np.float64) * w).sum() for b, w in pending))
        n = int(sum(r[1].size for r in rows))
        chars = float(sum(r[3] for r in rows))
        if scheme == "each":  # exactly the text's characters (the per-piece shares add up to them)
            chars = float(round(chars))
        if chars == 0:
            raise BPCError(f"{lang}: the masked subwords cover no characters")
        extra = {"bits": bits, "chars": chars, "scheme": scheme, "max_len": max_len, **stats}
        if scheme == "sample":
            extra["mask_rate"] = mask_rate
        out.append({"task": "bpc", "train_lang": "", "eval_lang": lang, "layer": cfg.num_layers, "seed": seed,
                    "metric": "bpc", "value": bits / chars, "n": n, "extra": extra})
    return out
