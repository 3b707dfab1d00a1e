"""Tokenization for probing: words -> XLM-R subwords with an exact span per word; sentence pairs.

Owns: `Segment`, `EncodedWords`, `encode_words`, `encode_pairs`.

Each word is tokenized on its own (as SimAlign and probing code do): SentencePiece adds the word-
initial `▁` to every word, so a word's pieces do not depend on its neighbours and each distinct word
form is tokenized once (cached). A word that yields no piece (e.g. a lone zero-width character) gets
`<unk>`, so every word has a slot. Spans are subword positions in the segment (`<s>` at 0), end
exclusive: first, last and mean pooling are all derivable. With `skip_space_piece`, a word whose
pieces start with a bare `▁` followed by more pieces (common for words of unspaced scripts, e.g.
`▁` `中国`, since the word-initial `▁` rarely merges with their characters) has its span start after
that `▁`: first-subword pooling then takes the word's first content piece, not the shared
space marker.

Long sentences are never truncated silently: a sentence whose subwords exceed `max_len - 2` is cut
into overlapping windows on word boundaries (stride: half a window); every word is assigned to
exactly one window, the one where it is most central, so the recombined output has one vector per
word. A single word longer than a whole window keeps only its first `max_len - 2` pieces (counted in
`stats["truncated_words"]`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

BOS, PAD, EOS, UNK = 0, 1, 2, 3


@dataclasses.dataclass
class Segment:
    """One model input row.

    Attributes:
      ids: int32 [n], `<s> ... </s>` (pairs: `<s> a </s></s> b </s>`).
      word_start, word_end: int32 [w], subword span of each word owned by this segment.
      word_id: int32 [w], global index of each word (or example) in the dataset.
    """

    ids: np.ndarray
    word_start: np.ndarray
    word_end: np.ndarray
    word_id: np.ndarray


@dataclasses.dataclass
class EncodedWords:
    segments: list[Segment]
    num_words: int  # total words (or examples); word_id covers 0..num_words-1 exactly once
    stats: dict


class _WordCache:
    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.cache: dict[str, list[int]] = {}

    def pieces(self, words: list[str]) -> list[list[int]]:
        missing = [w for w in dict.fromkeys(words) if w not in self.cache]
        if missing:
            enc = self.tok.encode_batch(missing) if hasattr(self.tok, "encode_batch") else [
                self.tok.encode(w) for w in missing]
            unk = getattr(self.tok, "unk_id", UNK)
            for w, ids in zip(missing, enc):
                self.cache[w] = list(ids) if len(ids) else [unk]
        return [self.cache[w] for w in words]


def _windows(lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Word-index windows [a, b) of at most `budget` subwords, each starting about half way into the
    previous one; the last ends at the last word."""
    n = len(lengths)
    out = []
    a = 0
    while True:
        total, b = 0, a
        while b < n and total + lengths[b] <= budget:
            total += lengths[b]
            b += 1
        b = max(b, a + 1)  # a single over-long word still forms a window
        out.append((a, b))
        if b >= n:
            return out
        # next window starts at the word where the first half of this one ends
        half, acc, nxt = total / 2, 0, a
        while nxt < b and acc + lengths[nxt] <= half:
            acc += lengths[nxt]
            nxt += 1
        a = max(nxt, a + 1)


def _space_piece_id(tokenizer) -> int | None:
    """Id of the bare word-initial `▁` piece, if the tokenizer has one."""
    if not hasattr(tokenizer, "piece_to_id"):
        raise TypeError(f"skip_space_piece needs a tokenizer with piece_to_id, got {type(tokenizer).__name__}")
    return tokenizer.piece_to_id("\u2581")


def encode_words(tokenizer, sentences: list[list[str]], *, max_len: int = 512,
                 skip_space_piece: bool = False) -> EncodedWords:
    """Encode word-tokenized sentences into segments with per-word subword spans.

    Args:
      tokenizer: anything with `encode(text) -> ids` (and optionally `encode_batch`), `unk_id`;
        `skip_space_piece` also needs `piece_to_id`.
      sentences: word lists; word k of sentence s gets the global word_id offset(s) + k.
      max_len: longest segment including `<s>` and `</s>` (the model's 512 positions for XLM-R).
      skip_space_piece: spans start after a leading bare `▁` piece (see module docstring); the
        piece stays in the input. Counted in `stats["space_piece_skipped"]`.

    Returns:
      EncodedWords; `stats` counts sentences, words, subwords, windowed (long) sentences and
      truncated words.
    """
    if max_len < 3:
        raise ValueError("max_len must be at least 3")
    budget = max_len - 2
    cache = _WordCache(tokenizer)
    segments: list[Segment] = []
    stats = dict(sentences=len(sentences), words=0, subwords=0, long_sentences=0, windows=0,
                 truncated_words=0, empty_sentences=0, space_piece_skipped=0)
    space = _space_piece_id(tokenizer) if skip_space_piece else None
    offset = 0
    for words in sentences:
        n = len(words)
        if n == 0:
            stats["empty_sentences"] += 1
            continue
        pieces = cache.pieces(list(words))
        for k, p in enumerate(pieces):
            if len(p) > budget:
                pieces[k] = p[:budget]
                stats["truncated_words"] += 1
        lengths = np.fromiter((len(p) for p in pieces), np.int64, n)
        stats["words"] += n
        stats["subwords"] += int(lengths.sum())
        if lengths.sum() <= budget:
            spans = [(0, n)]
        else:
            spans = _windows(lengths, budget)
            stats["long_sentences"] += 1
            stats["windows"] += len(spans)
        # word k -> the window where it is most central (distance of its midpoint to the window's)
        if len(spans) == 1:
            owner = np.zeros(n, np.int64)
        else:
            csum = np.concatenate([[0], np.cumsum(lengths)])
            mid = (csum[:-1] + csum[1:]) / 2
            best = np.full(n, np.inf)
            owner = np.full(n, -1, np.int64)
            for w, (a, b) in enumerate(spans):
                center = (csum[a] + csum[b]) / 2
                dist = np.abs(mid[a:b] - center)
                better = dist < best[a:b]
                best[a:b] = np.where(better, dist, best[a:b])
                owner[a:b] = np.where(better, w, owner[a:b])
        for w, (a, b) in enumerate(spans):
            ids = [BOS]
            starts, ends = [], []
            for k in range(a, b):
                skip = space is not None and len(pieces[k]) > 1 and pieces[k][0] == space
                starts.append(len(ids) + skip)
                stats["space_piece_skipped"] += int(skip and owner[k] == w)
                ids += pieces[k]
                ends.append(len(ids))
            ids.append(EOS)
            mine = np.flatnonzero(owner[a:b] == w)
            segments.append(Segment(np.asarray(ids, np.int32), np.asarray(starts, np.int32)[mine],
                                    np.asarray(ends, np.int32)[mine], (offset + a + mine).astype(np.int32)))
        offset += n
    return EncodedWords(segments, offset, stats)


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], *, max_len: int = 512) -> EncodedWords:
    """Encode sentence pairs jointly as `<s> a </s></s> b </s>` (XLM-R's pair format).

    Each pair is one "word" spanning the whole segment [0, n) with word_id = pair index, so pooling
    "first" gives the `<s>` vector and "mean" the mean over the pair. Pairs longer than `max_len` are
    truncated longest-first and counted in `stats["truncated_pairs"]`.
    """
    firsts = tokenizer.encode_batch([a for a, _ in pairs]) if hasattr(tokenizer, "encode_batch") else [
        tokenizer.encode(a) for a, _ in pairs]
    seconds = tokenizer.encode_batch([b for _, b in pairs]) if hasattr(tokenizer, "encode_batch") else [
        tokenizer.encode(b) for _, b in pairs]
    budget = max_len - 4
    segments, truncated = [], 0
    for k, (a, b) in enumerate(zip(firsts, seconds)):
        a, b = list(a), list(b)
        if len(a) + len(b) > budget:
            truncated += 1
            while len(a) + len(b) > budget:
                (a if len(a) >= len(b) else b).pop()
        ids = np.asarray([BOS] + a + [EOS, EOS] + b + [EOS], np.int32)
        segments.append(Segment(ids, np.array([0], np.int32), np.array([len(ids)], np.int32),
                                np.array([k], np.int32)))
    return EncodedWords(segments, len(pairs), dict(pairs=len(pairs), truncated_pairs=truncated))
