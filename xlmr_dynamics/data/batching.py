"""Batching segments into a few fixed padded shapes (each new shape is a new XLA compile).

Owns: `make_batches` -> `BatchPlan`.

Segments are bucketed by length into `seq_buckets` (about 1.5x apart by default; powers of two pad
EWT by 43 %, these by 26 % at 4096 tokens per batch); within a bucket they
are sorted by length (stable, so the order is deterministic) and cut into batches of
`tokens_per_batch // T` rows, rounded down to a multiple of `batch_multiple * process_count` (at
least one such multiple). The last batch of a bucket is padded with all-padding rows, never dropped,
so shapes are exactly `{(B_T, T)}`: one per bucket in use. Multi-host: every process computes the
same plan from the segment lengths and materialises only its contiguous share of every batch's rows,
so all hosts see the same shapes and number of batches.

Batch dict (numpy int32, `[B_local, T]`): `input_ids` (pad = 1), `attention_mask`, `word_start`,
`word_end`, `word_id` (-1 = padding slot); word slots W == T (a segment never has more words than
subwords).
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
    groups: list[tuple[int, list[int]]]  # (T, segment indices of the global batch, padded with -1)
    rows: int  # global rows per batch of each bucket: see `rows_for`
    rows_for: dict
    process_index: int
    process_count: int
    stats: dict

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def shapes(self) -> set[tuple[int, int]]:
        return {(self.rows_for[t] // self.process_count, t) for t, _ in self.groups}

    @property
    def padding_fraction(self) -> float:
        return self.stats["padding_fraction"]

    def __iter__(self) -> Iterator[dict]:
        for t, idx in self.groups:
            share = len(idx) // self.process_count
            mine = idx[self.process_index * share:(self.process_index + 1) * share]
            yield _materialise([self.segments[i] if i >= 0 else None for i in mine], t)


def _materialise(segs, t: int) -> dict:
    b = len(segs)
    out = {
        "input_ids": np.full((b, t), PAD, np.int32),
        "attention_mask": np.zeros((b, t), np.int32),
        "word_start": np.zeros((b, t), np.int32),
        "word_end": np.ones((b, t), np.int32),
        "word_id": np.full((b, t), -1, np.int32),
    }
    for r, s in enumerate(segs):
        if s is None:
            continue
        n, w = len(s.ids), len(s.word_id)
        out["input_ids"][r, :n] = s.ids
        out["attention_mask"][r, :n] = 1
        out["word_start"][r, :w] = s.word_start
        out["word_end"][r, :w] = s.word_end
        out["word_id"][r, :w] = s.word_id
    return out


def make_batches(segments, *, seq_buckets=DEFAULT_BUCKETS, tokens_per_batch: int = 8192, batch_multiple: int = 1,
                 process_index: int = 0, process_count: int = 1) -> BatchPlan:
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
    padded_tokens = 0
    for bi, t in enumerate(buckets):
        idx = np.flatnonzero(which == bi)
        if not len(idx):
            continue
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        rows = max(unit, (tokens_per_batch // t) // unit * unit)
        rows_for[t] = rows
        for start in range(0, len(idx), rows):
            chunk = idx[start:start + rows].tolist()
            chunk += [-1] * (rows - len(chunk))
            groups.append((t, chunk))
            padded_tokens += rows * t
    real = int(lengths.sum())
    stats = dict(segments=len(segments), batches=len(groups), real_tokens=real, padded_tokens=padded_tokens,
                 padding_fraction=(1 - real / padded_tokens) if padded_tokens else 0.0,
                 buckets_used=sorted(rows_for))
    return BatchPlan(list(segments), groups, unit, rows_for, process_index, process_count, stats)
