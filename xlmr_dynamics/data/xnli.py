"""XNLI / MultiNLI loaders: XTREME-style per-language TSVs, the original XNLI/MultiNLI files, TFDS.

Owns: `NLIExample`, `XNLI_LABELS`, `load_xnli`, `xnli_available`. Labels are indices into
`XNLI_LABELS` (entailment, neutral, contradiction; "contradictory" is read as contradiction).

Layouts read by `load_xnli(source, lang, split)`:
- a directory with `<split>-<lang>.tsv` (premise, hypothesis, label; no header), as in XTREME and the
  project's shared data (`dev-en.tsv`, `test-fr.tsv`, `train-en.tsv`);
- the original XNLI 1.0 `xnli.<split>.tsv` (header with language, gold_label, sentence1, sentence2);
- MultiNLI / GLUE train files for English (`multinli_1.0_train.txt`, `train.tsv`: header with
  sentence1, sentence2 and gold_label or label);
- `tfds:xnli` through `tfds.data_source` (ArrayRecord, no TensorFlow).
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from xlmr_dynamics.data.ud import DataError

XNLI_LABELS = ("entailment", "neutral", "contradiction")
_LABEL_ID = {"entailment": 0, "neutral": 1, "contradiction": 2, "contradictory": 2}
_SPLIT_ALIASES = {"dev": ("dev", "validation"), "validation": ("dev", "validation"), "test": ("test",),
                  "train": ("train",)}


@dataclasses.dataclass(frozen=True)
class NLIExample:
    premise: str
    hypothesis: str
    label: int  # index into XNLI_LABELS


def _label(text: str, where: str) -> int:
    key = text.strip().lower()
    if key not in _LABEL_ID:
        raise DataError(f"{where}: unknown NLI label {text!r} (expected one of {XNLI_LABELS})")
    return _LABEL_ID[key]


def _read_plain(path: Path) -> list[NLIExample]:
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != 3:
                raise DataError(f"{path}:{lineno}: expected premise<TAB>hypothesis<TAB>label, found {len(cols)} columns")
            out.append(NLIExample(cols[0], cols[1], _label(cols[2], f"{path}:{lineno}")))
    if not out:
        raise DataError(f"{path}: empty file")
    return out


def _read_header_tsv(path: Path, lang: str | None) -> list[NLIExample]:
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        cols = reader.fieldnames or []
        label_col = "gold_label" if "gold_label" in cols else "label"
        for k in ("sentence1", "sentence2", label_col):
            if k not in cols:
                raise DataError(f"{path}:1: header lacks column {k!r} (has {cols})")
        for lineno, row in enumerate(reader, 2):
            if lang is not None and "language" in row and row["language"] != lang:
                continue
            if row[label_col] in ("-", ""):  # MultiNLI pairs without a gold label
                continue
            out.append(NLIExample(row["sentence1"], row["sentence2"], _label(row[label_col], f"{path}:{lineno}")))
    return out


def _plain_file(root: Path, lang: str, split: str) -> Path | None:
    for s in _SPLIT_ALIASES.get(split, (split,)):
        p = root / f"{s}-{lang}.tsv"
        if p.exists():
            return p
    return None


def xnli_available(source, lang: str, split: str) -> bool:
    root = Path(source)
    if _plain_file(root, lang, split) is not None:
        return True
    return any((root / f"xnli.{s}.tsv").exists() for s in _SPLIT_ALIASES.get(split, (split,)))


def load_xnli(source, lang: str, split: str, *, data_dir: str | None = None) -> list[NLIExample]:
    """Examples of one language and split (see the module docstring for the layouts)."""
    if isinstance(source, str) and source.startswith("tfds:"):
        return _load_tfds(source[5:], lang, split, data_dir)
    root = Path(source)
    if root.is_file():
        return _read_header_tsv(root, lang if root.name.startswith("xnli.") else None)
    p = _plain_file(root, lang, split)
    if p is not None:
        return _read_plain(p)
    for s in _SPLIT_ALIASES.get(split, (split,)):
        if (root / f"xnli.{s}.tsv").exists():
            return _read_header_tsv(root / f"xnli.{s}.tsv", lang)
    if lang == "en" and split == "train":
        for name in ("multinli_1.0_train.txt", "train.tsv"):
            if (root / name).exists():
                return _read_header_tsv(root / name, None)
    raise DataError(f"{root}: no XNLI data for lang={lang!r} split={split!r} "
                    f"(looked for {split}-{lang}.tsv, xnli.{split}.tsv, MultiNLI train files)")


def _load_tfds(name: str, lang: str, split: str, data_dir) -> list[NLIExample]:
    import tensorflow_datasets as tfds

    tsplit = {"dev": "validation"}.get(split, split)
    ds = tfds.data_source(name, split=tsplit, data_dir=data_dir)
    out = []
    for ex in ds:
        prem = ex["premise"]
        hyp = ex["hypothesis"]
        p = prem[lang] if isinstance(prem, dict) else prem
        if isinstance(hyp, dict) and "language" in hyp:
            langs = [x.decode() if isinstance(x, bytes) else x for x in hyp["language"]]
            h = hyp["translation"][langs.index(lang)]
        else:
            h = hyp
        dec = (lambda x: x.decode("utf-8") if isinstance(x, bytes) else str(x))
        out.append(NLIExample(dec(p), dec(h), int(ex["label"])))
    return out
