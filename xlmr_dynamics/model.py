"""The XLM-R encoder and MLM head in Flax linen, as pure functions of a params pytree.

Owns: `XLMRConfig` (frozen, hashable: usable as a jit static argument), the linen modules, and the
functional entry points `init_params`, `forward`, `hidden_states` and `mlm_logits`.

Architecture (matches fairseq `RobertaModel` and HF `XLMRobertaModel` bit for bit up to float error):
post-LayerNorm transformer, exact (erf) GELU, LayerNorm eps 1e-5, learned positions numbered from
`pad_token_id + 1` for real tokens (pads get `pad_token_id`), a zero token-type embedding (folded away:
fairseq has none, the HF converter zeroes it), no embedding scaling, MLM decoder tied to the word
embeddings. Layers are stored stacked on a leading axis (`params["layers"][...]` has shape `[L, ...]`)
and run with `nn.scan`, so compile time does not grow with depth.

Why linen: a frozen feature extractor is a pure function of its weights; linen keeps `jit`,
sharding and orbax trivially functional (stack-notes section 2).

Limits: encoder-only (no pooler, no classification heads); attention is plain softmax attention
(O(T^2) memory), fine up to the 512 positions XLM-R supports.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from xlmr_dynamics import sharding as S

Params = Any

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
DTYPES = tuple(_DTYPES)  # compute dtypes


@dataclasses.dataclass(frozen=True)
class XLMRConfig:
    """Architecture of an XLM-R encoder. Defaults are XLM-R Base.

    Attributes:
      vocab_size: number of token ids (250,002 for XLM-R: 250k pieces + 4 specials - 3 + <mask>).
      hidden_size: model width D.
      num_layers: transformer layers L (hidden states returned: L + 1).
      num_heads: attention heads; must divide hidden_size.
      intermediate_size: FFN width.
      max_positions: rows of the position table (514 = 512 + padding_idx + 1).
      pad_token_id: fairseq padding_idx (1); positions start at pad_token_id + 1.
      layer_norm_eps: LayerNorm epsilon (1e-5 in fairseq/HF XLM-R; flax defaults to 1e-6).
      dropout: dropout rate used only when `deterministic=False` (pretraining).
      dtype: compute dtype, "float32" (reference) or "bfloat16"; params stay float32 and outputs
        (hidden states, logits) are returned in float32.
    """

    vocab_size: int = 250002
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_positions: int = 514
    pad_token_id: int = 1
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1
    dtype: str = "float32"

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"XLMRConfig: hidden_size={self.hidden_size} is not divisible by "
                f"num_heads={self.num_heads}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"XLMRConfig: dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"XLMRConfig: {name} must be positive, got {getattr(self, name)}")
        if self.max_positions <= self.pad_token_id + 1:
            raise ValueError("XLMRConfig: max_positions must exceed pad_token_id + 1")

    @property
    def max_seq_len(self) -> int:
        """Longest input (specials included) the position table supports (512 for XLM-R)."""
        return self.max_positions - self.pad_token_id - 1

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    def replace(self, **changes) -> "XLMRConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "XLMRConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"XLMRConfig: unknown keys {unknown}")
        return cls(**d)

    @classmethod
    def tiny(cls, vocab_size: int = 211, **kw) -> "XLMRConfig":
        """A small prime-sized config for tests (a wrong transpose cannot pass)."""
        base = dict(
            vocab_size=vocab_size,
            hidden_size=28,
            num_layers=3,
            num_heads=4,
            intermediate_size=52,
            max_positions=130,
        )
        base.update(kw)
        return cls(**base)


def _layer_norm(cfg: XLMRConfig, name: str) -> nn.LayerNorm:
    # LayerNorm statistics in float32 even for bf16 compute.
    return nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name=name)


# Matmuls accumulate and return float32 whatever the compute dtype: with bfloat16 inputs this is both
# more exact and, on CPUs with AVX512-BF16, about twice as fast as a bf16-output dot (measured in
# scripts/bench_extract.py); for float32 it changes nothing.
_dot_f32 = functools.partial(jax.lax.dot_general, preferred_element_type=jnp.float32)


def _dense(cfg: XLMRConfig, features: int, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        dtype=cfg.compute_dtype,
        param_dtype=jnp.float32,
        kernel_init=nn.initializers.normal(0.02),
        dot_general=_dot_f32,
        name=name,
    )


def _gelu(x):
    return jax.nn.gelu(x, approximate=False)  # HF/fairseq use the exact erf GELU


class Embeddings(nn.Module):
    cfg: XLMRConfig

    @nn.compact
    def __call__(self, input_ids_bt, positions_bt, *, deterministic: bool):
        cfg = self.cfg
        init = nn.initializers.normal(0.02)
        word_vd = self.param("word_embeddings", init, (cfg.vocab_size, cfg.hidden_size))
        pos_pd = self.param("position_embeddings", init, (cfg.max_positions, cfg.hidden_size))
        x_btd = jnp.take(word_vd, input_ids_bt, axis=0) + jnp.take(pos_pd, positions_bt, axis=0)
        x_btd = _layer_norm(cfg, "LayerNorm")(x_btd)
        x_btd = nn.Dropout(cfg.dropout)(x_btd, deterministic=deterministic)
        return x_btd, word_vd


class Layer(nn.Module):
    """One post-LN transformer block; scanned over the layer axis."""

    cfg: XLMRConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, x_btd, bias_b11t):
        cfg = self.cfg
        h, dh = cfg.num_heads, cfg.hidden_size // cfg.num_heads
        cd = cfg.compute_dtype
        b, t, d = x_btd.shape
        xin = x_btd.astype(cd)
        q_bthk = _dense(cfg, d, "query")(xin).reshape(b, t, h, dh)
        k_bthk = _dense(cfg, d, "key")(xin).reshape(b, t, h, dh)
        v_bthk = _dense(cfg, d, "value")(xin).reshape(b, t, h, dh)
        scores_bhts = jnp.einsum("bthk,bshk->bhts", q_bthk.astype(cd), k_bthk.astype(cd),
                                 preferred_element_type=jnp.float32)
        scores_bhts = scores_bhts / jnp.sqrt(jnp.float32(dh)) + bias_b11t
        probs_bhts = jax.nn.softmax(scores_bhts, axis=-1)
        probs_bhts = nn.Dropout(cfg.dropout)(probs_bhts, deterministic=self.deterministic)
        ctx_btd = jnp.einsum("bhts,bshk->bthk", probs_bhts.astype(cd), v_bthk.astype(cd),
                             preferred_element_type=jnp.float32).reshape(b, t, d)
        attn_btd = _dense(cfg, d, "attention_output")(ctx_btd)
        attn_btd = nn.Dropout(cfg.dropout)(attn_btd, deterministic=self.deterministic)
        x_btd = _layer_norm(cfg, "attention_LayerNorm")(x_btd + attn_btd.astype(jnp.float32))
        ff_btf = _gelu(_dense(cfg, cfg.intermediate_size, "intermediate")(x_btd.astype(cd)))
        ff_btd = _dense(cfg, d, "output")(ff_btf)
        ff_btd = nn.Dropout(cfg.dropout)(ff_btd, deterministic=self.deterministic)
        x_btd = _layer_norm(cfg, "output_LayerNorm")(x_btd + ff_btd.astype(jnp.float32))
        return x_btd, x_btd


class LMHead(nn.Module):
    cfg: XLMRConfig

    @nn.compact
    def __call__(self, x_btd, word_vd):
        cfg = self.cfg
        y = _gelu(_dense(cfg, cfg.hidden_size, "dense")(x_btd.astype(cfg.compute_dtype)))
        y = _layer_norm(cfg, "layer_norm")(y.astype(jnp.float32))
        bias_v = self.param("bias", nn.initializers.zeros, (cfg.vocab_size,))
        logits = jnp.einsum("btd,vd->btv", y.astype(cfg.compute_dtype), word_vd.astype(cfg.compute_dtype),
                            preferred_element_type=jnp.float32)
        return logits + bias_v


class XLMR(nn.Module):
    """Encoder + MLM head. Returns (logits [B,T,V] or None, hidden states [L+1,B,T,D])."""

    cfg: XLMRConfig

    @nn.compact
    def __call__(self, input_ids_bt, attention_mask_bt, segment_ids_bt=None, *, deterministic: bool = True,
                 with_logits: bool = True):
        cfg = self.cfg
        positions_bt, bias_b11t = _positions_and_bias(cfg, input_ids_bt, attention_mask_bt, segment_ids_bt)
        x_btd, word_vd = Embeddings(cfg, name="embeddings")(input_ids_bt, positions_bt, deterministic=deterministic)
        stack = nn.scan(
            Layer,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=nn.broadcast,
            length=cfg.num_layers,
        )
        emb_btd = x_btd
        x_btd, layers_lbtd = stack(cfg, deterministic, name="layers")(x_btd, bias_b11t)
        hidden_lbtd = jnp.concatenate([emb_btd[None], layers_lbtd], axis=0)
        logits = LMHead(cfg, name="lm_head")(x_btd, word_vd) if with_logits else None
        return logits, hidden_lbtd


def _positions_and_bias(cfg: XLMRConfig, input_ids_bt, attention_mask_bt, segment_ids_bt):
    """Position ids and the additive attention bias.

    Without `segment_ids`: HF/fairseq positions (`cumsum(ids != pad) + pad`, pads get `pad`) and a key
    mask `[B,1,1,T]`. With `segment_ids` (packed rows: several sequences per row, 1, 2, ... per
    sequence, 0 on padding): positions restart at `pad + 1` for every sequence and attention is
    block-diagonal `[B,1,T,T]`, so each packed sequence is encoded exactly as if it were alone.
    finfo.min (not -inf) keeps fully masked rows finite.
    """
    neg = jnp.finfo(jnp.float32).min
    if segment_ids_bt is None:
        not_pad_bt = (input_ids_bt != cfg.pad_token_id).astype(jnp.int32)
        positions_bt = jnp.cumsum(not_pad_bt, axis=1) * not_pad_bt + cfg.pad_token_id
        return positions_bt, jnp.where(attention_mask_bt[:, None, None, :] > 0, 0.0, neg)
    seg_bt = jnp.asarray(segment_ids_bt, jnp.int32)
    t = seg_bt.shape[1]
    idx_bt = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), seg_bt.shape)
    first_bt = jnp.concatenate([jnp.ones_like(seg_bt[:, :1], bool), seg_bt[:, 1:] != seg_bt[:, :-1]], axis=1)
    start_bt = jax.lax.cummax(jnp.where(first_bt, idx_bt, 0), axis=1)
    real_bt = seg_bt > 0
    positions_bt = jnp.where(real_bt, idx_bt - start_bt + cfg.pad_token_id + 1, cfg.pad_token_id)
    same_btt = (seg_bt[:, :, None] == seg_bt[:, None, :]) & real_bt[:, None, :]
    return positions_bt, jnp.where(same_btt[:, None], 0.0, neg)


def init_params(cfg: XLMRConfig, key: jax.Array) -> Params:
    """Random parameters (BERT-style N(0, 0.02) init, zero biases, unit LayerNorm scales)."""
    ids = jnp.full((1, 4), 0, jnp.int32)
    return XLMR(cfg).init({"params": key}, ids, jnp.ones_like(ids))["params"]


def forward(
    params: Params,
    input_ids,
    attention_mask,
    *,
    cfg: XLMRConfig,
    deterministic: bool = True,
    dropout_key: jax.Array | None = None,
    with_logits: bool = True,
    segment_ids=None,
):
    """Full forward pass.

    Args:
      params: parameters from `init_params` or a converter.
      input_ids: int [B, T]; pad positions hold `cfg.pad_token_id`.
      attention_mask: int/bool [B, T]; 1 for real tokens.
      cfg: the architecture (static under jit).
      deterministic: False enables dropout (needs `dropout_key`).
      with_logits: False skips the MLM head (saves the [B,T,V] matmul).
      segment_ids: optional int [B, T] for packed rows (1, 2, ... per sequence, 0 = padding); see
        `_positions_and_bias`.

    Returns:
      (logits float32 [B, T, V] or None, hidden states float32 [L+1, B, T, D]).
    """
    rngs = None if deterministic else {"dropout": dropout_key}
    logits, hidden = XLMR(cfg).apply(
        {"params": params},
        jnp.asarray(input_ids, jnp.int32),
        jnp.asarray(attention_mask, jnp.int32),
        segment_ids,
        deterministic=deterministic,
        with_logits=with_logits,
        rngs=rngs,
    )
    return logits, hidden.astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("cfg",))
def hidden_states(params: Params, input_ids, attention_mask, *, cfg: XLMRConfig, segment_ids=None):
    """All hidden states, embedding output first: float32 [L+1, B, T, D]."""
    return forward(params, input_ids, attention_mask, cfg=cfg, with_logits=False, segment_ids=segment_ids)[1]


@functools.partial(jax.jit, static_argnames=("cfg",))
def mlm_logits(params: Params, input_ids, attention_mask, *, cfg: XLMRConfig):
    """Masked-LM logits, float32 [B, T, V]."""
    return forward(params, input_ids, attention_mask, cfg=cfg)[0]


def _one_replica(a):
    """A jax array on several devices (replicated params, see `Encoder.placed`) -> its first local
    replica, without copying; anything else unchanged."""
    return a.addressable_data(0) if isinstance(a, jax.Array) and len(a.devices()) > 1 else a


class Encoder:
    """A loaded model: `config`, `params` and jitted `hidden_states` / `mlm_logits` methods.

    The methods are plain jitted functions of `self.params`; inside a user's own `jax.jit`, call
    `xlmr_dynamics.model.hidden_states(enc.params, ids, mask, cfg=enc.config)` (or the methods, which
    trace through).
    """

    def __init__(self, config: XLMRConfig, params: Params, metadata: dict | None = None):
        self.config = config
        self.params = params
        self.metadata = dict(metadata or {})
        self._placed: dict = {}  # mesh (None: default device) -> params put there

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    def device_params(self, mesh: jax.sharding.Mesh | None = None) -> Params:
        """`params` on one device (the default one, or for params already replicated over
        devices the first local one), or replicated over `mesh`, put there once per mesh (loaders
        return numpy arrays, which a jitted call would otherwise copy on every call)."""
        if mesh not in self._placed:
            if mesh is None:
                self._placed[None] = jax.device_put(jax.tree.map(_one_replica, self.params))
            else:
                self._placed[mesh] = S.put_replicated(self.params, mesh)
        return self._placed[mesh]

    def placed(self, mesh: jax.sharding.Mesh) -> "Encoder":
        """This model with its params replicated over `mesh` (no host copy kept): what a sweep
        holds per checkpoint, so extraction, alignment and BPC reuse one device copy."""
        return Encoder(self.config, self.device_params(mesh), self.metadata)

    def _check_inputs(self, input_ids, attention_mask) -> None:
        """Shapes, length and (outside a trace) id range: out-of-range positions or ids would be
        gathered as NaN, not raise."""
        shape = np.shape(input_ids)
        if len(shape) != 2 or np.shape(attention_mask) != shape:
            raise ValueError(f"input_ids and attention_mask must both be [B, T], got {shape} and "
                             f"{np.shape(attention_mask)}")
        if shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence length {shape[1]} exceeds the model's max_seq_len "
                             f"{self.config.max_seq_len}")
        if not isinstance(input_ids, jax.core.Tracer) and np.size(input_ids):
            ids = np.asarray(input_ids)
            if ids.min() < 0 or ids.max() >= self.config.vocab_size:
                raise ValueError(f"token ids must be in [0, {self.config.vocab_size}), got "
                                 f"[{ids.min()}, {ids.max()}]")

    def hidden_states(self, input_ids, attention_mask):
        """All hidden states, embedding output first: float32 [L+1, B, T, D]."""
        self._check_inputs(input_ids, attention_mask)
        return hidden_states(self.device_params(), input_ids, attention_mask, cfg=self.config)

    def mlm_logits(self, input_ids, attention_mask):
        """Masked-LM logits, float32 [B, T, V]."""
        if self.metadata.get("has_mlm_head") is False:
            raise ValueError(
                f"{self.metadata.get('source', 'this checkpoint')} has no MLM head (e.g. an HF "
                "XLMRobertaModel); hidden_states works, mlm_logits needs XLMRobertaForMaskedLM weights"
            )
        self._check_inputs(input_ids, attention_mask)
        return mlm_logits(self.device_params(), input_ids, attention_mask, cfg=self.config)

    def with_dtype(self, dtype: str) -> "Encoder":
        return Encoder(self.config.replace(dtype=dtype), self.params, self.metadata)

    def __repr__(self):
        c = self.config
        return (
            f"Encoder(layers={c.num_layers}, hidden={c.hidden_size}, heads={c.num_heads}, "
            f"vocab={c.vocab_size}, dtype={c.dtype})"
        )
