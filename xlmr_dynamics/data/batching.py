"""Batching segments into a few fixed padded shapes (each new shape is a new XLA compile).

Owns: `make_batches` -> `BatchPlan`.

Segments are bucketed by length into `seq_buckets` (about 1.5x apart by default; powers of two pad
EWT by 43 %, these by 26 % at 4096 tokens per batch); within a bucket they
are sorted by length (stable, so the order is deterministic) and cut into batches of
`tokens_per_batch // T` rows, rounded down to a multiple of `batch_multiple * process_count` (at
least one such multiple). The last batch of a bucket is padded with all-padding rows, never dropped.
By default shapes are exactly `{(B_T, T)}`: one per bucket in use. With `shrink_last=True` (the
sweep's `extract.shrink_last`) the last batch of a bucket keeps only the smallest power-of-two
multiple of `batch_multiple * process_count` rows that holds it, so a bucket holding one long
sentence costs one row, not `B_T` rows of padding (1,000 EWT sentences packed at 128: 15.7 % ->
1.5 % padding); this adds at most `log2(B_T)` shapes per bucket (each compiled once per process).
Multi-host: every process computes the same plan from the segment lengths and materialises only its contiguous share of every batch's rows,
so all hosts see the same shapes and number of batches.

Batch dict (numpy int32, `[B_local, T]`): `input_ids` (pad = 1), `attention_mask`, `segment_ids`
(1, 2, ... per segment in the row, 0 = padding), `word_start`, `word_end`, `word_id` (-1 = padding
slot); word slots W == T (a row never has more words than subwords).

Packing (`pack=True`): segments of up to `pack_len` tokens are packed first-fit-decreasing into rows
of exactly `pack_len` tokens (several per row; the model attends within each segment only and
restarts positions, see `model._positions_and_bias`), which removes nearly all padding; longer
segments are bucketed as above. Results are identical to unpacked batches up to float rounding.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

PAD = 1
DEFAULT_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # ~1.5x apart: 24-30 % padding on EWT


@dataclasses.dataclass
class BatchPlan:
    """Iterable over this process's batches; `stats` has shapes and the padding fraction."""

    segments: list
    groups: list[tuple[int, list]]  # (T, rows of the global batch: a segment index, a list of them, or -1)
    rows: int  # every batch's global row count is a multiple of this (batch_multiple * process_count)
    rows_for: dict  # T -> global rows of a full batch of that bucket
    process_index: int
    process_count: int
    stats: dict

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def shapes(self) -> set[tuple[int, int]]:
        return {(len(rows) // self.process_count, t) for t, rows in self.groups}

    @property
    def padding_fraction(self) -> float:
        return self.stats["padding_fraction"]

    def __iter__(self) -> Iterator[dict]:
        for t, idx in self.groups:
            share = len(idx) // self.process_count
            mine = idx[self.process_index * share:(self.process_index + 1) * share]
            yield _materialise([None if isinstance(i, int) and i < 0 else
                                [self.segments[j] for j in (i if isinstance(i, list) else [i])] for i in mine], t)


def _materialise(rows, t: int) -> dict:
    """rows: per batch row, None (padding) or a list of segments laid out left to right."""
    b = len(rows)
    out = {
        "input_ids": np.full((b, t), PAD, np.int32),
        "attention_mask": np.zeros((b, t), np.int32),
        "segment_ids": np.zeros((b, t), np.int32),
        "word_start": np.zeros((b, t), np.int32),
        "word_end": np.ones((b, t), np.int32),
        "word_id": np.full((b, t), -1, np.int32),
    }
    for r, segs in enumerate(rows):
        pos = slot = 0
        for k, s in enumerate(segs or (), 1):
            n, w = len(s.ids), len(s.word_id)
            out["input_ids"][r, pos:pos + n] = s.ids
            out["attention_mask"][r, pos:pos + n] = 1
            out["segment_ids"][r, pos:pos + n] = k
            out["word_start"][r, slot:slot + w] = s.word_start + pos
            out["word_end"][r, slot:slot + w] = s.word_end + pos
            out["word_id"][r, slot:slot + w] = s.word_id
            pos += n
            slot += w
    return out


def _tail_rows(n: int, unit: int, rows: int) -> int:
    """Rows for a last batch holding `n` rows: the smallest unit * 2^k >= n, capped at `rows`."""
    k = unit
    while k < n:
        k *= 2
    return min(k, rows)


def _pack(lengths: np.ndarray, idx: np.ndarray, capacity: int) -> list[list[int]]:
    """First-fit-decreasing bins of segment indices with total length <= capacity (deterministic)."""
    order = idx[np.argsort(-lengths[idx], kind="stable")]
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order.tolist():
        n = int(lengths[i])
        for b, room in enumerate(free):
            if n <= room:
                bins[b].append(i)
                free[b] -= n
                break
        else:
            bins.append([i])
            free.append(capacity - n)
    return bins


def make_batches(segments, *, seq_buckets=DEFAULT_BUCKETS, tokens_per_batch: int = 8192, batch_multiple: int = 1,
                 process_index: int = 0, process_count: int = 1, pack: bool = False, pack_len: int = 128,
                 shrink_last: bool = False) -> BatchPlan:
    """Plan fixed-shape batches over `segments` (see the module docstring).

    Raises:
      ValueError: a segment longer than the largest bucket, or bad process arguments.
    """
    buckets = tuple(sorted(seq_buckets))
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    lengths = np.fromiter((len(s.ids) for s in segments), np.int64, len(segments))
    if len(lengths) and lengths.max() > buckets[-1]:
        raise ValueError(f"a segment has {lengths.max()} tokens, more than the largest bucket {buckets[-1]}")
    which = np.searchsorted(np.asarray(buckets), lengths)
    unit = batch_multiple * process_count
    groups, rows_for = [], {}

    def cut(t: int, items: list, rows: int) -> None:
        """Batches of `rows` rows over `items` (segment indices or bins); the last one padded."""
        rows_for[t] = rows
        for start in range(0, len(items), rows):
            chunk = items[start:start + rows]
            chunk += [-1] * ((_tail_rows(len(chunk), unit, rows) if shrink_last else rows) - len(chunk))
            groups.append((t, chunk))

    if pack:
        small = np.flatnonzero(lengths <= pack_len)
        which[small] = -1  # handled here, not by the buckets
        bins = _pack(lengths, small, pack_len)
        if bins:
            cut(pack_len, bins, max(unit, (tokens_per_batch // pack_len) // unit * unit))
    for bi, t in enumerate(buckets):
        idx = np.flatnonzero(which == bi)
        if len(idx):
            idx = idx[np.argsort(lengths[idx], kind="stable")]
            cut(t, idx.tolist(), max(unit, (tokens_per_batch // t) // unit * unit))
    padded_tokens = sum(len(rows) * t for t, rows in groups)
    real = int(lengths.sum())
    stats = dict(segments=len(segments), batches=len(groups), real_tokens=real, padded_tokens=padded_tokens,
                 padding_fraction=(1 - real / padded_tokens) if padded_tokens else 0.0,
                 buckets_used=sorted(rows_for))
    return BatchPlan(list(segments), groups, unit, rows_for, process_index, process_count, stats)
