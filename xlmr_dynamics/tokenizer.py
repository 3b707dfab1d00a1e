"""XLM-R tokenizers in the fairseq id layout, and training a SentencePiece model in that layout.

Owns: `XLMRTokenizer` (a SentencePiece model + optional fairseq `dict.txt`), `HFTokenizer` (an HF
tokenizer directory behind the same interface), `load_tokenizer(path)` and `train_sentencepiece`.

fairseq/XLM-R layout: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, then the pieces, then `<mask>`. XLM-R's
SentencePiece model numbers `<unk>`=0, `<s>`=1, `</s>`=2 and pieces from 3, so without a dict.txt a
piece's id is its SentencePiece id + 1 (HF's `fairseq_offset`); with a dict.txt, ids follow the
dict's order (4 + line index), exactly as fairseq's Dictionary does, and pieces missing from it are
`<unk>`. `<mask>` = last id; `vocab_size` = mask_id + 1 (250,002 for XLM-R).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import sentencepiece as spm

BOS, PAD, EOS, UNK = 0, 1, 2, 3
SPM_FILE = "sentencepiece.bpe.model"


class TokenizerError(ValueError):
    """A tokenizer file is missing or unusable; the message names it."""


class XLMRTokenizer:
    """SentencePiece + fairseq dictionary. See the module docstring for the id layout."""

    bos_id, pad_id, eos_id, unk_id = BOS, PAD, EOS, UNK

    def __init__(self, model_file: str | Path, dict_file: str | Path | None = None):
        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(str(self.model_file))
        except (OSError, RuntimeError) as e:
            raise TokenizerError(f"{model_file}: not a SentencePiece model ({e})") from e
        n_sp = self.sp.GetPieceSize()
        self.dict_file = Path(dict_file) if dict_file else None
        if self.dict_file is not None:
            symbols = []
            for lineno, line in enumerate(self.dict_file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                sym = line.rsplit(" ", 1)[0] if " " in line else line
                symbols.append(sym)
            self._piece_to_id = {s: 4 + i for i, s in enumerate(symbols)}
            self._id_to_piece = ["<s>", "<pad>", "</s>", "<unk>"] + symbols
            # fairseq id of each spm id (vectorised encode): unknown pieces -> <unk>
            self._sp_to_id = np.array([self._piece_to_id.get(self.sp.IdToPiece(i), UNK) for i in range(n_sp)],
                                      np.int32)
        else:
            self._id_to_piece = ["<s>", "<pad>", "</s>", "<unk>"] + [self.sp.IdToPiece(i) for i in range(3, n_sp)]
            self._sp_to_id = np.arange(n_sp, dtype=np.int32) + 1
            self._piece_to_id = None
        self._sp_to_id[0] = UNK  # spm <unk>
        self.mask_id = len(self._id_to_piece)
        self.vocab_size = self.mask_id + 1

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without `<s>`/`</s>`."""
        return self._sp_to_id[np.asarray(self.sp.EncodeAsIds(text), np.int64)].tolist() if text else []

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self._sp_to_id[np.asarray(ids, np.int64)].tolist() for ids in self.sp.Encode(texts)]

    def tokenize(self, text: str) -> list[str]:
        return [self.id_to_piece(i) for i in self.encode(text)]

    def id_to_piece(self, i: int) -> str:
        if i == self.mask_id:
            return "<mask>"
        return self._id_to_piece[i]

    def piece_to_id(self, piece: str) -> int | None:
        """Id of a vocabulary piece, or None if it is not one."""
        if self._piece_to_id is not None:
            return self._piece_to_id.get(piece)
        i = self.sp.PieceToId(piece)
        return None if i == self.sp.unk_id() and piece != self.sp.IdToPiece(i) else int(self._sp_to_id[i])

    def decode(self, ids) -> str:
        pieces = [self.id_to_piece(int(i)) for i in ids if int(i) not in (BOS, PAD, EOS) and int(i) != self.mask_id]
        return self.sp.DecodePieces([p if p != "<unk>" else " \u2047 " for p in pieces])

    def __repr__(self):
        return f"XLMRTokenizer({self.model_file.name}, vocab_size={self.vocab_size})"


class HFTokenizer:
    """An HF tokenizer directory (tokenizer.json or sentencepiece.bpe.model) behind the same interface."""

    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        try:
            self.hf = AutoTokenizer.from_pretrained(str(path))
        except Exception as e:  # transformers raises many types for broken dirs
            raise TokenizerError(f"{path}: cannot load HF tokenizer ({type(e).__name__}: {e})") from e
        self.bos_id, self.pad_id = self.hf.bos_token_id, self.hf.pad_token_id
        self.eos_id, self.unk_id = self.hf.eos_token_id, self.hf.unk_token_id
        self.mask_id = self.hf.mask_token_id
        self.vocab_size = len(self.hf)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text, add_special_tokens=False)["input_ids"]) if text else []

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(x) for x in self.hf(texts, add_special_tokens=False)["input_ids"]]

    def tokenize(self, text: str) -> list[str]:
        return self.hf.convert_ids_to_tokens(self.encode(text))

    def id_to_piece(self, i: int) -> str:
        return self.hf.convert_ids_to_tokens(int(i))

    def piece_to_id(self, piece: str) -> int | None:
        """Id of a vocabulary piece, or None if it is not one."""
        return self.hf.get_vocab().get(piece)

    def decode(self, ids) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)


def load_tokenizer(path: str | Path):
    """A SentencePiece model file, a directory holding `sentencepiece.bpe.model` (+ `dict.txt`), or an
    HF tokenizer directory (`tokenizer.json`)."""
    path = Path(path)
    if path.is_file():
        d = path.parent / "dict.txt"
        return XLMRTokenizer(path, d if d.exists() else None)
    if path.is_dir():
        if (path / SPM_FILE).exists() and not (path / "tokenizer.json").exists():
            d = path / "dict.txt"
            return XLMRTokenizer(path / SPM_FILE, d if d.exists() else None)
        if (path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists():
            return HFTokenizer(path)
        raise TokenizerError(f"{path}: no {SPM_FILE} or tokenizer.json")
    raise TokenizerError(f"{path}: no such tokenizer file or directory")


def train_sentencepiece(lines: Iterable[str], out_dir: str | Path, vocab_size: int, *, seed: int = 0,
                        character_coverage: float = 0.9995, max_lines: int = 2_000_000) -> Path:
    """Train a (unigram, like XLM-R's) SentencePiece model in XLM-R's layout; write `sentencepiece.bpe.model` + `dict.txt`.

    Deterministic for the same lines and seed (one training thread; lines are shuffled by `seed`).
    `vocab_size` counts SentencePiece pieces (the fairseq vocabulary adds `<pad>` and `<mask>`).

    Returns:
      Path of the model file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = [ln.strip() for ln in lines if ln and ln.strip()]
    if not data:
        raise TokenizerError("train_sentencepiece: no non-empty lines")
    order = np.random.default_rng(seed).permutation(len(data))[:max_lines]
    sample = [data[i] for i in order]
    # Many scripts + a small vocabulary: lower the character coverage until the alphabet fits
    # (SentencePiece's unigram trainer accepts no coverage below 0.98).
    coverages = [c for c in sorted({character_coverage, 0.995, 0.99, 0.98}, reverse=True)
                 if 0.98 <= c <= character_coverage]
    if not coverages:
        raise TokenizerError(f"train_sentencepiece: character_coverage must be in [0.98, 1], "
                             f"got {character_coverage}")
    first_error = None
    for coverage in coverages:
        try:
            spm.SentencePieceTrainer.Train(
                sentence_iterator=iter(sample),
                model_prefix=str(out / "sentencepiece.bpe"),
                vocab_size=vocab_size,
                model_type="unigram",  # XLM-R's "sentencepiece.bpe.model" is in fact a unigram model
                character_coverage=coverage,
                unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                hard_vocab_limit=False,
                num_threads=1,
                shuffle_input_sentence=False,
                minloglevel=2,
            )
            break
        except RuntimeError as e:
            first_error = first_error or e
            if "required_chars" not in str(e) or coverage == coverages[-1]:
                raise TokenizerError(f"train_sentencepiece: vocab_size={vocab_size} is too small for "
                                     f"these lines' characters even at character_coverage="
                                     f"{coverage}: {first_error}" if "required_chars" in str(e)
                                     else f"train_sentencepiece: {e}") from e
    sp = spm.SentencePieceProcessor()
    sp.Load(str(out / SPM_FILE))
    tmp = out / "dict.txt.tmp"
    tmp.write_text("".join(f"{sp.IdToPiece(i)} 1\n" for i in range(3, sp.GetPieceSize())), encoding="utf-8")
    tmp.replace(out / "dict.txt")
    return out / SPM_FILE
