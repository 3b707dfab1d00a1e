"""Tokenizer: fairseq id layout, agreement with transformers, dict.txt order, HF dirs, errors."""

import random
import unicodedata

import pytest

from xlmr_dynamics.tokenizer import TokenizerError, load_tokenizer, train_sentencepiece


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory, shared_data):
    lines = []
    for f in sorted((shared_data / "text" / "tatoeba").glob("tatoeba.*-eng.*"))[:80]:
        lines += f.read_text(encoding="utf-8").splitlines()[:150]
    d = tmp_path_factory.mktemp("spm")
    train_sentencepiece(lines, d, 6000)
    return d, lines


def test_fairseq_layout(spm_dir):
    d, _ = spm_dir
    tok = load_tokenizer(d / "sentencepiece.bpe.model")
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.id_to_piece(4) == tok.sp.IdToPiece(3)  # first real piece: spm id 3 -> fairseq id 4
    assert tok.mask_id == tok.vocab_size - 1 == tok.sp.GetPieceSize() + 1
    assert tok.id_to_piece(tok.mask_id) == "<mask>"
    assert (d / "dict.txt").read_text().splitlines()[0] == f"{tok.sp.IdToPiece(3)} 1"


def test_agrees_with_transformers_and_round_trips(spm_dir):
    from transformers import XLMRobertaTokenizer

    d, lines = spm_dir
    tok = load_tokenizer(d)
    hf = XLMRobertaTokenizer.from_pretrained(str(d))
    assert len(hf) == tok.vocab_size and hf.mask_token_id == tok.mask_id
    for line in random.Random(0).sample(lines, 300):
        ids = tok.encode(line)
        assert [0, *ids, 2] == hf(line)["input_ids"], line
        if tok.unk_id not in ids:
            assert tok.decode(ids) == " ".join(unicodedata.normalize("NFKC", line).split())


def test_dict_txt_order_is_honoured(spm_dir, tmp_path):
    d, _ = spm_dir
    base = load_tokenizer(d / "sentencepiece.bpe.model")
    pieces = [ln.rsplit(" ", 1)[0] for ln in (d / "dict.txt").read_text(encoding="utf-8").splitlines()]
    (tmp_path / "sentencepiece.bpe.model").write_bytes((d / "sentencepiece.bpe.model").read_bytes())
    perm = list(reversed(pieces))[:-10]  # reversed, and the 10 first pieces missing
    (tmp_path / "dict.txt").write_text("".join(f"{p} 1\n" for p in perm), encoding="utf-8")
    tok = load_tokenizer(tmp_path)
    assert tok.vocab_size == 4 + len(perm) + 1
    assert tok.id_to_piece(4 + perm.index(pieces[100])) == pieces[100]
    text = "The cat sat on the mat. " + " ".join(p.replace("\u2581", "") for p in pieces[:10])
    want = [4 + perm.index(p) if p in perm else 3 for p in base.tokenize(text)]
    assert tok.encode(text) == want and 3 in want  # dict order, and pieces missing from it -> <unk>


def test_hf_directory_and_errors(spm_dir, tmp_path):
    from transformers import XLMRobertaTokenizer

    d, lines = spm_dir
    XLMRobertaTokenizer.from_pretrained(str(d)).save_pretrained(tmp_path / "hf")
    hf_tok, ours = load_tokenizer(tmp_path / "hf"), load_tokenizer(d)
    assert hf_tok.vocab_size == ours.vocab_size and hf_tok.mask_id == ours.mask_id
    for line in lines[:50]:
        assert hf_tok.encode(line) == ours.encode(line)
    with pytest.raises(TokenizerError, match="no such"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerError, match="no sentencepiece.bpe.model"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(TokenizerError, match="bad.model"):
        load_tokenizer(tmp_path / "bad.model")


def test_train_sentencepiece_says_when_the_vocabulary_is_too_small(tmp_path):
    rng = random.Random(0)
    lines = ["".join(chr(0x4E00 + rng.randrange(400)) for _ in range(12)) for _ in range(300)]
    with pytest.raises(TokenizerError, match=r"vocab_size=60 is too small .* character_coverage=0.98"):
        train_sentencepiece(lines, tmp_path, 60)
    with pytest.raises(TokenizerError, match=r"character_coverage must be in \[0.98, 1\]"):
        train_sentencepiece(lines, tmp_path, 60, character_coverage=0.9)
