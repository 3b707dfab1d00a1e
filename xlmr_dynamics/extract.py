"""All-layer feature extraction, sharded data-parallel over the device mesh, pooled on device.

Owns: `pool_words` (subword -> word pooling inside jit), `extract_features` (batches -> word- or
sentence-level features `[L+1, num_items, D]` on the host) and `FeatureCache` (optional on-disk
cache per (checkpoint, dataset, pooling)).

Inputs are the data layer's batches (`input_ids`, `attention_mask`, `word_start`, `word_end`,
`word_id`, all int32 `[B, T]`, `word_id == -1` for padding slots). Each process passes only its own
rows (`make_batches(process_index=..., process_count=...)`); rows are assembled into global arrays
sharded on the batch axis, params are replicated, and the pooled result is gathered to every host.
Sentence features (XNLI) use the same path: one "word" per example spanning the whole pair, so
pooling "first" is the `<s>` vector and "mean" the mean over the pair.

Limits: only the pooled vectors reach the host (never `[L+1, B, T, D]`); the whole result lives in
host memory (`out_dtype=bfloat16` halves it; 13 x 768 x 2 B = 20 KB per word at base size).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from tqdm.auto import tqdm

from xlmr_dynamics import model as M
from xlmr_dynamics import probes
from xlmr_dynamics import sharding as S

log = logging.getLogger(__name__)

POOLINGS = ("first", "last", "mean")
_OUT_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}


class FeatureError(ValueError):
    """Extracted features are unusable (NaN/Inf from a diverged checkpoint)."""


def pool_words(hidden_lbtd, word_start_bw, word_end_bw, pooling: str):
    """Pool subword states into word vectors.

    Args:
      hidden_lbtd: float [L+1, B, T, D].
      word_start_bw, word_end_bw: int [B, W] subword span of each word slot (end exclusive); padding
        slots may hold any in-range values.
      pooling: "first", "last" or "mean".

    Returns:
      float32 [L+1, B, W, D].
    """
    t = hidden_lbtd.shape[2]
    if pooling == "first":
        idx = word_start_bw
    elif pooling == "last":
        idx = word_end_bw - 1
    elif pooling == "mean":
        # mean over [s, e) = (C[e-1] - C[s-1]) / (e - s) with C the inclusive cumulative sum.
        csum = jnp.cumsum(hidden_lbtd.astype(jnp.float32), axis=2)
        csum = jnp.concatenate([jnp.zeros_like(csum[:, :, :1]), csum], axis=2)  # C[-1] = 0 at index 0
        start = jnp.clip(word_start_bw, 0, t)
        end = jnp.clip(jnp.maximum(word_end_bw, word_start_bw + 1), 0, t)
        hi = jnp.take_along_axis(csum, end[None, :, :, None], axis=2)
        lo = jnp.take_along_axis(csum, start[None, :, :, None], axis=2)
        return (hi - lo) / (end - start).astype(jnp.float32)[None, :, :, None]
    else:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    idx = jnp.clip(idx, 0, t - 1)
    return jnp.take_along_axis(hidden_lbtd, idx[None, :, :, None], axis=2).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("cfg", "pooling", "keep", "out_dtype"))
def _extract_step(params, batch, *, cfg: M.XLMRConfig, pooling: str, keep: tuple[int, ...] | None = None,
                  out_dtype: str = "float32"):
    """Pooled features `[len(keep), B, W, D]` in `out_dtype` (layers chosen and cast on device, so
    only what is kept crosses to the host) and the batch's `word_id`."""
    hidden = M.hidden_states(params, batch["input_ids"], batch["attention_mask"], cfg=cfg,
                             segment_ids=batch.get("segment_ids"))
    if keep is not None:
        hidden = hidden[np.asarray(keep)]
    pooled = pool_words(hidden, batch["word_start"], batch["word_end"], pooling)
    return pooled.astype(jnp.dtype(_OUT_DTYPES[out_dtype])), batch["word_id"]


def extract_features(
    encoder: M.Encoder,
    batches: Iterable[dict],
    num_items: int,
    *,
    pooling: str = "first",
    mesh=None,
    out_dtype: str = "float32",
    layers: Iterable[int] | None = None,
    progress: bool | str = False,
    check_finite: bool = True,
    on_device: bool = False,
) -> np.ndarray | jax.Array:
    """Run the encoder over batches and return pooled features for every word / example.

    Args:
      encoder: a loaded `Encoder`.
      batches: this process's batches (dicts of int32 [B_local, T] arrays, see module docstring);
        B_local must be a multiple of `sharding.local_batch_multiple(mesh)`.
      num_items: total number of words (or examples) over all processes; word_id in [0, num_items).
      pooling: "first" (default), "last" or "mean".
      mesh: device mesh (default: all devices).
      out_dtype: "float32" or "bfloat16" for the returned array.
      layers: keep only these hidden-state indices (0 = embeddings); default all L+1.
      progress: show a progress bar (a string is used as its label).
      check_finite: raise FeatureError naming the layers if any feature is NaN/Inf.
      on_device: return a `jax.Array` on this process's first local device, filled in place (donated
        updates), in `probes.device_features` format (float32, or bfloat16 as its uint16 bit
        patterns), instead of a numpy array: probes take it without any copy, while a numpy result
        is copied by every probe call's `jax.device_put` (on CPU that doubles peak host memory).

    Returns:
      [num_layers_kept, num_items, D] (np.ndarray, or jax.Array if `on_device`); every item is
      filled exactly once.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    mesh = mesh or S.make_mesh()
    cfg = encoder.config
    keep = np.arange(cfg.num_layers + 1) if layers is None else np.asarray(list(layers))
    bad = [int(i) for i in keep if not 0 <= int(i) <= cfg.num_layers]
    if keep.size == 0 or bad:
        raise ValueError(f"layers must be hidden-state indices in [0, {cfg.num_layers}] "
                         f"(0 = embeddings), got {keep.tolist()}")
    keep_static = None if layers is None else tuple(int(i) for i in keep)
    params = encoder.device_params(mesh)  # put on the mesh once per encoder and mesh
    shape = (len(keep), num_items, cfg.hidden_size)
    if on_device:
        out = _zeros_on(jax.local_devices()[0], shape, jnp.uint16 if out_dtype == "bfloat16" else jnp.float32)
    else:
        out = np.zeros(shape, _OUT_DTYPES[out_dtype])
    filled = np.zeros(num_items, np.int32)
    bar = tqdm(batches, desc=progress if isinstance(progress, str) else "extract", unit="batch",
               disable=not progress or jax.process_index() != 0, file=sys.stderr)

    def store(pending) -> None:
        nonlocal out
        pooled, word_id = S.to_host(pending[0]), S.to_host(pending[1])
        valid = word_id >= 0
        ids = word_id[valid]
        if ids.size and (ids.max() >= num_items):
            raise ValueError(f"word_id {ids.max()} out of range for num_items={num_items}")
        if on_device:  # fixed shapes (padding slots point past the end and are dropped): no recompiles
            out = _scatter_items(out, np.where(valid, word_id, num_items).reshape(-1),
                                 pooled.reshape(pooled.shape[0], -1, pooled.shape[-1]))
        else:
            out[:, ids] = pooled[:, valid]
        np.add.at(filled, ids, 1)

    # One batch in flight: batch i+1 is dispatched (jax runs it asynchronously) before batch i's
    # features are copied to the host, so host work overlaps device work.
    pending = None
    multiple = S.local_batch_multiple(mesh)
    for batch in bar:
        if batch["input_ids"].shape[0] % multiple:
            raise ValueError(f"a batch has {batch['input_ids'].shape[0]} rows, not a multiple of this process's "
                             f"{multiple} devices; plan batches with make_batches(batch_multiple={multiple})")
        if batch["input_ids"].shape[1] > cfg.max_seq_len:
            raise ValueError(f"batch length {batch['input_ids'].shape[1]} exceeds the model's "
                             f"{cfg.max_seq_len} positions; encode with max_len <= {cfg.max_seq_len}")
        keys = ("input_ids", "attention_mask", "word_start", "word_end", "word_id") + (
            ("segment_ids",) if "segment_ids" in batch else ())
        arrays = S.global_batch({k: batch[k] for k in keys}, mesh)
        nxt = _extract_step(params, arrays, cfg=cfg, pooling=pooling, keep=keep_static, out_dtype=out_dtype)
        if pending is not None:
            store(pending)
        pending = nxt
    if pending is not None:
        store(pending)
    if (filled != 1).any():
        bad = np.flatnonzero(filled != 1)
        raise ValueError(f"{bad.size} items were filled {sorted(set(filled[bad].tolist()))} times, not once "
                         f"(first: {bad[:5].tolist()}); batches do not cover 0..{num_items - 1} exactly")
    if check_finite:
        assert_finite(out, keep)
    return out


def _zeros_on(device, shape, dtype) -> jax.Array:
    return jax.jit(lambda: jnp.zeros(shape, dtype), out_shardings=jax.sharding.SingleDeviceSharding(device))()


@functools.partial(jax.jit, donate_argnums=0)
def _scatter_items(out, ids, vals):
    """out[:, ids] = vals in place (out is donated); ids >= num_items are dropped. A uint16 `out`
    holds bfloat16 bit patterns (`probes.device_features` format)."""
    vals = probes.bf16_bits(vals) if out.dtype == jnp.uint16 else vals.astype(out.dtype)
    return out.at[:, ids].set(vals, mode="drop")


@jax.jit
def _finite_per_layer(x):
    if x.dtype == jnp.uint16:  # bfloat16 bits: exponent all ones = Inf/NaN
        return ((x & 0x7F80) != 0x7F80).reshape(x.shape[0], -1).all(axis=1)
    return jnp.isfinite(x.astype(jnp.float32)).reshape(x.shape[0], -1).all(axis=1)


def assert_finite(features, layer_ids=None) -> None:
    """Raise FeatureError naming the layers whose features contain NaN or Inf."""
    layer_ids = np.arange(features.shape[0]) if layer_ids is None else np.asarray(layer_ids)
    if isinstance(features, jax.Array):
        ok = np.asarray(_finite_per_layer(features))
    else:
        ok = [np.isfinite(features[i].astype(np.float32)).all() for i in range(features.shape[0])]
    bad = [int(layer_ids[i]) for i in range(features.shape[0]) if not ok[i]]
    if bad:
        raise FeatureError(f"features contain NaN/Inf in layers {bad} (diverged checkpoint?)")


class FeatureCache:
    """On-disk cache of extracted features, one `.npy` per key, written atomically.

    Keys are built from (checkpoint hash, dataset fingerprint, pooling, dtype). The size is printed
    before writing; a present file is reused (memory-mapped).
    """

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(**parts) -> str:
        return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array (memory-mapped), or None if absent or unreadable (a truncated or
        foreign file is reported and then recomputed and overwritten)."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            arr = np.load(p, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            log.warning("feature cache: %s is unreadable (%s); recomputing it", p, e)
            return None
        # np.save writes bfloat16 (an ml_dtypes extension type) as raw 2-byte records ("|V2").
        return arr.view(ml_dtypes.bfloat16) if arr.dtype == np.dtype("V2") else arr

    def put(self, key: str, features) -> Path:
        """Writes `features` (numpy, or a device array in `probes.device_features` format, whose
        uint16 bf16 bit patterns are stored as bfloat16) atomically; prints the size first."""
        p = self.path(key)
        features = np.asarray(features)
        if features.dtype == np.uint16:
            features = features.view(ml_dtypes.bfloat16)
        print(f"feature cache: writing {features.nbytes / 2**20:.1f} MiB to {p}", file=sys.stderr)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, features)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return p
