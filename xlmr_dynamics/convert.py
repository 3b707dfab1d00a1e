"""Load XLM-R weights from fairseq, Hugging Face or converted checkpoints into `model.Encoder`.

Owns: format detection, the weight-name tables (fairseq and HF -> one canonical name -> our params
tree), architecture inference from hyperparameters or tensor shapes, strict validation, and the
converted format (`save_converted` / `load_converted`: orbax params + `config.json`).

Entry points: `load_encoder(path)` (auto-detects the format), `xlmr_from_fairseq`,
`xlmr_from_huggingface`, `convert_checkpoint(src, dst)`.

Strictness: every source tensor must map to a target (known-irrelevant keys such as `*.version`,
`_float_tensor`, `classification_heads.*` and HF `pooler.*` are ignored by name), every target must be
filled, and every shape must match; all problems are reported at once in one `CheckpointError` naming
the file. A missing MLM head is allowed (HF `XLMRobertaModel` has none): `hidden_states` works and
`mlm_logits` raises. torch is never imported: `.pt`/`.bin` files are read by `torchfile`.

Non-zero HF token-type embeddings (type_vocab_size=1, all ids 0) are added to every position row,
which is exact because both are summed before the embedding LayerNorm.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from xlmr_dynamics.model import Encoder, XLMRConfig, init_params
from xlmr_dynamics.torchfile import TorchFileError, load_torch_file, to_plain

CONVERTED_FORMAT = "xlmr-dynamics-encoder"
CONVERTED_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded exactly; the message names the file and the offending keys."""


class VocabMismatchError(CheckpointError):
    """The model's vocabulary size disagrees with the tokenizer / dictionary."""


# ----------------------------------------------------------------------------------------------
# Canonical names: "emb.word", "emb.pos", "emb.type", "emb.ln.weight", "L{n}.{q,k,v,o,attn_ln,fc1,
# fc2,out_ln}.{weight,bias}", "lm.{dense,ln}.{weight,bias}", "lm.bias", "lm.decoder". Weights stay in
# torch layout (out, in) until assembly.
# ----------------------------------------------------------------------------------------------

_FAIRSEQ_LAYER = {
    "self_attn.q_proj": "q", "self_attn.k_proj": "k", "self_attn.v_proj": "v",
    "self_attn.out_proj": "o", "self_attn_layer_norm": "attn_ln", "fc1": "fc1", "fc2": "fc2",
    "final_layer_norm": "out_ln",
}
_HF_LAYER = {
    "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
    "attention.output.dense": "o", "attention.output.LayerNorm": "attn_ln",
    "intermediate.dense": "fc1", "output.dense": "fc2", "output.LayerNorm": "out_ln",
}
_LN_PARAM = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}


def _fairseq_ignored(key: str) -> bool:
    return (
        key.endswith(".version")
        or key.endswith("_float_tensor")
        or key.startswith("classification_heads.")
        or ".classification_heads." in key
    )


def _fairseq_canonical(key: str) -> str | list[str] | None:
    """Canonical name(s) of a fairseq key, or None if unknown."""
    m = re.fullmatch(r"(?:encoder|decoder)\.sentence_encoder\.(.+)", key)
    if m:
        rest = m.group(1)
        simple = {
            "embed_tokens.weight": "emb.word",
            "embed_positions.weight": "emb.pos",
            "layernorm_embedding.weight": "emb.ln.weight",
            "layernorm_embedding.bias": "emb.ln.bias",
            "emb_layer_norm.weight": "emb.ln.weight",
            "emb_layer_norm.bias": "emb.ln.bias",
        }
        if rest in simple:
            return simple[rest]
        lm = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", rest)
        if lm:
            n, mod, kind = lm.groups()
            if mod in _FAIRSEQ_LAYER:
                return f"L{n}.{_FAIRSEQ_LAYER[mod]}.{kind}"
        fused = re.fullmatch(r"layers\.(\d+)\.self_attn\.in_proj_(weight|bias)", rest)
        if fused:
            n, kind = fused.groups()
            return [f"L{n}.{x}.{kind}" for x in ("q", "k", "v")]
        return None
    m = re.fullmatch(r"(?:encoder|decoder)\.lm_head\.(.+)", key)
    if m:
        return {
            "dense.weight": "lm.dense.weight", "dense.bias": "lm.dense.bias",
            "layer_norm.weight": "lm.ln.weight", "layer_norm.bias": "lm.ln.bias",
            "weight": "lm.decoder", "bias": "lm.bias",
        }.get(m.group(1))
    return None


def _hf_ignored(key: str) -> bool:
    return (
        key.startswith(("pooler.", "classifier.", "qa_outputs."))
        or key == "embeddings.position_ids"
        or key.startswith("roberta.pooler.")
        or key == "roberta.embeddings.position_ids"
    )


def _hf_canonical(key: str) -> str | None:
    k = key[len("roberta."):] if key.startswith("roberta.") else key
    simple = {
        "embeddings.word_embeddings.weight": "emb.word",
        "embeddings.position_embeddings.weight": "emb.pos",
        "embeddings.token_type_embeddings.weight": "emb.type",
        "lm_head.dense.weight": "lm.dense.weight", "lm_head.dense.bias": "lm.dense.bias",
        "lm_head.layer_norm.weight": "lm.ln.weight", "lm_head.layer_norm.bias": "lm.ln.bias",
        "lm_head.decoder.weight": "lm.decoder", "lm_head.bias": "lm.bias",
        "lm_head.decoder.bias": "lm.bias",
    }
    if k in simple:
        return simple[k]
    m = re.fullmatch(r"embeddings\.LayerNorm\.(weight|bias|gamma|beta)", k)
    if m:
        return f"emb.ln.{_LN_PARAM[m.group(1)]}"
    m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)", k)
    if m and m.group(2) in _HF_LAYER:
        return f"L{m.group(1)}.{_HF_LAYER[m.group(2)]}.{_LN_PARAM[m.group(3)]}"
    return None


def _canonicalise(state: dict[str, np.ndarray], *, source: str, fmt: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    unexpected = []
    for key, value in state.items():
        if fmt == "fairseq":
            if _fairseq_ignored(key):
                continue
            name = _fairseq_canonical(key)
        else:
            if _hf_ignored(key):
                continue
            name = _hf_canonical(key)
        if name is None:
            unexpected.append(key)
            continue
        arr = np.asarray(value)
        if isinstance(name, list):  # fused q,k,v
            if arr.shape[0] % 3:
                raise CheckpointError(f"{source}: fused key {key} has shape {arr.shape}, not 3*D rows")
            for part_name, part in zip(name, np.split(arr, 3, axis=0)):
                out[part_name] = part
        else:
            if name in out and name == "lm.bias" and np.array_equal(out[name], arr):
                continue  # HF stores lm_head.bias and lm_head.decoder.bias (tied)
            if name in out:
                unexpected.append(key + " (duplicate of " + name + ")")
                continue
            out[name] = arr
    if unexpected:
        raise CheckpointError(f"{source}: unexpected keys (no target in the XLM-R encoder): {sorted(unexpected)}")
    return out


def _infer_config(canon: dict[str, np.ndarray], hp: dict, *, source: str, num_heads: int | None) -> XLMRConfig:
    """Architecture from hyperparameters `hp` (our field names) or, for what is absent, from shapes."""
    if "emb.word" not in canon or "emb.pos" not in canon:
        missing = [k for k in ("emb.word", "emb.pos") if k not in canon]
        raise CheckpointError(f"{source}: missing keys {missing} (embeddings); cannot infer architecture")
    vocab, hidden = canon["emb.word"].shape
    layers = sorted({int(m.group(1)) for k in canon if (m := re.match(r"L(\d+)\.", k))})
    num_layers = (max(layers) + 1) if layers else 0
    ffn = canon["L0.fc1.weight"].shape[0] if "L0.fc1.weight" in canon else hp.get("intermediate_size", 4 * hidden)
    heads = num_heads or hp.get("num_heads") or max(1, hidden // 64)  # XLM-R uses 64-dim heads
    cfg = dict(
        vocab_size=int(vocab), hidden_size=int(hidden), num_layers=int(num_layers), num_heads=int(heads),
        intermediate_size=int(ffn), max_positions=int(canon["emb.pos"].shape[0]),
        pad_token_id=int(hp.get("pad_token_id", 1)), layer_norm_eps=float(hp.get("layer_norm_eps", 1e-5)),
    )
    for k in ("num_layers", "hidden_size", "intermediate_size", "vocab_size"):
        if k in hp and int(hp[k]) != cfg[k]:
            raise CheckpointError(
                f"{source}: hyperparameter {k}={hp[k]} disagrees with the tensors ({cfg[k]})"
            )
    try:
        return XLMRConfig(**cfg)
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from e


def _assemble(canon: dict[str, np.ndarray], cfg: XLMRConfig, *, source: str):
    """Canonical tensors -> params tree, checking names and shapes against the model's own tree."""
    canon = dict(canon)
    if "emb.type" in canon:
        t = canon.pop("emb.type")
        if t.ndim != 2 or t.shape[1] != cfg.hidden_size:
            raise CheckpointError(f"{source}: token_type_embeddings has shape {t.shape}")
        canon["emb.pos"] = (canon["emb.pos"].astype(np.float32) + t[0].astype(np.float32))
    has_head = any(k.startswith("lm.") for k in canon)
    if has_head and "lm.decoder" in canon:
        dec = canon.pop("lm.decoder")
        if dec.shape != canon["emb.word"].shape or not np.array_equal(dec, canon["emb.word"]):
            raise CheckpointError(
                f"{source}: the MLM decoder weight is not tied to the word embeddings "
                "(XLM-R ties them; an untied decoder is not supported)"
            )

    def take(name, transpose=False):
        if name not in canon:
            missing.append(name)
            return None
        arr = canon.pop(name).astype(np.float32)
        return arr.T if transpose else arr

    missing: list[str] = []
    params: dict[str, Any] = {
        "embeddings": {
            "word_embeddings": take("emb.word"),
            "position_embeddings": take("emb.pos"),
            "LayerNorm": {"scale": take("emb.ln.weight"), "bias": take("emb.ln.bias")},
        }
    }
    ours = {"q": "query", "k": "key", "v": "value", "o": "attention_output", "fc1": "intermediate",
            "fc2": "output", "attn_ln": "attention_LayerNorm", "out_ln": "output_LayerNorm"}
    expected = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    layers: dict[str, Any] = {}
    bad: list[str] = []
    for short, name in ours.items():
        is_ln = short.endswith("ln")
        wname = "scale" if is_ln else "kernel"
        ws = [take(f"L{n}.{short}.weight", transpose=not is_ln) for n in range(cfg.num_layers)]
        bs = [take(f"L{n}.{short}.bias") for n in range(cfg.num_layers)]
        if any(w is None for w in ws) or any(b is None for b in bs):
            continue
        for kind, arrs in ((wname, ws), ("bias", bs)):
            want = expected["layers"][name][kind].shape[1:]
            bad += [f"layers/{name}/{kind}[layer {n}]: checkpoint {a.shape} vs model {want}"
                    for n, a in enumerate(arrs) if a.shape != want]
        if not bad:
            layers[name] = {wname: np.stack(ws), "bias": np.stack(bs)}
    params["layers"] = layers
    if has_head:
        params["lm_head"] = {
            "dense": {"kernel": take("lm.dense.weight", transpose=True), "bias": take("lm.dense.bias")},
            "layer_norm": {"scale": take("lm.ln.weight"), "bias": take("lm.ln.bias")},
            "bias": take("lm.bias"),
        }
    leftovers = sorted(canon)
    if missing or leftovers:
        raise CheckpointError(
            f"{source}: missing keys {sorted(set(missing))}"
            + (f"; keys beyond the inferred {cfg.num_layers} layers: {leftovers}" if leftovers else "")
        )
    if bad:
        raise CheckpointError(f"{source}: shape mismatch for {bad}")
    # Shape check against the model's own (abstract) parameter tree.
    if not has_head:
        expected = {k: v for k, v in expected.items() if k != "lm_head"}
    exp_flat = {jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_flatten_with_path(expected)[0]}
    got_flat = {jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    bad = [f"{k}: checkpoint {got_flat.get(k)} vs model {s}" for k, s in exp_flat.items() if got_flat.get(k) != s]
    if bad or set(got_flat) != set(exp_flat):
        raise CheckpointError(f"{source}: shape mismatch for {bad + sorted(set(got_flat) ^ set(exp_flat))}")
    return params, has_head


def _read_state_file(path: Path) -> Any:
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return load_file(str(path))
        return load_torch_file(path)
    except TorchFileError as e:
        raise CheckpointError(str(e)) from e
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read ({type(e).__name__}: {e}); truncated or corrupt?") from e


def from_state_dict(state: dict, *, fmt: str, hparams: dict | None = None, num_heads: int | None = None,
                    source: str = "state dict") -> Encoder:
    """Build an Encoder from an in-memory state dict of numpy arrays.

    Args:
      state: tensor name -> array, with fairseq (`fmt="fairseq"`) or HF (`fmt="hf"`) names.
      hparams: optional architecture fields (XLMRConfig names) to check the tensors against.
      num_heads: attention heads (not inferable from shapes; default hparams or D // 64).
    """
    hp = dict(hparams or {})
    canon = _canonicalise(state, source=source, fmt=fmt)
    cfg = _infer_config(canon, hp, source=source, num_heads=num_heads or hp.get("num_heads"))
    params, has_head = _assemble(canon, cfg, source=source)
    return Encoder(cfg, jax.tree.map(np.asarray, params), {"source": source, "has_mlm_head": has_head})


# --------------------------------------------------------------------------------- fairseq ----

_FAIRSEQ_HP = {  # fairseq arg -> our field
    "encoder_layers": "num_layers", "encoder_embed_dim": "hidden_size",
    "encoder_ffn_embed_dim": "intermediate_size", "encoder_attention_heads": "num_heads",
}
_FAIRSEQ_REQUIRED = {  # fairseq arg -> value this implementation computes
    "encoder_normalize_before": False, "activation_fn": "gelu", "no_scale_embedding": True,
    "encoder_learned_pos": True, "layernorm_embedding": True,
}


def _fairseq_hparams(ckpt: dict, source: str) -> dict:
    raw = None
    if ckpt.get("cfg") is not None:
        cfg = to_plain(ckpt["cfg"])
        raw = cfg.get("model") if isinstance(cfg, dict) else None
    if raw is None and ckpt.get("args") is not None:
        raw = to_plain(ckpt["args"])
    if not isinstance(raw, dict):
        return {}
    hp = {ours: raw[k] for k, ours in _FAIRSEQ_HP.items() if raw.get(k) is not None}
    bad = [
        f"{k}={raw[k]!r} (supported: {v!r})"
        for k, v in _FAIRSEQ_REQUIRED.items()
        if k in raw and raw[k] is not None and raw[k] != v
    ]
    if bad:
        raise CheckpointError(f"{source}: unsupported architecture settings {bad}")
    return hp


def _fairseq_step(ckpt: dict) -> int | None:
    hist = ckpt.get("optimizer_history")
    if isinstance(hist, list) and hist and isinstance(hist[-1], dict) and "num_updates" in hist[-1]:
        return int(hist[-1]["num_updates"])
    return None


def xlmr_from_fairseq(path: str | Path, *, num_heads: int | None = None) -> Encoder:
    """Load a fairseq RoBERTa/XLM-R checkpoint (`model.pt`, or a directory holding it)."""
    path = Path(path)
    file = path / "model.pt" if path.is_dir() else path
    ckpt = _read_state_file(file)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{file}: not a fairseq checkpoint (no 'model' state dict)")
    hp = _fairseq_hparams(ckpt, str(file))
    enc = from_state_dict(ckpt["model"], fmt="fairseq", hparams=hp, num_heads=num_heads, source=str(file))
    cfg = enc.config
    dict_file = file.parent / "dict.txt"
    if dict_file.exists():
        n = sum(1 for line in dict_file.read_text(encoding="utf-8").splitlines() if line.strip())
        if cfg.vocab_size not in (n + 4, n + 5):  # 4 specials, + <mask> for XLM-R/RoBERTa MLM
            raise VocabMismatchError(
                f"{file}: embedding has {cfg.vocab_size} rows but {dict_file} lists {n} symbols "
                f"(expected {n + 4} or {n + 5} rows)"
            )
    enc.metadata.update(source=str(file), source_format="fairseq")
    step = _fairseq_step(ckpt)
    if step is not None:
        enc.metadata["step"] = step
    return enc


# ---------------------------------------------------------------------------- Hugging Face ----

_HF_REQUIRED = {"hidden_act": "gelu", "position_embedding_type": "absolute", "is_decoder": False,
                "add_cross_attention": False}


def _hf_config(path: Path) -> dict:
    cfg_file = path / "config.json"
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: cannot read config ({e})") from e
    if raw.get("model_type") not in ("xlm-roberta", "roberta", None):
        raise CheckpointError(f"{cfg_file}: model_type {raw.get('model_type')!r} is not xlm-roberta/roberta")
    bad = [f"{k}={raw[k]!r}" for k, v in _HF_REQUIRED.items() if k in raw and raw[k] != v]
    if raw.get("type_vocab_size", 1) != 1:
        bad.append(f"type_vocab_size={raw['type_vocab_size']}")
    if bad:
        raise CheckpointError(f"{cfg_file}: unsupported settings {bad}")
    hp = {
        "num_layers": raw.get("num_hidden_layers"), "hidden_size": raw.get("hidden_size"),
        "num_heads": raw.get("num_attention_heads"), "intermediate_size": raw.get("intermediate_size"),
        "vocab_size": raw.get("vocab_size"), "pad_token_id": raw.get("pad_token_id"),
        "layer_norm_eps": raw.get("layer_norm_eps"),
    }
    return {k: v for k, v in hp.items() if v is not None}


def _hf_weight_files(path: Path) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.exists():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [path / f for f in files]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).exists():
            return [path / name]
    raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin found")


def xlmr_from_huggingface(path: str | Path) -> Encoder:
    """Load an HF XLM-R directory (`config.json` + safetensors or bin, sharded or not)."""
    path = Path(path)
    hp = _hf_config(path)
    state: dict[str, np.ndarray] = {}
    files = _hf_weight_files(path)
    for f in files:
        state.update(_read_state_file(f))
    source = str(files[0]) if len(files) == 1 else str(path)
    enc = from_state_dict(state, fmt="hf", hparams=hp, source=source)
    enc.metadata.update(source=str(path), source_format="huggingface")
    return enc


# ------------------------------------------------------------------------------- converted ----


def _write_json_atomic(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_converted(path: str | Path, config: XLMRConfig, params, metadata: dict | None = None) -> Path:
    """Write params (orbax, under `params/`) then `config.json` (its presence marks completion)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    ckptr = ocp.StandardCheckpointer()
    from xlmr_dynamics.sharding import to_host  # multi-host arrays are not fully addressable

    # Overwriting: unmark first, so a kill while the new params are written never leaves a
    # directory that looks complete with old or partial params.
    (path / "config.json").unlink(missing_ok=True)
    ckptr.save(path / "params", jax.tree.map(to_host, params), force=True)
    ckptr.wait_until_finished()
    meta = dict(metadata or {})
    meta.setdefault("has_mlm_head", "lm_head" in params)
    _write_json_atomic(
        path / "config.json",
        {"format": CONVERTED_FORMAT, "version": CONVERTED_VERSION, "config": config.to_dict(), "metadata": meta},
    )
    return path


def _is_converted(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text()).get("format") == CONVERTED_FORMAT
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def load_converted(path: str | Path) -> Encoder:
    """Load a checkpoint written by `save_converted` (no torch; restores straight into arrays)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    where = path / "config.json"
    try:
        info = json.loads(where.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{where}: cannot read ({e})") from e
    if info.get("version") != CONVERTED_VERSION:
        raise CheckpointError(f"{where}: unsupported converted version {info.get('version')}")
    try:
        cfg = XLMRConfig.from_dict(info["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: bad model config ({type(e).__name__}: {e})") from e
    meta = info.get("metadata", {})
    abstract = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    if not meta.get("has_mlm_head", True):
        abstract = {k: v for k, v in abstract.items() if k != "lm_head"}
    try:
        params = ocp.StandardCheckpointer().restore(path / "params", abstract)
    except Exception as e:  # orbax raises several types for damaged trees
        raise CheckpointError(f"{path / 'params'}: cannot restore converted params ({type(e).__name__}: {e})") from e
    return Encoder(cfg, params, meta)


# ------------------------------------------------------------------------------ dispatching ----


def detect_format(path: str | Path) -> str:
    """'converted', 'huggingface' or 'fairseq'; raises CheckpointError naming what was looked for."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir():
        if _is_converted(path):
            return "converted"
        if (path / "config.json").exists():
            return "huggingface"
        if (path / "model.pt").exists():
            return "fairseq"
        raise CheckpointError(
            f"{path}: not a checkpoint directory (looked for an xlmr-dynamics config.json, an HF "
            "config.json with weights, or a fairseq model.pt)"
        )
    if path.suffix in (".pt", ".bin") or path.suffix == "":
        return "fairseq"
    raise CheckpointError(f"{path}: unrecognised checkpoint file (expected a fairseq .pt or a directory)")


def load_encoder(path: str | Path, dtype: str | None = None, *, tokenizer=None,
                 num_heads: int | None = None) -> Encoder:
    """Load any supported checkpoint as an `Encoder`.

    Args:
      path: an HF directory, a fairseq `.pt` file (or a directory with `model.pt`), or a directory
        written by `save_converted` / `xlmr-dynamics convert`.
      dtype: compute dtype override ("float32" or "bfloat16").
      tokenizer: if given, its `vocab_size` must equal the model's (else `VocabMismatchError`).
      num_heads: attention heads for fairseq files that carry no hyperparameters (default D // 64).
    """
    fmt = detect_format(path)
    if fmt == "converted":
        enc = load_converted(path)
    elif fmt == "huggingface":
        enc = xlmr_from_huggingface(path)
    else:
        enc = xlmr_from_fairseq(path, num_heads=num_heads)
    if dtype is not None:
        enc = enc.with_dtype(dtype)
    if tokenizer is not None:
        check_vocab(enc, tokenizer, source=str(path))
    return enc


def check_vocab(encoder: Encoder, tokenizer, *, source: str = "checkpoint") -> None:
    """Raise VocabMismatchError if the tokenizer's ids do not fit the model's embedding table."""
    tv = int(tokenizer.vocab_size if hasattr(tokenizer, "vocab_size") else len(tokenizer))
    if tv != encoder.config.vocab_size:
        raise VocabMismatchError(
            f"{source}: model vocabulary has {encoder.config.vocab_size} ids but the tokenizer has {tv}"
        )


def convert_checkpoint(src: str | Path, dst: str | Path, *, num_heads: int | None = None) -> Path:
    """Convert any supported checkpoint to the fast converted format at `dst`."""
    enc = load_encoder(src, num_heads=num_heads)
    meta = dict(enc.metadata)
    return save_converted(dst, enc.config, enc.params, meta)
