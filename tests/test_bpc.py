"""Tests for xlmr_dynamics.bpc: character counting, parity with a per-position HF torch computation on
the same random weights, the uniform-output known answer, and the sampled scheme."""

import math
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from xlmr_dynamics import bpc as B
from xlmr_dynamics.convert import from_state_dict
from xlmr_dynamics.tokenizer import load_tokenizer, train_sentencepiece

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TATOEBA = DATA / "text" / "tatoeba"


def _lines(code, n):
    return (TATOEBA / f"tatoeba.{code}-eng.{code}").read_text(encoding="utf-8").splitlines()[:n]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    text = _lines("fra", 300) + _lines("deu", 300) + (TATOEBA / "tatoeba.fra-eng.eng").read_text().splitlines()[:300]
    return load_tokenizer(train_sentencepiece(text, tmp_path_factory.mktemp("spm"), 300))


@pytest.fixture(scope="module")
def models(tok):
    cfg = XLMRobertaConfig(vocab_size=tok.vocab_size, hidden_size=28, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=52, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                           eos_token_id=2, type_vocab_size=1, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    m = XLMRobertaForMaskedLM(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "token_type" in name:
                p.zero_()
            elif name.endswith("LayerNorm.weight") or name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    sd = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    return m, from_state_dict(sd, fmt="hf", hparams=dict(num_heads=4))


def test_piece_chars_cover_normalised_text(tok):
    lines = _lines("fra", 50) + ["  deux   espaces ", "x"]
    for line in lines:
        ids = tok.encode(line)
        if tok.unk_id in ids:
            continue
        chars = B.piece_chars([tok.id_to_piece(i) for i in ids])
        assert chars.sum() == len(tok.decode(ids)), line
    assert B.piece_chars(["\u2581ab", "c", "\u2581d"]).tolist() == [2, 1, 2]
    assert B.piece_chars(["<unk>", "\u2581a"]).tolist() == [1, 2]
    # With the text: a run of unknown characters is one <unk> that covers all of them.
    assert B.piece_chars(["\u2581", "<unk>", "\u2581a"], text="漢字漢字 a").tolist() == [0, 4, 2]
    assert B.piece_chars(["\u2581a", "<unk>", "<unk>", "b"], text="a 漢字  字 b").tolist() == [1, 3, 3, 1]
    np.testing.assert_allclose(B.piece_chars(["\u2581x", "..."], text="x…"), [0.5, 1.5])  # NFKC: 2 chars, in proportion
    for line in lines + ["漢字漢字漢字漢字", "Je suis là…", "a  b"]:
        ids = tok.encode(line)
        got = B.piece_chars([tok.id_to_piece(i) for i in ids], text=line)
        assert got.sum() == pytest.approx(len(" ".join(line.split()))), line


def torch_bpc(m, tok, lines):
    bits, chars = 0.0, 0
    for line in lines:
        ids = tok.encode(line)
        if not ids:
            continue
        chars += len(" ".join(line.split()))  # every subword is scored: all the characters
        base = [tok.bos_id] + ids + [tok.eos_id]
        for p in range(1, len(base) - 1):
            x = torch.tensor([base])
            x[0, p] = tok.mask_id
            with torch.no_grad():
                logits = m(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, p].double()
            bits -= torch.log_softmax(logits, -1)[base[p]].item() / math.log(2)
    return bits / chars


def test_bpc_matches_torch_per_position(tok, models):
    m, enc = models
    lines = {"fr": _lines("fra", 6) + [""], "de": _lines("deu", 5)}
    rows = B.bpc_rows(enc, tok, lines, tokens_per_batch=256, max_len=128)
    assert [r["eval_lang"] for r in rows] == ["fr", "de"]
    for r in rows:
        ref = torch_bpc(m, tok, [x for x in lines[r["eval_lang"]] if x])
        assert r["value"] == pytest.approx(ref, abs=1e-4)
        assert r["task"] == "bpc" and r["metric"] == "bpc" and r["layer"] == enc.config.num_layers
    fr = rows[0]
    assert fr["extra"]["skipped_empty"] == 1 and fr["extra"]["sentences"] == 6
    assert fr["n"] == sum(len(tok.encode(x)) for x in lines["fr"])
    # the full-logits path (model.mlm_logits) gives the same numbers
    full = B.bpc_rows(enc, tok, {"de": lines["de"]}, tokens_per_batch=256, max_len=128, full_logits=True)
    assert full[0]["value"] == pytest.approx(rows[1]["value"], abs=1e-5)


def test_uniform_output_gives_log2v(tok, models):
    _, enc = models
    params = jax.tree.map(np.array, enc.params)
    ln = params["lm_head"]["layer_norm"]
    ln["scale"][:] = 0.0
    ln["bias"][:] = 0.0
    params["lm_head"]["bias"][:] = 0.0  # logits == 0 everywhere -> p = 1 / V
    enc0 = type(enc)(enc.config, params, enc.metadata)
    lines = _lines("deu", 10)
    (row,) = B.bpc_rows(enc0, tok, {"de": lines}, tokens_per_batch=512)
    expect = math.log2(enc.config.vocab_size) * row["n"] / row["extra"]["chars"]
    assert row["value"] == pytest.approx(expect, rel=1e-5)
    # long lines are cut into chunks: every subword still scored once
    (short,) = B.bpc_rows(enc0, tok, {"de": lines}, tokens_per_batch=512, max_len=6)
    assert short["n"] == row["n"] and short["extra"]["chars"] == row["extra"]["chars"]
    assert row["extra"]["chars"] == sum(len(" ".join(x.split())) for x in lines if x.strip())
    assert short["value"] == pytest.approx(expect, rel=1e-5)


def test_sample_scheme_seeded(tok, models):
    _, enc = models
    lines = {"fr": _lines("fra", 20)}
    a = B.bpc_rows(enc, tok, lines, scheme="sample", seed=3, tokens_per_batch=256)[0]
    b = B.bpc_rows(enc, tok, lines, scheme="sample", seed=3, tokens_per_batch=256)[0]
    c = B.bpc_rows(enc, tok, lines, scheme="sample", seed=4, tokens_per_batch=256)[0]
    total = sum(len(tok.encode(x)) for x in lines["fr"])
    assert a["value"] == b["value"] and a["value"] != c["value"]
    assert 0.1 * total < a["n"] < 0.25 * total
    assert a["extra"]["chars"] < sum(len(tok.decode(tok.encode(x))) for x in lines["fr"])
    rows, _ = B.masked_copies(tok, lines["fr"][:3], scheme="sample", seed=3)
    for ids, pos, gold, _ in rows:
        assert (ids[pos] == tok.mask_id).all() and len(set(pos.tolist())) == pos.size


def test_bad_input(tok, models):
    _, enc = models
    with pytest.raises(B.BPCError, match="zz: no usable line"):
        B.bpc_rows(enc, tok, {"zz": ["", ""]})
    with pytest.raises(B.BPCError, match="scheme"):
        B.bpc_rows(enc, tok, {"fr": ["a"]}, scheme="every")
    with pytest.raises(B.BPCError, match="line 2"):
        B.masked_copies(tok, ["ok", None], lang="fr")
