"""Probes over frozen features: every layer and every seed trained in one jitted step.

This module owns generic probing: features, labels and (optionally) word-pair indices in, fitted
probes and metrics out. It knows nothing about UD, XNLI or the model; `tasks.py` builds labels and
pairs, the lead's extraction builds features.

Two probe families share one result type, `ProbeFit`:

* SGD probes (`fit_probes`): a linear softmax probe (default) or a one-hidden-layer MLP, trained
  with Adam(W) on minibatches. All `L` layers and `S` seeds are trained together: parameters carry
  leading `[L, S]` axes; one training step updates every probe: per layer (unrolled inside the
  step, so each layer's gathered minibatch stays in cache: 1.5x faster than one gather for all
  layers on 2 CPU cores) the loss is one batched einsum over that layer's seeds (the sum of
  independent per-probe losses, so its gradient is every probe's own gradient; measured ~1.3x
  faster on XLA:CPU than nested `jax.vmap`s of a per-probe loss), and one epoch is one `lax.scan`
  over minibatches inside one jitted call (dispatch is paid once per epoch, not per step). The
  minibatch order is shared by all layers; each seed has its own order (or, with
  `shuffle_per_seed=False`, all seeds share one, which lets one gathered minibatch serve every
  seed). Model selection on dev happens inside the same jitted call: after the epoch every
  (layer, seed) probe is scored on dev and its best parameters are kept with `jnp.where`.
* Closed-form ridge (`fit_ridge`): least squares to +-1 one-hot targets with an unpenalised bias,
  all layers at once; every L2 strength of a grid is solved from one eigendecomposition per layer
  (idea from big_vision's `fewshot_lsr.py`, re-implemented) and the strength is chosen on dev.

Inputs. Features `x` are float32 or bfloat16 `[L, N, D]` (numpy or jax), or `device_features(x)`.
They are put on the device once per call in `device_features` format (bf16 as raw 16-bit patterns,
see there: this is what keeps XLA from making a float32 copy of a bf16 array); each minibatch is
gathered and widened to float32 on device. Pass `device_features(x)` to avoid a copy per call.
Examples address feature rows through an index: by default example n is row n; `rows` (int `[M]`) picks rows; `pairs` (int `[M, 2]`)
makes example m the pair feature `[h_i; h_j; h_i * h_j]` (i, j = pairs[m]), built per minibatch on
device so no `[L, M, 3D]` array is materialised.

Devices. `ProbeConfig.devices` spreads the layers over local devices: contiguous blocks of
layers (13 layers on 4 devices: 4+3+3+3, no padding), one per device, each trained by the same
jitted epoch on its own features, dispatched asynchronously so the devices run concurrently;
early stopping is decided over all blocks, so results equal one device's. For multi-GPU hosts and
TPU hosts. On a CPU (simulated devices share the cores and memory bandwidth) it does not pay:
measured at full EWT size, 3.19 vs 3.35 probe-epochs/s on 2 cores, and a copy of the other blocks.

Limits: the features of one block must fit in one device's (host, on CPU) memory (a numpy
array is copied by every call: pass `device_features(x)`, or `extract_features(on_device=True)`
output, to copy nothing); ridge runs on one device and accumulates `X^T X` in float32
on device and solves in float64 on the host, so its cost grows with the cube of the (pair) feature size.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "bf16_bits",
    "device_features",
    "layer_ranges",
    "FeatureError",
    "ProbeConfig",
    "ProbeFit",
    "evaluate",
    "fit_probes",
    "fit_ridge",
    "pair_features",
    "predict_probes",
    "train_subset",
    "check_features",
]

_PROBE_KINDS = ("linear", "mlp", "ridge")


class FeatureError(ValueError):
    """Features contain NaN/Inf (e.g. a diverged checkpoint).

    Attributes:
        layers: sorted list of layer indices (into the feature array's first axis) that are bad.
        name: which argument was bad (e.g. "train_x").
    """

    def __init__(self, name: str, layers: list[int]):
        self.name = name
        self.layers = list(layers)
        super().__init__(
            f"{name} has non-finite values (NaN/Inf) in layers {self.layers}; "
            "skip these (checkpoint, layer) units"
        )


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    """Probe hyperparameters. Defaults follow method.md section 2 (the paper's are OPEN).

    Attributes:
        probe: "linear" (softmax regression, default), "mlp" (one ReLU hidden layer) or "ridge"
            (closed form, see `fit_ridge`; used by `tasks.run_probe_task`).
        hidden_size: MLP hidden width (ignored unless probe == "mlp").
        learning_rate: Adam learning rate.
        batch_size: minibatch size. The last minibatch of an epoch is partial and masked; no
            example is dropped.
        max_epochs: upper bound on epochs.
        patience: early stopping: stop once no (layer, seed) probe improved its dev accuracy for
            this many epochs. Only used with a dev set; without one all `max_epochs` run and the
            final parameters are returned.
        weight_decay: decoupled (AdamW) weight decay on weights (not biases); 0 = plain Adam.
        seeds: probe seeds. Seed s fixes the initialisation and the minibatch order of the probes
            of seed s. The order is shared by all layers (so layers differ only in features).
        shuffle_per_seed: True (default): each seed draws its own permutation per epoch, so
            seeds differ in init and data order. False: all seeds follow seed[0]'s order (they
            differ only in init); one gathered minibatch then serves every seed and each layer's
            seeds share one GEMM: ~2.3x faster on 2 CPU cores (scripts/bench_probes.py), but
            reruns of a convex linear probe become more alike.
        max_train: cap on training examples (a fixed random subset, the same for every seed and
            layer, drawn with `subsample_seed`); None = all.
        subsample_seed: seed of the `max_train` subset.
        standardize: standardise each feature dimension per layer with the mean/std of the
            training rows (computed once, applied per minibatch on device; for pairs it is applied
            to h_i and h_j before building the pair feature). Helps Adam on raw transformer
            features, whose dimensions differ in scale by orders of magnitude.
        eval_batch_size: rows per chunk when predicting (bounds memory to about
            `L * eval_batch_size * (3)D` floats).
        devices: local devices to train on: the layers are cut into contiguous blocks, one per
            device, trained concurrently (each block's features, probes and minibatch gathers
            live on its device; results are identical to one device). 1 (default) = the device
            of the features; 0 = every local device (at most one per layer). SGD probes only
            (ridge runs on one device). Features already on one device are copied block by
            block to the others (on CPU, where device memory is host memory, that costs the
            other blocks' size once more); numpy features are copied once either way.
        ridge_l2s: L2 grid for the ridge probe (objective `mean ||XW + b - Y||^2 + l2 ||W||^2`
            on standardised features, so the grid is independent of N); chosen per layer on dev.
    """

    probe: str = "linear"
    hidden_size: int = 256
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 50
    patience: int = 3
    weight_decay: float = 0.0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    shuffle_per_seed: bool = True
    max_train: int | None = None
    subsample_seed: int = 0
    standardize: bool = True
    eval_batch_size: int = 2048
    ridge_l2s: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    devices: int = 1

    def __post_init__(self):
        if self.probe not in _PROBE_KINDS:
            raise ValueError(f"ProbeConfig.probe must be one of {_PROBE_KINDS}, got {self.probe!r}")
        for name in ("hidden_size", "batch_size", "max_epochs", "patience", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ProbeConfig.{name} must be a positive int, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"ProbeConfig.learning_rate must be > 0, got {self.learning_rate}")
        if not self.weight_decay >= 0:
            raise ValueError(f"ProbeConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"ProbeConfig.seeds must be non-empty and distinct, got {self.seeds}")
        if not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"ProbeConfig.seeds must be non-negative ints, got {self.seeds}")
        if self.max_train is not None and (not isinstance(self.max_train, int) or self.max_train < 1):
            raise ValueError(f"ProbeConfig.max_train must be None or >= 1, got {self.max_train}")
        if not isinstance(self.devices, int) or isinstance(self.devices, bool) or self.devices < 0:
            raise ValueError(f"ProbeConfig.devices must be an int >= 0 (0 = all local devices), "
                             f"got {self.devices!r}")
        if not self.ridge_l2s or not all(l2 >= 0 for l2 in self.ridge_l2s):
            raise ValueError(f"ProbeConfig.ridge_l2s must be non-empty and >= 0, got {self.ridge_l2s}")
        # Normalise to tuples so the config stays hashable when built from lists.
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "ridge_l2s", tuple(float(v) for v in self.ridge_l2s))


@dataclasses.dataclass
class ProbeFit:
    """Fitted probes for all layers and seeds.

    Attributes:
        params: dict of jax arrays with leading `[L, S]` axes, weights stored (out, in) like
            torch (faster weight gradients on XLA:CPU): linear {"w": [L,S,C,Din], "b": [L,S,C]};
            mlp adds {"w1": [L,S,H,Din], "b1": [L,S,H]} before "w" ([L,S,C,H]), "b". The
            weights act on standardised features (x - mean) * scale; for rows the
            standardisation is folded into the weights at run time (same maths and gradients).
        kind: "linear", "mlp" or "ridge" (ridge params have the linear layout, S = 1).
        num_classes: C.
        seeds: seed per S index.
        pair: True if inputs were pair features (Din = 3D).
        mean, scale: float32 `[L, D]` standardisation (x - mean) * scale, or None.
        best_epoch: int `[L, S]` epoch whose parameters were kept (0-based).
        dev_accuracy: float `[E, L, S]` dev accuracy after each epoch (E = epochs run; empty
            without dev). Ridge: `[1, L, 1]`, the chosen l2's dev accuracy (empty without dev).
        train_loss: float `[E, L, S]` mean training loss per epoch.
        epochs_run: number of epochs trained.
        info: method-specific extras (ridge: "l2" `[L]`, "l2_grid", "dev_accuracy_grid" `[L, K]`).
        devices: local devices the layers were spread over (`ProbeConfig.devices`, resolved);
            `predict_probes` splits the layers the same way. params/mean/scale are on the first.
    """

    params: dict[str, Any]
    kind: str
    num_classes: int
    seeds: tuple[int, ...]
    pair: bool
    mean: Any
    scale: Any
    best_epoch: np.ndarray
    dev_accuracy: np.ndarray
    train_loss: np.ndarray
    epochs_run: int
    info: dict = dataclasses.field(default_factory=dict)
    devices: int = 1


# ----------------------------------------------------------------------------- input handling


def device_features(x, device=None) -> jax.Array:
    """Features `[L, N, D]` in the probes' device format, put on the device once.

    float32 stays float32. bfloat16 is stored as its raw uint16 bit patterns (numpy: a free view,
    then one transfer); every jitted probe step gathers rows of bits and widens them exactly to
    float32. With a bfloat16 array XLA rewrites `convert(gather(x))` into `gather(convert(x))` and
    hoists the convert out of the training loop: a float32 copy of all features on every call
    (measured: 3.8 GiB of bf16 features -> 8.8 GB peak). A uint16 array is taken to be such bits,
    so passing this function's result to `fit_probes`/`predict_probes` repeatedly copies nothing.
    `device`: where to put it (default: a jax array stays where it is, numpy goes to the default
    device).
    """
    if isinstance(x, jax.Array):
        if x.dtype == jnp.bfloat16:
            x = _to_bits(x)
        return x if device is None else jax.device_put(x, device)
    x = np.asarray(x)
    if x.dtype == jnp.bfloat16:
        x = x.view(np.uint16)
    return jax.device_put(x, device)


def bf16_bits(x):
    """float features -> the `device_features` storage of bfloat16: its uint16 bit patterns
    (rounds to bfloat16 first; traceable, for code that writes features in this format)."""
    return jax.lax.bitcast_convert_type(x.astype(jnp.bfloat16), jnp.uint16)


_to_bits = jax.jit(bf16_bits)


def _as_device_features(x, name: str, block: "_Block | None" = None) -> jax.Array:
    """Validates `[L, N, D]` features and returns them (or the layers of `block`, on its device)
    in `device_features` format."""
    _check_feature_array(x, name)
    if block is None or block.device is None:
        return device_features(x)
    return device_features(x[block.start:block.stop], block.device)


def _check_feature_array(x, name: str) -> None:
    if x is None:
        raise ValueError(f"{name} is None")
    dtype = jnp.dtype(x.dtype)
    if not (jnp.issubdtype(dtype, jnp.floating) or dtype == jnp.uint16):
        raise ValueError(f"{name} must be float32/bfloat16 [L, N, D], got dtype {dtype}")
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape [L, N, D], got {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"{name} has an empty axis: {tuple(x.shape)}")


@dataclasses.dataclass(frozen=True)
class _Block:
    """Layers [start, stop) of the features, trained on `device` (None: wherever they are)."""

    start: int
    stop: int
    device: Any = None


def _layer_blocks(num_layers: int, devices: int) -> list[_Block]:
    """Contiguous layer blocks, one per device (`ProbeConfig.devices`; sizes differ by <= 1)."""
    if devices == 1 or num_layers == 1:
        return [_Block(0, num_layers)]
    local = jax.local_devices()
    if devices > len(local):
        raise ValueError(f"ProbeConfig.devices={devices}, but this process has {len(local)} local "
                         "devices (on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    k = min(len(local) if devices == 0 else devices, num_layers)
    if k == 1:
        return [_Block(0, num_layers)]
    return [_Block(a, b, local[i]) for i, (a, b) in enumerate(layer_ranges(num_layers, k))]


def layer_ranges(num_layers: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous half-open ranges covering `range(num_layers)`, sizes differing by <= 1
    (the first ones larger): how layers are split over devices here and over processes by the
    sweep."""
    bounds = np.cumsum([0] + [len(a) for a in np.array_split(np.arange(num_layers), parts)])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _per_block(blocks: list[_Block], fn, name: str) -> list:
    """`fn(i, block)` for every block; FeatureErrors are merged into one naming global layers."""
    out, bad = [], []
    for i, block in enumerate(blocks):
        try:
            out.append(fn(i, block))
        except FeatureError as e:
            bad += [block.start + layer for layer in e.layers]
    if bad:
        raise FeatureError(name, sorted(bad))
    return out


def _put(tree, block: _Block):
    """A pytree (of arrays, None or numpy) on the block's device (unchanged without one)."""
    if block.device is None:
        return jax.tree.map(lambda a: a if isinstance(a, jax.Array) else jnp.asarray(a), tree)
    return jax.device_put(tree, block.device)


def _epoch_curve(per_epoch: list[list]) -> np.ndarray:
    """[epoch][block] `[L_b, S]` device arrays -> numpy `[E, L, S]` (one transfer at the end)."""
    return np.stack([np.concatenate(jax.device_get(parts), axis=0) for parts in per_epoch])


def _concat_layers(parts: list, device):
    """Per-block `[L_b, ...]` pytrees -> one `[L, ...]` pytree on `device` (None: the first's)."""
    if len(parts) == 1:
        return parts[0]
    return _stack_layers([jax.device_put(p, device) for p in parts])


def _example_index(num_rows: int, rows, pairs, name: str) -> np.ndarray:
    """Returns int32 `[M, K]` row indices per example (K = 1 for rows, 2 for pairs)."""
    if rows is not None and pairs is not None:
        raise ValueError(f"{name}: pass rows or pairs, not both")
    if pairs is not None:
        idx = np.asarray(pairs)
        if idx.ndim != 2 or idx.shape[1] != 2:
            raise ValueError(f"{name}_pairs must be int [M, 2], got shape {idx.shape}")
    elif rows is not None:
        idx = np.asarray(rows)
        if idx.ndim != 1:
            raise ValueError(f"{name}_rows must be int [M], got shape {idx.shape}")
        idx = idx[:, None]
    else:
        return np.arange(num_rows, dtype=np.int32)[:, None]
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} indices must be integers, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= num_rows):
        bad = int(np.argmax((idx < 0).any(1) | (idx >= num_rows).any(1)))
        raise ValueError(
            f"{name} index out of range [0, {num_rows}) at example {bad}: {idx[bad].tolist()}"
        )
    return idx.astype(np.int32)


def _check_labels(y, num_examples: int, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != num_examples:
        raise ValueError(f"{name} must be int [{num_examples}], got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = int(np.argmax((y < 0) | (y >= num_classes)))
        raise ValueError(f"{name}[{bad}] = {y[bad]} is outside [0, {num_classes})")
    return y.astype(np.int32)


def train_subset(num_examples: int, cfg: ProbeConfig) -> np.ndarray:
    """Indices (sorted int32) of the training examples a probe fit uses: all of them, or
    `cfg.max_train` drawn without replacement with `cfg.subsample_seed` (same draw for every
    layer, seed and probe kind; callers use it to know which labels training saw)."""
    if cfg.max_train is None or cfg.max_train >= num_examples:
        return np.arange(num_examples, dtype=np.int32)
    rng = np.random.default_rng(cfg.subsample_seed)
    return np.sort(rng.choice(num_examples, cfg.max_train, replace=False)).astype(np.int32)


def _pad_index(idx: np.ndarray, multiple: int) -> tuple[np.ndarray, int]:
    """Pads `[M, K]` with -1 rows to a multiple of `multiple`; returns (padded, M)."""
    m = idx.shape[0]
    total = max(multiple, -(-m // multiple) * multiple)
    out = np.full((total, idx.shape[1]), -1, np.int32)
    out[:m] = idx
    return out, m


# ----------------------------------------------------------------------------- features on device


def _normalize(h_l_d, mean, scale):
    """Casts gathered features to float32 and standardises them.

    Args:
        h_l_d: `[L, ..., D]` gathered features (any float dtype).
        mean, scale: `[L, D]` float32, or None for no standardisation.
    """
    h = h_l_d.astype(jnp.float32)
    if mean is None:
        return h
    shape = (mean.shape[0],) + (1,) * (h.ndim - 2) + (mean.shape[1],)
    return (h - mean.reshape(shape)) * scale.reshape(shape)


def pair_features(x, idx, mean=None, scale=None):
    """Builds example features on device from a row or pair index.

    Args:
        x: `[L, N, D]` features (float32, bfloat16, or `device_features` format).
        idx: int `[..., K]` row indices; K = 1: the row itself; K = 2: `[h_i; h_j; h_i * h_j]`.
            Negative entries are treated as row 0 (callers mask those examples).
        mean, scale: optional `[L, D]` standardisation, applied to h_i and h_j.

    Returns:
        float32 `[L, ..., D]` (K = 1) or `[L, ..., 3D]` (K = 2).
    """
    safe = jnp.maximum(idx, 0)
    h_i = _normalize(_gather_rows(x, safe[..., 0]), mean, scale)
    if idx.shape[-1] == 1:
        return h_i
    h_j = _normalize(_gather_rows(x, safe[..., 1]), mean, scale)
    return jnp.concatenate([h_i, h_j, h_i * h_j], axis=-1)


def _gather_rows(x, ids):
    """x[:, ids] as float32; `x` in `device_features` format (uint16 = bfloat16 bit patterns,
    widened exactly: a bf16 value is the top half of the float32 with the same value)."""
    if x.dtype != jnp.uint16:
        return x[:, ids].astype(jnp.float32)
    bits = x[:, ids].astype(jnp.uint32)
    return jax.lax.bitcast_convert_type(jax.lax.shift_left(bits, jnp.uint32(16)), jnp.float32)


@jax.jit
def _chunk_moments(x, idx_chunks, shift):
    """Per-chunk count, shifted sums and non-finite count of the rows in `idx_chunks`, in one
    pass over the gathered rows.

    Args:
        x: `[L, N, D]` (`device_features` format).
        idx_chunks: int `[T, chunk]` row indices, -1 = padding.
        shift: float32 `[L, D]`, a value near the mean (one of the rows): sums of `h - shift`
            keep float32 cancellation small whatever the features' offset.

    Returns:
        counts `[T]`, s1 `[T, L, D]` = sum(h - shift), s2 `[T, L, D]` = sum((h - shift)^2),
        nonfinite `[L]` (int32; non-finite entries are left out of the sums).
    """

    def body(bad_l, ids):
        valid = ids >= 0  # [c]
        h = _gather_rows(x, jnp.maximum(ids, 0))  # float32 [L, c, D]
        finite = jnp.isfinite(h)
        bad_l = bad_l + jnp.sum(~finite & valid[None, :, None], axis=(1, 2), dtype=jnp.int32)
        d = jnp.where(finite & valid[None, :, None], h - shift[:, None, :], 0.0)
        return bad_l, (jnp.sum(valid.astype(jnp.float32)), jnp.sum(d, axis=1), jnp.sum(d * d, axis=1))

    bad, (counts, s1, s2) = jax.lax.scan(body, jnp.zeros((x.shape[0],), jnp.int32), idx_chunks)
    return counts, s1, s2, bad


def _row_moments(x, rows: np.ndarray, name: str, chunk: int = 128):
    """Mean/std per layer over `rows` and a finiteness check, in one pass: float32 sums of
    `h - shift` per chunk of rows (shift = the first row, so no catastrophic cancellation),
    merged in float64. Small chunks keep each chunk's float32 rows in cache: 128 rows ran 2x
    faster than 4096 on 2 CPU cores (and 2.5x faster than the earlier two-pass mean/M2 form).

    Raises:
        FeatureError: if any of the rows has NaN/Inf; names the layers.
    """
    rows = np.unique(rows)
    chunk = int(min(chunk, max(1, rows.shape[0])))
    padded, _ = _pad_index(rows[:, None].astype(np.int32), chunk)
    shift = _gather_rows(x, jnp.asarray(rows[:1].astype(np.int32)))[:, 0]  # [L, D]
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    counts, s1, s2, bad = jax.device_get(
        _chunk_moments(x, jnp.asarray(padded[:, 0].reshape(-1, chunk)), shift))
    bad_layers = np.nonzero(bad)[0].tolist()
    if bad_layers:
        raise FeatureError(name, bad_layers)
    n = max(float(np.sum(counts, dtype=np.float64)), 1.0)
    m1 = np.sum(s1, axis=0, dtype=np.float64) / n  # mean of h - shift
    var = np.maximum(np.sum(s2, axis=0, dtype=np.float64) / n - m1 * m1, 0.0)
    return np.asarray(jax.device_get(shift), np.float64) + m1, np.sqrt(var)


def check_features(x, *, rows=None, pairs=None, name: str = "x") -> None:
    """Raises `FeatureError` naming the layers of `x` [L, N, D] with NaN/Inf in the used rows."""
    x = _as_device_features(x, name)
    idx = _example_index(x.shape[1], rows, pairs, name)
    if idx.size:
        _row_moments(x, idx.reshape(-1), name)


def _standardizer(x, idx: np.ndarray, cfg: ProbeConfig, name: str):
    mean, std = _row_moments(x, idx.reshape(-1), name)
    if not cfg.standardize:
        return None, None
    scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-12), 1.0)
    return jnp.asarray(mean, jnp.float32), jnp.asarray(scale, jnp.float32)


# ----------------------------------------------------------------------------- single probe


def _init_one(key, din: int, num_classes: int, kind: str, hidden: int):
    """Initialises one probe like torch `nn.Linear` (uniform +-1/sqrt(fan_in), w as (out, in))."""

    def dense(k, fan_in, fan_out):
        kw, kb = jax.random.split(k)
        bound = 1.0 / np.sqrt(fan_in)
        w = jax.random.uniform(kw, (fan_out, fan_in), jnp.float32, -bound, bound)
        b = jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)
        return w, b

    if kind == "mlp":
        k1, k2 = jax.random.split(key)
        w1, b1 = dense(k1, din, hidden)
        w, b = dense(k2, hidden, num_classes)
        return {"w1": w1, "b1": b1, "w": w, "b": b}
    w, b = dense(key, din, num_classes)
    return {"w": w, "b": b}


def _dense_in(w_lsod, b_lso, h, mean_ld, scale_ld):
    """First affine map of every probe, standardisation folded into the weights.

    ((h - mean) * scale) @ W^T + b = h @ (W * scale)^T + (b - (W * scale) @ mean): the extra work
    is on the weights, not on the minibatch, and gradients are those of standardised features.
    All probes are one einsum (batch axes l, s), not nested vmaps of a per-probe matmul: on
    XLA:CPU this is ~1.3x faster, and with a shared minibatch ('lbd') each layer's seeds share
    one GEMM.

    Args:
        w_lsod: `[L, S, O, Din]`; b_lso: `[L, S, O]`.
        h: float32 `[L, B, Din]` (shared by seeds) or `[L, S, B, Din]`.
        mean_ld, scale_ld: `[L, Din]` or None (h already standardised).

    Returns:
        float32 `[L, S, B, O]`.
    """
    if mean_ld is not None:
        w_lsod = w_lsod * scale_ld[:, None, None, :]
        b_lso = b_lso - jnp.einsum("lsod,ld->lso", w_lsod, mean_ld)
    spec = "lbd,lsod->lsbo" if h.ndim == 3 else "lsbd,lsod->lsbo"
    return jnp.einsum(spec, h, w_lsod) + b_lso[:, :, None, :]


def _logits(params, h, mean_ld=None, scale_ld=None):
    """Logits of every (layer, seed) probe.

    Args:
        params: probe params with leading `[L, S]` axes (see `ProbeFit.params`).
        h: float32 `[L, B, Din]` or `[L, S, B, Din]` features (raw if `mean_ld` is given, else
            already standardised).
        mean_ld, scale_ld: optional float32 `[L, Din]` standardisation.

    Returns:
        float32 `[L, S, B, C]`.
    """
    if "w1" in params:
        hid = jax.nn.relu(_dense_in(params["w1"], params["b1"], h, mean_ld, scale_ld))
        return _dense_in(params["w"], params["b"], hid, None, None)
    return _dense_in(params["w"], params["b"], h, mean_ld, scale_ld)


def _loss(params, h, y, mask, mean_ld=None, scale_ld=None):
    """Sum over probes of each probe's mean cross-entropy on its valid minibatch examples.

    Probes share no parameters, so the gradient of the sum is every probe's own gradient.

    Args:
        h: `[L, B, Din]` (one order for all seeds) or `[L, S, B, Din]` (own order per seed).
        y, mask: int `[B]` / float `[B]`, or `[S, B]` for own orders.

    Returns:
        (total loss, per-probe loss `[L, S]`).
    """
    logits = _logits(params, h, mean_ld, scale_ld)  # [L, S, B, C]
    y = jnp.broadcast_to(y, logits.shape[1:3])[None]
    mask = jnp.broadcast_to(mask, logits.shape[1:3])[None]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.broadcast_to(y, logits.shape[:3]))
    per_probe = jnp.sum(ce * mask, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    return jnp.sum(per_probe), per_probe


_grad_all = jax.grad(_loss, has_aux=True)


def _example_features(x, ids, mean, scale):
    """Gathers example features; returns (h, mean, scale) for `_logits`.

    Rows (K = 1) stay raw (cast to float32) and standardisation is folded into the probe's
    weights; pairs (K = 2) are standardised before the product is formed.
    """
    if ids.shape[-1] == 1:
        return pair_features(x, ids), mean, scale
    return pair_features(x, ids, mean, scale), None, None


def _optimizer(cfg: ProbeConfig) -> optax.GradientTransformation:
    if cfg.weight_decay > 0:
        return optax.adamw(
            cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            mask=lambda p: {k: k.startswith("w") for k in p},
        )
    return optax.adam(cfg.learning_rate)


def _static_cfg(cfg: ProbeConfig) -> ProbeConfig:
    """The fields that shape the compiled step; others (seeds, epochs, caps) do not recompile."""
    return dataclasses.replace(cfg, seeds=(0,), max_epochs=1, patience=1, max_train=None, devices=1)


# ----------------------------------------------------------------------------- jitted steps


def _predict_chunks(params, x, idx_tk, mean, scale):
    """Predicted classes for all probes. idx_tk: int `[T, chunk, K]` -> int32 `[L, S, T*chunk]`."""

    def body(_, ids):
        h, m, s = _example_features(x, ids, mean, scale)  # [L, chunk, Din]
        logits = _logits(params, h, m, s)  # [L, S, chunk, C]
        return None, jnp.argmax(logits, axis=-1).astype(jnp.int32)

    _, pred = jax.lax.scan(body, None, idx_tk)  # [T, L, S, chunk]
    pred = jnp.moveaxis(pred, 0, 2)
    return pred.reshape(pred.shape[0], pred.shape[1], -1)


@jax.jit
def _predict_jit(params, x, idx_tk, mean, scale):
    return _predict_chunks(params, x, idx_tk, mean, scale)


def _stack_layers(per_layer):
    """Sequence of `[L_i, ...]` pytrees (e.g. per layer, per block) -> one `[sum L_i, ...]` pytree."""
    return jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *per_layer)


def _split_layers(tree, num_layers: int):
    """`[L, ...]` pytree -> tuple of per-layer `[1, ...]` pytrees (copies: no aliasing)."""
    return tuple(jax.tree.map(lambda a: a[l:l + 1] + 0, tree) for l in range(num_layers))


@functools.partial(jax.jit, static_argnames=("cfg", "has_dev"), donate_argnames=("state",))
def _train_epoch(state, epoch, seed_keys, x, idx, y, train_ids, mean, scale, dev, *, cfg, has_dev):
    """One epoch for all (layer, seed) probes, then dev model selection.

    Args:
        state: dict(params, opt: tuples of per-layer `[1, S, ...]` probe params and their optax
            states; best_params `[L, S, ...]`; best_acc, best_epoch `[L, S]`).
        epoch: int32 scalar (0-based).
        seed_keys: `[S]` typed PRNG keys (one per seed).
        x: `[L, N, D]` train features; idx: int `[M, K]`; y: int `[M]`.
        train_ids: int `[M_used]` examples to train on (after `max_train`).
        mean, scale: `[L, D]` or None.
        dev: (x_dev, idx_dev [T, chunk, K], y_dev [T*chunk] (-1 = padding)) or None.

    Returns:
        (state, train_loss [L, S], dev_acc [L, S], improved [L, S]).
    """
    tx = _optimizer(cfg)
    b = cfg.batch_size
    m_used = train_ids.shape[0]
    steps = -(-m_used // b)

    def permute(key):
        key = jax.random.fold_in(jax.random.fold_in(key, 1), epoch)
        perm = jax.random.permutation(key, train_ids)
        return jnp.concatenate([perm, jnp.full((steps * b - m_used,), -1, perm.dtype)])

    if cfg.shuffle_per_seed:
        order = jax.vmap(permute)(seed_keys)  # [S, steps * B]
    else:
        order = permute(seed_keys[0])[None]  # [1, steps * B]: one order for all seeds
    order = order.reshape(-1, steps, b).transpose(1, 0, 2)  # [steps, S or 1, B]

    def step(carry, ids_sb):
        params_l, opt_l, loss_sum = carry  # per-layer tuples: [1, S, ...] params, optax states
        if not cfg.shuffle_per_seed:
            ids_sb = ids_sb[0]  # [B]
        mask = (ids_sb >= 0).astype(jnp.float32)  # [S, B] or [B]
        safe = jnp.maximum(ids_sb, 0)
        ex_ids = idx[safe]
        y_b = y[safe]

        def layer_step(l):  # layer l's probes (all seeds): gradient and Adam update
            sl = slice(l, l + 1)
            h, m, s = _example_features(x[sl], ex_ids, None if mean is None else mean[sl],
                                        None if scale is None else scale[sl])  # [1, (S,) B, Din]
            grads, loss = _grad_all(params_l[l], h, y_b, mask, m, s)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes python floats and int counts
                updates, opt = tx.update(grads, opt_l[l], params_l[l])
            return optax.apply_updates(params_l[l], updates), opt, loss

        # One layer at a time inside the step (unrolled), each with its own parameters and
        # optimizer state in the carry: the layer's gathered minibatch (~1 MB at D=768, S=5) stays
        # in cache from the gather through the update, and no [L, ...] gradient is assembled. On 2
        # CPU cores one [L, S, B, D] gather for all layers ran 1.5x slower, and stacked [L, ...]
        # parameters with one Adam update per step 1.2x slower (concatenating the gradients).
        out = [layer_step(l) for l in range(len(params_l))]
        loss = jnp.concatenate([lo for _, _, lo in out], axis=0)  # [L, S]
        # Per-example weighting so the epoch loss is the mean over examples.
        count = jnp.sum(mask, axis=-1)  # [S] or []
        loss_sum = loss_sum + loss * jnp.broadcast_to(count, loss.shape[1:])[None, :]
        return (tuple(p for p, _, _ in out), tuple(o for _, o, _ in out), loss_sum), None

    s_count = seed_keys.shape[0]
    l_count = x.shape[0]
    init = (state["params"], state["opt"], jnp.zeros((l_count, s_count), jnp.float32))
    (params_l, opt_l, loss_sum), _ = jax.lax.scan(step, init, order)
    train_loss = loss_sum / jnp.float32(m_used)
    params = _stack_layers(params_l)

    if has_dev:
        x_dev, idx_dev, y_dev = dev
        pred = _predict_chunks(params, x_dev, idx_dev, mean, scale)  # [L, S, Mpad]
        valid = (y_dev >= 0)[None, None, :]
        correct = jnp.sum((pred == y_dev[None, None, :]) & valid, axis=-1)
        dev_acc = correct.astype(jnp.float32) / jnp.maximum(
            jnp.sum(y_dev >= 0).astype(jnp.float32), 1.0)
        improved = dev_acc > state["best_acc"]
    else:
        dev_acc = jnp.zeros((l_count, s_count), jnp.float32)
        improved = jnp.ones((l_count, s_count), bool)

    def keep(new, old):
        cond = improved.reshape(improved.shape + (1,) * (new.ndim - 2))
        return jnp.where(cond, new, old)

    state = {
        "params": params_l,
        "opt": opt_l,
        "best_params": jax.tree.map(keep, params, state["best_params"]),
        "best_acc": jnp.where(improved, dev_acc, state["best_acc"]),
        "best_epoch": jnp.where(improved, epoch, state["best_epoch"]),
    }
    return state, train_loss, dev_acc, improved


# ----------------------------------------------------------------------------- public API


def _require_dev_examples(m: int) -> None:
    """A dev set (model selection for SGD probes, the l2 choice for ridge) must hold examples."""
    if m == 0:
        raise ValueError("the dev set has no examples (dev_y is empty); pass a non-empty dev set or none")


def _dev_index(shape, y_dev, pairs, rows, num_classes, chunk):
    """Dev examples: (index int `[M, K]`, the index padded to whole chunks `[T, chunk, K]`, labels
    `[T*chunk]` with -1 = padding)."""
    idx = _example_index(shape[1], rows, pairs, "dev")
    y = _check_labels(y_dev, idx.shape[0], num_classes, "dev_y")
    _require_dev_examples(idx.shape[0])
    chunk = int(min(chunk, max(1, idx.shape[0])))
    idx_p, m = _pad_index(idx, chunk)
    y_p = np.full((idx_p.shape[0],), -1, np.int32)
    y_p[:m] = y
    return idx, idx_p.reshape(-1, chunk, idx.shape[1]), y_p


def fit_probes(
    train_x,
    train_y,
    num_classes: int,
    *,
    cfg: ProbeConfig = ProbeConfig(),
    dev_x=None,
    dev_y=None,
    train_pairs=None,
    dev_pairs=None,
    train_rows=None,
    dev_rows=None,
    any_improved=None,
) -> ProbeFit:
    """Trains one SGD probe per (layer, seed), all at once.

    Args:
        train_x: float32/bfloat16 `[L, N, D]` features.
        train_y: int `[M]` labels in [0, num_classes); M = N unless rows/pairs are given.
        num_classes: C.
        cfg: hyperparameters (`cfg.probe` "linear" or "mlp"; "ridge" is redirected to
            `fit_ridge`).
        dev_x, dev_y: optional dev features `[L, N', D]` and labels; enable model selection
            (best dev accuracy per (layer, seed)) and early stopping.
        train_pairs, dev_pairs: optional int `[M, 2]`: example m is `[h_i; h_j; h_i*h_j]`.
        train_rows, dev_rows: optional int `[M]`: example m is row rows[m].
        any_improved: optional consensus for early stopping when the layers are split between
            processes (each trains a block): called once per epoch (with a dev set) with "some
            probe here improved", returns whether some probe anywhere did. Every caller must call
            it equally often, which holds since all stop on the same answer.

    Returns:
        `ProbeFit` with params `[L, S, ...]`.

    Raises:
        FeatureError: NaN/Inf in the used rows of train_x or dev_x (names the layers).
        ValueError: malformed shapes, labels or indices.
    """
    if cfg.probe == "ridge":
        return fit_ridge(
            train_x, train_y, num_classes, cfg=cfg, dev_x=dev_x, dev_y=dev_y,
            train_pairs=train_pairs, dev_pairs=dev_pairs, train_rows=train_rows, dev_rows=dev_rows,
        )
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if (dev_x is None) != (dev_y is None):
        raise ValueError("pass both dev_x and dev_y, or neither")
    _check_feature_array(train_x, "train_x")
    shape = tuple(train_x.shape)
    idx = _example_index(shape[1], train_rows, train_pairs, "train")
    y = _check_labels(train_y, idx.shape[0], num_classes, "train_y")
    if idx.shape[0] == 0:
        raise ValueError("no training examples")
    is_pair = idx.shape[1] == 2

    train_ids = train_subset(idx.shape[0], cfg)

    has_dev = dev_x is not None
    if has_dev:
        _check_feature_array(dev_x, "dev_x")
        if dev_x.shape[0] != shape[0] or dev_x.shape[2] != shape[2]:
            raise ValueError(f"dev_x shape {tuple(dev_x.shape)} does not match train_x {shape}")
        dev_idx, dev_idx_p, dev_y_p = _dev_index(dev_x.shape, dev_y, dev_pairs, dev_rows,
                                                 num_classes, cfg.eval_batch_size)
        if dev_idx.shape[1] != idx.shape[1]:
            raise ValueError("train and dev must both use pairs or both not")

    blocks = _layer_blocks(shape[0], cfg.devices)
    xs = [_as_device_features(train_x, "train_x", b) for b in blocks]
    norms = _per_block(blocks, lambda i, b: _put(_standardizer(xs[i], idx[train_ids], cfg, "train_x"), b),
                       "train_x")
    devs = [None] * len(blocks)
    if has_dev:
        dxs = [_as_device_features(dev_x, "dev_x", b) for b in blocks]
        _per_block(blocks, lambda i, b: _row_moments(dxs[i], dev_idx.reshape(-1), "dev_x"), "dev_x")
        devs = [(dx, *_put((dev_idx_p, dev_y_p), b)) for dx, b in zip(dxs, blocks)]

    din = shape[2] * (3 if is_pair else 1)
    seed_keys = jax.vmap(jax.random.key)(jnp.asarray(cfg.seeds, jnp.uint32))
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(seed_keys)
    one = jax.vmap(lambda k: _init_one(k, din, num_classes, cfg.probe, cfg.hidden_size))(init_keys)
    s_count = len(cfg.seeds)
    static = _static_cfg(cfg)

    def block_inputs(b: _Block):
        n = b.stop - b.start
        # Every layer of seed s starts from the same init, so a layer trained alone (same seed)
        # matches.
        params = jax.tree.map(lambda a: jnp.broadcast_to(a[None], (n,) + a.shape) + 0.0, one)
        params_l = _split_layers(_put(params, b), n)
        state = {
            "params": params_l,
            "opt": tuple(_optimizer(cfg).init(p) for p in params_l),
            "best_params": jax.tree.map(jnp.copy, _put(params, b)),
            "best_acc": _put(jnp.full((n, s_count), -1.0, jnp.float32), b),
            "best_epoch": _put(jnp.zeros((n, s_count), jnp.int32), b),
        }
        return state, _put((seed_keys, idx, y, train_ids), b)

    states, inputs = zip(*[block_inputs(b) for b in blocks])
    states = list(states)
    losses, accs = [], []
    last_improved = -1
    epoch = 0
    for epoch in range(cfg.max_epochs):
        # One epoch on every block: jax dispatches asynchronously, so the blocks' devices run
        # concurrently; the early-stopping decision below waits for all of them.
        outs = []
        for i in range(len(blocks)):
            keys_b, idx_b, y_b, ids_b = inputs[i]
            outs.append(_train_epoch(states[i], jnp.int32(epoch), keys_b, xs[i], idx_b, y_b, ids_b,
                                     *norms[i], devs[i], cfg=static, has_dev=has_dev))
        states = [o[0] for o in outs]
        losses.append([o[1] for o in outs])
        accs.append([o[2] for o in outs])
        if has_dev:
            improved = any(bool(jnp.any(o[3])) for o in outs)
            if any_improved(improved) if any_improved is not None else improved:
                last_improved = epoch
            elif epoch - last_improved >= cfg.patience:
                break
    epochs_run = epoch + 1
    num_layers = shape[0]
    first = blocks[0].device
    mean, scale = (None if norms[0][k] is None else _concat_layers([n[k] for n in norms], first)
                   for k in range(2))
    return ProbeFit(
        params=_concat_layers([st["best_params"] for st in states], first),
        kind=cfg.probe,
        num_classes=num_classes,
        seeds=cfg.seeds,
        pair=is_pair,
        mean=mean,
        scale=scale,
        best_epoch=np.concatenate([np.asarray(st["best_epoch"]) for st in states], axis=0),
        dev_accuracy=_epoch_curve(accs) if has_dev else np.zeros((0, num_layers, s_count)),
        train_loss=_epoch_curve(losses),
        epochs_run=epochs_run,
        devices=len(blocks),
    )


def predict_probes(fit: ProbeFit, x, pairs=None, *, rows=None, batch_size: int = 2048,
                   name: str = "x") -> np.ndarray:
    """Predicted class of every probe for every example, in chunks of `batch_size`.

    Args:
        fit: from `fit_probes` or `fit_ridge`.
        x: `[L, N, D]` features (same L and D as training).
        pairs: int `[M, 2]` if the probes were trained on pairs; rows: optional int `[M]`.
        name: what `x` is, for error messages (e.g. "eval[fr] features").

    Returns:
        int32 `[L, S, M]`.

    Raises:
        FeatureError: NaN/Inf in the used rows of x.
    """
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    _check_feature_array(x, name)
    idx = _example_index(x.shape[1], rows, pairs, name)
    if (idx.shape[1] == 2) != fit.pair:
        raise ValueError(
            f"probes were trained {'with' if fit.pair else 'without'} pairs; "
            f"predict_probes got pairs={'given' if pairs is not None else 'None'}"
        )
    w_shape = fit.params["w1" if "w1" in fit.params else "w"].shape
    din = x.shape[2] * (3 if fit.pair else 1)
    if x.shape[0] != w_shape[0] or din != w_shape[3]:
        raise ValueError(
            f"{name} shape {tuple(x.shape)} does not match probes (L={w_shape[0]}, Din={w_shape[3]})"
        )
    m = idx.shape[0]
    if m == 0:
        return np.zeros((w_shape[0], w_shape[1], 0), np.int32)
    blocks = _layer_blocks(x.shape[0], fit.devices)
    xs = [_as_device_features(x, name, b) for b in blocks]
    _per_block(blocks, lambda i, b: _row_moments(xs[i], idx.reshape(-1), name), name)
    chunk = int(min(batch_size, m))
    idx_p, _ = _pad_index(idx, chunk)
    idx_p = idx_p.reshape(-1, chunk, idx.shape[1])

    def block_args(b: _Block):
        sl = slice(b.start, b.stop)
        per_layer = (fit.params, fit.mean, fit.scale)
        if len(blocks) > 1:
            per_layer = jax.tree.map(lambda a: a[sl], per_layer)
        return _put(per_layer + (idx_p,), b)

    # Dispatched for every block before any result is fetched: the devices run concurrently.
    preds = []
    for xb, b in zip(xs, blocks):
        params, mean, scale, idx_b = block_args(b)
        preds.append(_predict_jit(params, xb, idx_b, mean, scale))
    return np.concatenate(jax.device_get(preds), axis=0)[:, :, :m]


def evaluate(pred, y, num_classes: int, mask=None) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of predictions.

    Macro-F1 averages per-class F1 over the classes that occur in the gold labels or the
    predictions (scikit-learn's `f1_score(average="macro")` convention).

    Args:
        pred: int `[..., M]` predictions (e.g. `[L, S, M]`) in [0, num_classes).
        y: int `[M]` gold labels in [0, num_classes).
        num_classes: C.
        mask: optional bool `[M]`; only True examples count (masked-out labels may be anything,
            e.g. -1).

    Returns:
        {"accuracy": float64 `[...]`, "macro_f1": float64 `[...]`} (NaN where no example counts).

    Raises:
        ValueError: shapes disagree, or a counted label or prediction is outside [0, num_classes).
    """
    pred = np.asarray(pred)
    y = np.asarray(y)
    if y.ndim != 1 or pred.ndim < 1 or pred.shape[-1] != y.shape[0]:
        raise ValueError(f"pred {pred.shape} and y {y.shape} must be [..., M] and [M]")
    keep = np.ones(y.shape, bool) if mask is None else np.asarray(mask, bool)
    if keep.shape != y.shape:
        raise ValueError(f"mask has shape {keep.shape}, expected {y.shape}")
    lead = pred.shape[:-1]
    p = pred.reshape(int(np.prod(lead, dtype=np.int64)), pred.shape[-1])[:, keep].astype(np.int64)
    g = y[keep].astype(np.int64)
    for what, a in (("gold label", g), ("prediction", p)):
        out = (a < 0) | (a >= num_classes)
        if out.any():
            raise ValueError(f"{what} {int(a[out][0])} is outside [0, {num_classes}) "
                             f"(example {int(np.nonzero(keep)[0][np.nonzero(out)[-1][0]])})")
    n = g.shape[0]
    acc = np.empty(p.shape[0])
    f1 = np.empty(p.shape[0])
    for r in range(p.shape[0]):  # cheap: bincount per probe
        conf = np.bincount(p[r] * num_classes + g, minlength=num_classes * num_classes)
        conf = conf.reshape(num_classes, num_classes)  # [pred, gold]
        tp = np.diag(conf).astype(np.float64)
        pred_n = conf.sum(1)
        gold_n = conf.sum(0)
        present = (pred_n + gold_n) > 0
        denom = pred_n + gold_n
        f1_c = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        acc[r] = tp.sum() / n if n else np.nan
        f1[r] = f1_c[present].mean() if present.any() else np.nan
    return {"accuracy": acc.reshape(lead), "macro_f1": f1.reshape(lead)}


# ----------------------------------------------------------------------------- ridge


@jax.jit
def _ridge_moments(x, idx_tk, y_tk, mean, scale, num_classes_arr):
    """Accumulates sum z, sum z z^T, sum z y^T, sum y over examples (float32, per layer).

    Args:
        idx_tk: int `[T, chunk, K]` (-1 = padding); y_tk: int `[T, chunk]`.
        num_classes_arr: `[C]` dummy array giving C statically.
    """
    c = num_classes_arr.shape[0]

    def body(acc, inp):
        ids, ys = inp
        valid = (ids[:, 0] >= 0).astype(jnp.float32)
        z = pair_features(x, ids, mean, scale) * valid[None, :, None]  # [L, chunk, Din]
        t = (2.0 * jax.nn.one_hot(ys, c, dtype=jnp.float32) - 1.0) * valid[:, None]  # +-1 targets
        s_z, g, b, s_t = acc
        return (
            s_z + jnp.sum(z, axis=1),
            g + jnp.einsum("lnd,lne->lde", z, z),
            b + jnp.einsum("lnd,nc->ldc", z, t),
            s_t + jnp.sum(t, axis=0),
        ), None

    din = x.shape[2] * (3 if idx_tk.shape[-1] == 2 else 1)
    L = x.shape[0]
    init = (
        jnp.zeros((L, din), jnp.float32),
        jnp.zeros((L, din, din), jnp.float32),
        jnp.zeros((L, din, c), jnp.float32),
        jnp.zeros((c,), jnp.float32),
    )
    out, _ = jax.lax.scan(body, init, (idx_tk, y_tk))
    return out


def fit_ridge(
    train_x,
    train_y,
    num_classes: int,
    *,
    cfg: ProbeConfig = ProbeConfig(probe="ridge"),
    dev_x=None,
    dev_y=None,
    train_pairs=None,
    dev_pairs=None,
    train_rows=None,
    dev_rows=None,
    chunk: int = 2048,
) -> ProbeFit:
    """Closed-form ridge probes for all layers; the L2 strength is chosen per layer on dev.

    Per layer, with standardised features z (or pair features), +-1 one-hot targets t and an
    unpenalised bias, minimise `(1/M) sum ||z W + b - t||^2 + l2 ||W||^2`. Centering removes the
    bias: with mu = mean z, G = (1/M) sum (z-mu)(z-mu)^T = Q diag(e) Q^T and
    B = (1/M) sum (z-mu)(t-tbar)^T, `W(l2) = Q diag(1/(e + l2)) Q^T B` and `b = tbar - mu W`.
    One `eigh` per layer serves every l2 of `cfg.ridge_l2s`; only `Q^T B` is rescaled.
    Deterministic: no seeds (the returned fit has S = 1, seeds = (0,)).

    Args:
        train_x, train_y, num_classes, dev_*, train_pairs, dev_pairs, *_rows: as `fit_probes`.
        cfg: uses `ridge_l2s`, `standardize`, `max_train`, `subsample_seed`.
        chunk: examples per accumulation step (bounds memory to `L * chunk * Din` floats).

    Returns:
        `ProbeFit` (kind "ridge", params {"w": [L,1,C,Din], "b": [L,1,C]}); `info` holds
        "l2" `[L]`, "l2_grid" and "dev_accuracy_grid" `[L, K]`.

    Raises:
        ValueError: several l2 values but no dev set; malformed inputs. FeatureError: NaN/Inf.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if (dev_x is None) != (dev_y is None):
        raise ValueError("pass both dev_x and dev_y, or neither")
    l2s = np.asarray(cfg.ridge_l2s, np.float64)
    if dev_x is None and l2s.shape[0] > 1:
        raise ValueError("fit_ridge needs dev_x/dev_y to choose among several ridge_l2s; "
                         "pass a dev set or a single l2")
    x = _as_device_features(train_x, "train_x")
    idx = _example_index(x.shape[1], train_rows, train_pairs, "train")
    y = _check_labels(train_y, idx.shape[0], num_classes, "train_y")
    keep = train_subset(idx.shape[0], cfg)
    idx, y = idx[keep], y[keep]
    m = idx.shape[0]
    if m == 0:
        raise ValueError("no training examples")
    mean, scale = _standardizer(x, idx, cfg, "train_x")
    chunk = int(min(chunk, m))
    idx_p, _ = _pad_index(idx, chunk)
    y_p = np.zeros((idx_p.shape[0],), np.int32)
    y_p[:m] = y
    s_z, g, b, s_t = jax.device_get(_ridge_moments(
        x, jnp.asarray(idx_p.reshape(-1, chunk, idx.shape[1])), jnp.asarray(y_p.reshape(-1, chunk)),
        mean, scale, jnp.zeros((num_classes,), jnp.float32),
    ))
    mu = s_z.astype(np.float64) / m  # [L, Din]
    tbar = s_t.astype(np.float64) / m  # [C]
    g_c = g.astype(np.float64) / m - np.einsum("ld,le->lde", mu, mu)
    b_c = b.astype(np.float64) / m - np.einsum("ld,c->ldc", mu, tbar)
    evals, evecs = np.linalg.eigh(g_c)  # [L, Din], [L, Din, Din]
    evals = np.maximum(evals, 0.0)  # clip round-off negatives of a PSD matrix
    qtb = np.einsum("lde,ldc->lec", evecs, b_c)  # Q^T B
    # l2 = 0 on rank-deficient features (a constant dimension, Din > M) divides by ~0: use the
    # pseudo-inverse there (the minimum-norm least-squares solution), relative to float32 sums.
    denom = evals[:, None, :] + l2s[None, :, None]  # [L, K, Din]
    tol = 1e-6 * np.maximum(evals.max(axis=-1), 1e-30)[:, None, None]
    inv = np.where(denom > tol, 1.0 / np.maximum(denom, tol), 0.0)
    w_k = np.einsum("lde,lke,lec->lkcd", evecs, inv, qtb)
    b_k = tbar[None, None, :] - np.einsum("ld,lkcd->lkc", mu, w_k)
    params_k = {"w": jnp.asarray(w_k, jnp.float32), "b": jnp.asarray(b_k, jnp.float32)}

    num_layers = x.shape[0]
    grid_acc = np.zeros((num_layers, l2s.shape[0]))
    if dev_x is not None:
        fit_k = ProbeFit(params_k, "ridge", num_classes, tuple(range(l2s.shape[0])),
                         idx.shape[1] == 2, mean, scale, np.zeros((num_layers, 1), np.int32),
                         np.zeros((0, num_layers, 1)), np.zeros((0, num_layers, 1)), 0)
        dev_y = np.asarray(dev_y)
        pred = predict_probes(fit_k, dev_x, dev_pairs, rows=dev_rows, batch_size=cfg.eval_batch_size,
                              name="dev_x")
        _require_dev_examples(pred.shape[-1])
        grid_acc = evaluate(pred, _check_labels(dev_y, pred.shape[-1], num_classes, "dev_y"),
                            num_classes)["accuracy"]
    # Ties go to the strongest regularisation (largest l2).
    order = np.argsort(-l2s, kind="stable")
    best = order[np.argmax(grid_acc[:, order], axis=1)]  # [L]
    take = jnp.asarray(best)[:, None]
    params = {
        "w": jnp.take_along_axis(params_k["w"], take[:, :, None, None], axis=1),
        "b": jnp.take_along_axis(params_k["b"], take[:, :, None], axis=1),
    }
    return ProbeFit(
        params=params,
        kind="ridge",
        num_classes=num_classes,
        seeds=(0,),
        pair=idx.shape[1] == 2,
        mean=mean,
        scale=scale,
        best_epoch=np.zeros((num_layers, 1), np.int32),
        dev_accuracy=(grid_acc[np.arange(num_layers), best][None, :, None] if dev_x is not None
                      else np.zeros((0, num_layers, 1))),
        train_loss=np.zeros((0, num_layers, 1)),
        epochs_run=0,
        info={"l2": l2s[best], "l2_grid": l2s, "dev_accuracy_grid": grid_acc},
    )
