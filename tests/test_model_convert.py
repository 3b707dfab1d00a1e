"""Parity of the Flax XLM-R with HF torch, and every checkpoint format/variant the loader accepts."""

import argparse
import collections
import json
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel

from xlmr_dynamics import model as M
from xlmr_dynamics.convert import (
    CheckpointError,
    VocabMismatchError,
    convert_checkpoint,
    from_state_dict,
    load_encoder,
)

TINY = dict(vocab_size=211, hidden_size=28, num_hidden_layers=3, num_attention_heads=4,
            intermediate_size=52, max_position_embeddings=130)
BF16_TOL = 0.25  # documented in README: max abs diff of bf16 vs f32 hidden states on the tiny model


def random_hf(cls=XLMRobertaForMaskedLM, seed=0, scale=0.3, **kw):
    """An HF model with *every* parameter randomised (LayerNorms too), token-type zeroed.

    `scale` is the std of weights and biases (LayerNorm scales are 1 + scale * N(0,1)); at base width
    use a trained-model-like scale, since 0.3 saturates every softmax and amplifies float32 rounding.
    """
    cfg = XLMRobertaConfig(**{**TINY, **kw}, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                           type_vocab_size=1, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    m = cls(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "token_type" in name:
                p.zero_()
            elif "LayerNorm.weight" in name or "layer_norm.weight" in name:
                p.copy_(1.0 + scale * torch.randn_like(p))
            else:
                p.copy_(scale * torch.randn_like(p))
    return m


def batch(vocab, rng, b=3, t=11):
    lens = rng.integers(3, t + 1, size=b)
    lens[0] = t
    ids = np.full((b, t), 1, np.int64)
    for i, n in enumerate(lens):
        ids[i, :n] = rng.integers(4, vocab, size=n)
        ids[i, 0], ids[i, n - 1] = 0, 2
    return ids, (ids != 1).astype(np.int64)


def torch_outputs(m, ids, mask):
    with torch.no_grad():
        out = m(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True)
    hidden = np.stack([h.numpy() for h in out.hidden_states])
    logits = out.logits.numpy() if hasattr(out, "logits") else None
    return hidden, logits


def assert_close_on_tokens(ours, ref, mask, tol):
    keep = mask.astype(bool)
    diff = np.abs(np.asarray(ours)[..., keep, :] - ref[..., keep, :]).max()
    assert diff <= tol, diff


def hf_to_fairseq(sd, *, legacy=False, fused=False):
    """Rename an HF XLMRobertaForMaskedLM state dict to fairseq names (optionally legacy/fused)."""
    p = "decoder.sentence_encoder." if legacy else "encoder.sentence_encoder."
    head = "decoder.lm_head." if legacy else "encoder.lm_head."
    ln = "emb_layer_norm" if legacy else "layernorm_embedding"
    out = collections.OrderedDict()
    e = "roberta.embeddings."
    out[p + "embed_tokens.weight"] = sd[e + "word_embeddings.weight"]
    out[p + "embed_positions.weight"] = sd[e + "position_embeddings.weight"]
    out[p + f"{ln}.weight"] = sd[e + "LayerNorm.weight"]
    out[p + f"{ln}.bias"] = sd[e + "LayerNorm.bias"]
    n_layers = 1 + max(int(k.split(".")[3]) for k in sd if ".layer." in k)
    for n in range(n_layers):
        h, f = f"roberta.encoder.layer.{n}.", f"{p}layers.{n}."
        for kind in ("weight", "bias"):
            qkv = [sd[f"{h}attention.self.{x}.{kind}"] for x in ("query", "key", "value")]
            if fused:
                out[f"{f}self_attn.in_proj_{kind}"] = torch.cat(qkv, 0)
            else:
                for name, t in zip(("q_proj", "k_proj", "v_proj"), qkv):
                    out[f"{f}self_attn.{name}.{kind}"] = t
            out[f"{f}self_attn.out_proj.{kind}"] = sd[f"{h}attention.output.dense.{kind}"]
            out[f"{f}self_attn_layer_norm.{kind}"] = sd[f"{h}attention.output.LayerNorm.{kind}"]
            out[f"{f}fc1.{kind}"] = sd[f"{h}intermediate.dense.{kind}"]
            out[f"{f}fc2.{kind}"] = sd[f"{h}output.dense.{kind}"]
            out[f"{f}final_layer_norm.{kind}"] = sd[f"{h}output.LayerNorm.{kind}"]
    for kind in ("weight", "bias"):
        out[f"{head}dense.{kind}"] = sd[f"lm_head.dense.{kind}"]
        out[f"{head}layer_norm.{kind}"] = sd[f"lm_head.layer_norm.{kind}"]
    out[head + "weight"] = sd[e + "word_embeddings.weight"]
    out[head + "bias"] = sd["lm_head.bias"]
    out[p + "version"] = torch.tensor([2.0])  # fairseq bookkeeping keys are ignored
    return out


FAIRSEQ_ARGS = dict(arch="roberta_base", encoder_layers=3, encoder_embed_dim=28, encoder_ffn_embed_dim=52,
                    encoder_attention_heads=4, activation_fn="gelu", encoder_normalize_before=False,
                    max_positions=128)


@pytest.fixture(scope="module")
def tiny():
    m = random_hf()
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    ids, mask = batch(TINY["vocab_size"], np.random.default_rng(0))
    hidden, logits = torch_outputs(m, ids, mask)
    return dict(model=m, sd=sd, ids=ids, mask=mask, hidden=hidden, logits=logits)


@pytest.fixture(scope="module")
def hf_dir(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    tiny["model"].save_pretrained(d)
    return d


def test_hf_safetensors_parity(tiny, hf_dir):
    enc = load_encoder(hf_dir)
    assert enc.config.num_layers == 3 and enc.config.hidden_size == 28 and enc.config.num_heads == 4
    assert enc.metadata["source_format"] == "huggingface"
    hidden = enc.hidden_states(tiny["ids"], tiny["mask"])
    assert hidden.shape == (4, 3, 11, 28)
    assert_close_on_tokens(hidden, tiny["hidden"], tiny["mask"], 1e-4)
    assert_close_on_tokens(enc.mlm_logits(tiny["ids"], tiny["mask"]), tiny["logits"], tiny["mask"], 1e-4)


def test_hf_bin_parity_and_usable_inside_user_jit(tiny, tmp_path):
    # transformers v5 always writes safetensors; older HF dirs hold a torch.save'd state dict.
    tiny["model"].save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(tiny["model"].state_dict(), tmp_path / "pytorch_model.bin")
    enc = load_encoder(tmp_path)
    cfg = enc.config

    @jax.jit
    def user_fn(params, ids, mask):
        return M.hidden_states(params, ids, mask, cfg=cfg)[-1], M.mlm_logits(params, ids, mask, cfg=cfg)

    last, logits = user_fn(enc.params, tiny["ids"], tiny["mask"])
    assert_close_on_tokens(last, tiny["hidden"][-1], tiny["mask"], 1e-4)
    assert_close_on_tokens(logits, tiny["logits"], tiny["mask"], 1e-4)


def _save_sharded_bin(model, path, max_bytes=20_000):
    """An HF directory with torch.save'd weight shards and `pytorch_model.bin.index.json`, as older
    transformers wrote with `safe_serialization=False` (v5 can only write safetensors)."""
    model.config.save_pretrained(path)
    shards, cur, size = [], {}, 0
    for k, v in model.state_dict().items():
        nbytes = v.numel() * v.element_size()
        if cur and size + nbytes > max_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k], size = v.clone(), size + nbytes
    shards.append(cur)
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"pytorch_model-{i:05d}-of-{len(shards):05d}.bin"
        torch.save(shard, path / name)
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    (path / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_hf_sharded_checkpoint_parity(tiny, hf_dir, tmp_path, fmt):
    if fmt == "safetensors":
        tiny["model"].save_pretrained(tmp_path, max_shard_size="20KB")
        index, pattern = tmp_path / "model.safetensors.index.json", "model-*.safetensors"
    else:
        _save_sharded_bin(tiny["model"], tmp_path)
        index, pattern = tmp_path / "pytorch_model.bin.index.json", "pytorch_model-*.bin"
    shards = sorted(tmp_path.glob(pattern))
    assert index.exists() and len(shards) >= 3, shards
    assert not (tmp_path / "model.safetensors").exists() and not (tmp_path / "pytorch_model.bin").exists()
    assert set(json.loads(index.read_text())["weight_map"].values()) == {f.name for f in shards}
    enc = load_encoder(tmp_path)
    assert enc.metadata["source_format"] == "huggingface"
    assert enc.config == load_encoder(hf_dir).config
    jax.tree.map(np.testing.assert_array_equal, enc.params, load_encoder(hf_dir).params)
    assert_close_on_tokens(enc.hidden_states(tiny["ids"], tiny["mask"]), tiny["hidden"], tiny["mask"], 1e-4)
    assert_close_on_tokens(enc.mlm_logits(tiny["ids"], tiny["mask"]), tiny["logits"], tiny["mask"], 1e-4)


def test_encoder_methods_reject_inputs_the_tables_cannot_index_and_keep_params_on_device(hf_dir):
    enc = load_encoder(hf_dir)  # max_seq_len 128 (130 positions), vocab 211
    ok = np.ones((1, 128), np.int32)
    assert np.isfinite(enc.hidden_states(ok * 5, ok)).all()
    with pytest.raises(ValueError, match="sequence length 129 exceeds the model's max_seq_len 128"):
        enc.hidden_states(np.ones((1, 129), np.int32), np.ones((1, 129), np.int32))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 211\), got \[0, 300\]"):
        enc.mlm_logits(np.array([[0, 300]]), np.ones((1, 2), np.int32))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        enc.hidden_states(np.ones((3,), np.int32), np.ones((3,), np.int32))
    # Loaders return numpy; the methods put the weights on the device once, not on every call.
    assert isinstance(jax.tree.leaves(enc.params)[0], np.ndarray)
    on = enc.device_params()
    assert enc.device_params() is on and all(isinstance(a, jax.Array) for a in jax.tree.leaves(on))
    # Replicated over a mesh (feature extraction), also once per mesh.
    from xlmr_dynamics import sharding as S

    placed = enc.device_params(S.make_mesh())
    assert enc.device_params(S.make_mesh()) is placed and placed is not on
    assert all(a.sharding.is_fully_replicated and a.sharding.mesh == S.make_mesh()
               for a in jax.tree.leaves(placed))
    moved = enc.placed(S.make_mesh())  # what a sweep holds: the same arrays, no second copy
    same = lambda tree: all(a is b for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(placed)))  # noqa: E731
    assert moved.params is placed and same(moved.device_params(S.make_mesh()))
    # On one device for the single-device paths (alignment, BPC): a local replica, not a copy.
    local = jax.tree.leaves(moved.device_params())
    assert all(len(a.devices()) == 1 and a.unsafe_buffer_pointer() == b.addressable_data(0).unsafe_buffer_pointer()
               for a, b in zip(local, jax.tree.leaves(placed)))
    np.testing.assert_array_equal(moved.hidden_states(ok * 5, ok), enc.hidden_states(ok * 5, ok))


def test_converted_dir_with_a_bad_config_is_named(hf_dir, tmp_path):
    dst = convert_checkpoint(hf_dir, tmp_path / "converted")
    info = json.loads((dst / "config.json").read_text())
    info["config"]["rope_theta"] = 1e4
    (dst / "config.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"config.json: bad model config .*rope_theta"):
        load_encoder(dst)
    (dst / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"config.json"):
        load_encoder(dst)


def test_overwrite_killed_while_writing_params_does_not_look_complete(hf_dir, tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    from xlmr_dynamics.convert import save_converted

    enc = load_encoder(hf_dir)
    dst = save_converted(tmp_path / "c", enc.config, enc.params)
    assert (dst / "config.json").exists()

    def killed(self, *a, **kw):
        raise KeyboardInterrupt("killed while writing params")

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save_converted(dst, enc.config, enc.params)
    assert not (dst / "config.json").exists()  # not complete: a resume rewrites it
    with pytest.raises(CheckpointError):
        load_encoder(dst)


def test_base_config_parity():
    """The real XLM-R Base shape (12 x 768, vocab 250,002), every parameter random, short padded batch."""
    m = random_hf(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, max_position_embeddings=514, seed=1, scale=0.05)
    ids, mask = batch(250002, np.random.default_rng(1), b=2, t=9)
    hidden, logits = torch_outputs(m, ids, mask)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    del m
    enc = from_state_dict(sd, fmt="hf", hparams=dict(num_heads=12))
    assert enc.config == M.XLMRConfig()
    assert_close_on_tokens(enc.hidden_states(ids, mask), hidden, mask, 1e-4)
    assert_close_on_tokens(enc.mlm_logits(ids, mask), logits, mask, 1e-4)


def _save_fairseq(path, tiny, *, legacy=False, fused=False, config="args"):
    state = {"model": hf_to_fairseq(tiny["sd"], legacy=legacy, fused=fused),
             "optimizer_history": [{"num_updates": 5000}], "extra_state": {"epoch": 1}}
    if config == "args":
        state["args"] = argparse.Namespace(**FAIRSEQ_ARGS)
    elif config == "cfg_dict":
        state["args"], state["cfg"] = None, {"model": dict(FAIRSEQ_ARGS), "task": {"_name": "masked_lm"}}
    elif config == "cfg_omegaconf":
        from omegaconf import OmegaConf

        state["args"] = None
        state["cfg"] = OmegaConf.create({"model": dict(FAIRSEQ_ARGS), "task": {"_name": "masked_lm"}})
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize(
    "variant",
    [
        dict(),
        dict(legacy=True),  # decoder.* prefix, emb_layer_norm, legacy (pre-1.6) torch file format
        dict(fused=True),  # self_attn.in_proj_weight/bias
        dict(config="cfg_dict"),
        dict(config="cfg_omegaconf"),
        dict(config=None),  # no hyperparameters at all: architecture from shapes
    ],
    ids=["modern-args", "legacy", "fused-in-proj", "cfg-dict", "cfg-omegaconf", "no-config"],
)
def test_fairseq_variants_load_to_same_weights_and_outputs(tiny, hf_dir, tmp_path, variant):
    path = _save_fairseq(tmp_path / "model.pt", tiny, **variant)
    heads = 4 if variant.get("config", "args") is None else None
    enc = load_encoder(tmp_path, num_heads=heads)  # directory holding model.pt
    ref = load_encoder(hf_dir)
    assert enc.config == ref.config
    assert enc.metadata["source_format"] == "fairseq" and enc.metadata["step"] == 5000
    jax.tree.map(np.testing.assert_array_equal, enc.params, ref.params)
    assert_close_on_tokens(load_encoder(path, num_heads=heads).mlm_logits(tiny["ids"], tiny["mask"]),
                           tiny["logits"], tiny["mask"], 1e-4)


def test_fairseq_without_config_defaults_to_64_dim_heads(tiny, tmp_path):
    path = _save_fairseq(tmp_path / "model.pt", tiny, config=None)
    assert load_encoder(path).config.num_heads == 1  # 28 // 64 -> at least one head; pass num_heads


def test_loading_needs_neither_fairseq_nor_omegaconf(tiny, tmp_path):
    path = _save_fairseq(tmp_path / "model.pt", tiny, config="cfg_omegaconf")
    code = (
        "import sys; sys.modules['omegaconf'] = None; sys.modules['fairseq'] = None; sys.modules['torch'] = None\n"
        "from xlmr_dynamics import load_encoder\n"
        f"enc = load_encoder({str(path)!r})\n"
        "print(enc.config.num_layers, enc.config.num_heads)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "4"]


def test_convert_round_trip_is_bitwise(tiny, hf_dir, tmp_path):
    dst = convert_checkpoint(hf_dir, tmp_path / "converted")
    info = json.loads((dst / "config.json").read_text())
    assert info["config"]["num_layers"] == 3
    a, b = load_encoder(hf_dir), load_encoder(dst)
    assert b.config == a.config
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    np.testing.assert_array_equal(a.hidden_states(tiny["ids"], tiny["mask"]), b.hidden_states(tiny["ids"], tiny["mask"]))


def test_cli_convert(tiny, hf_dir, tmp_path):
    from xlmr_dynamics.cli import main

    main(["convert", str(hf_dir), str(tmp_path / "out")])
    enc = load_encoder(tmp_path / "out")
    assert_close_on_tokens(enc.mlm_logits(tiny["ids"], tiny["mask"]), tiny["logits"], tiny["mask"], 1e-4)


def test_bfloat16_within_documented_tolerance(tiny, hf_dir):
    enc = load_encoder(hf_dir, dtype="bfloat16")
    assert enc.config.dtype == "bfloat16"
    hidden = enc.hidden_states(tiny["ids"], tiny["mask"])
    assert hidden.dtype == np.float32  # outputs are float32 whatever the compute dtype
    assert_close_on_tokens(hidden, tiny["hidden"], tiny["mask"], BF16_TOL)
    diff = np.abs(np.asarray(hidden) - tiny["hidden"])[..., tiny["mask"].astype(bool), :].max()
    assert diff > 0  # really computed in bf16


_TENSOR = re.compile(r"tensor<((?:\d+x)*)([a-z]+\d*)>")


def _hlo_ops(text, op):
    """[(operand types, result types)] of every `stablehlo.<op>` in a StableHLO module, each type a
    (shape, element type) pair, read from the op's trailing `: (operands) -> results` signature."""
    def parse(sig):
        return [(tuple(int(d) for d in dims.split("x") if d), et) for dims, et in _TENSOR.findall(sig)]

    out = []
    for line in text.splitlines():
        if re.search(rf"\bstablehlo\.{op}[ (]", line):
            ins, _, res = line.rsplit(" : ", 1)[1].partition("->")
            out.append((parse(ins), parse(res) or parse(ins)))  # elementwise ops print one type
    return out


def test_bfloat16_program_uses_f32_accumulation_layernorm_and_softmax(hf_dir):
    """The README's bf16 claim, checked on the lowered program (the tolerance test alone is also
    passed by a pure-bf16 model): every matmul takes bf16 operands and returns float32, and the
    LayerNorm mean/variance/rsqrt and the softmax max/exp/sum all run in float32."""
    enc = load_encoder(hf_dir, dtype="bfloat16")
    cfg, b, t = enc.config, 2, 7
    d, h = cfg.hidden_size, cfg.num_heads
    ids = np.full((b, t), 5, np.int32)
    for fn, n_dots, n_ln in ((M.hidden_states, 8, 3), (M.mlm_logits, 10, 4)):
        # Layers are scanned, so one layer body (8 matmuls, 2 LayerNorms) appears in the program,
        # plus the embedding LayerNorm and, for logits, the head's dense + LayerNorm + decoder.
        text = fn.lower(enc.params, ids, ids, cfg=cfg).as_text()
        dots = _hlo_ops(text, "dot_general")
        assert len(dots) >= n_dots, (fn.__name__, len(dots))
        for ins, res in dots:
            assert [et for _, et in ins] == ["bf16", "bf16"], (fn.__name__, "matmul not in bf16", ins)
            assert [et for _, et in res] == ["f32"], (fn.__name__, "matmul without f32 accumulation", ins, res)
        reduces = _hlo_ops(text, "reduce")
        float_reduces = [ins[0] for ins, _ in reduces if ins[0][1].startswith(("f", "bf"))]
        assert all(et == "f32" for _, et in float_reduces), (fn.__name__, float_reduces)
        # LayerNorm: mean and variance are reductions of [B, T, D] float32 over D.
        ln_stats = [s for s, et in float_reduces if s == (b, t, d)]
        assert len(ln_stats) >= 2 * n_ln, (fn.__name__, float_reduces)
        rsqrt = _hlo_ops(text, "rsqrt")
        assert len(rsqrt) >= n_ln and all(res == [((b, t, 1), "f32")] for _, res in rsqrt), (fn.__name__, rsqrt)
        # Softmax over keys: max and sum reductions of [B, H, T, T] scores and the exp, in float32.
        assert sum(s == (b, h, t, t) for s, _ in float_reduces) >= 2, (fn.__name__, float_reduces)
        exps = [res for _, res in _hlo_ops(text, "exponential")]
        assert exps and all(et == "f32" for r in exps for _, et in r), (fn.__name__, exps)
        assert [((b, h, t, t), "f32")] in exps, (fn.__name__, exps)


def test_model_without_mlm_head(tmp_path, tiny):
    m = random_hf(cls=XLMRobertaModel)
    m.save_pretrained(tmp_path)
    enc = load_encoder(tmp_path)
    ids, mask = tiny["ids"], tiny["mask"]
    hidden, _ = torch_outputs(m, ids, mask)
    assert_close_on_tokens(enc.hidden_states(ids, mask), hidden, mask, 1e-4)
    with pytest.raises(ValueError, match="no MLM head"):
        enc.mlm_logits(ids, mask)


# ----------------------------------------------------------------------------- bad input ----


def _fairseq_with(tiny, path, edit):
    sd = hf_to_fairseq(tiny["sd"])
    edit(sd)
    torch.save({"model": sd, "args": argparse.Namespace(**FAIRSEQ_ARGS)}, path)
    return path


def test_missing_key_is_named(tiny, tmp_path):
    path = _fairseq_with(tiny, tmp_path / "m.pt", lambda sd: sd.pop("encoder.sentence_encoder.layers.1.fc2.bias"))
    with pytest.raises(CheckpointError, match=r"m\.pt.*missing keys.*L1\.fc2\.bias"):
        load_encoder(path)


def test_unexpected_key_is_named(tiny, tmp_path):
    def add(sd):
        sd["encoder.sentence_encoder.layers.0.adapter.weight"] = torch.zeros(2, 2)

    with pytest.raises(CheckpointError, match=r"unexpected keys.*layers\.0\.adapter\.weight"):
        load_encoder(_fairseq_with(tiny, tmp_path / "m.pt", add))


def test_wrong_shape_is_named(tiny, tmp_path):
    def bad(sd):
        sd["encoder.sentence_encoder.layers.2.fc1.weight"] = torch.zeros(52, 27)

    with pytest.raises(CheckpointError, match=r"m\.pt.*shape mismatch.*intermediate"):
        load_encoder(_fairseq_with(tiny, tmp_path / "m.pt", bad))


def test_hparams_disagreeing_with_tensors(tiny, tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"model": hf_to_fairseq(tiny["sd"]), "args": argparse.Namespace(**{**FAIRSEQ_ARGS, "encoder_layers": 6})}, path)
    with pytest.raises(CheckpointError, match="num_layers=6"):
        load_encoder(path)


def test_unsupported_architecture_rejected(tiny, tmp_path):
    path = tmp_path / "m.pt"
    args = argparse.Namespace(**{**FAIRSEQ_ARGS, "encoder_normalize_before": True})
    torch.save({"model": hf_to_fairseq(tiny["sd"]), "args": args}, path)
    with pytest.raises(CheckpointError, match="encoder_normalize_before"):
        load_encoder(path)


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_file_is_named(tiny, tmp_path, legacy):
    path = _save_fairseq(tmp_path / "model.pt", tiny, legacy=legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.pt"):
        load_encoder(path)


def test_corrupt_safetensors_is_named(tiny, hf_dir, tmp_path):
    import shutil

    d = tmp_path / "hf"
    shutil.copytree(hf_dir, d)
    f = d / "model.safetensors"
    f.write_bytes(b"\x00garbage" + f.read_bytes()[100:])
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_encoder(d)


def test_vocab_mismatch(tiny, hf_dir, tmp_path):
    class Tok:
        vocab_size = 500

    with pytest.raises(VocabMismatchError, match="211.*500"):
        load_encoder(hf_dir, tokenizer=Tok())
    _save_fairseq(tmp_path / "model.pt", tiny)
    (tmp_path / "dict.txt").write_text("".join(f"w{i} 1\n" for i in range(100)))
    with pytest.raises(VocabMismatchError, match="dict.txt"):
        load_encoder(tmp_path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_encoder(tmp_path)
    with pytest.raises(CheckpointError, match="no such file"):
        load_encoder(tmp_path / "missing.pt")
