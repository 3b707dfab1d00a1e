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
`source` may also name one such file (`dev-en.tsv`-style names are read without a header).
`xnli_available` uses the same lookup as `load_xnli`. Rows lacking a needed field raise `DataError`
naming file:line; lines end at "\n" only (`lines.read_lines`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from xlmr_dynamics.data.lines import DataError, read_lines
from xlmr_dynamics.data.tfds_source import is_tfds, open_split, tfds_name, tfds_split

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
    for lineno, line in enumerate(read_lines(path), 1):
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
    """A TSV with a header row (fields split on tabs only, no quoting); `lang` filters on `language`."""
    lines = read_lines(path)
    cols = lines[0].split("\t") if lines else []
    label_col = "gold_label" if "gold_label" in cols else "label"
    for k in ("sentence1", "sentence2", label_col):
        if k not in cols:
            raise DataError(f"{path}:1: header lacks column {k!r} (has {cols})")
    need = {k: cols.index(k) for k in ("sentence1", "sentence2", label_col)}
    lang_at = cols.index("language") if lang is not None and "language" in cols else None
    if lang_at is not None:
        need["language"] = lang_at
    width = max(need.values()) + 1
    out = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line:
            continue
        row = line.split("\t")
        if len(row) < width:
            missing = [k for k, i in need.items() if i >= len(row)]
            raise DataError(f"{path}:{lineno}: {len(row)} fields, missing {', '.join(missing)} "
                            f"(header has {len(cols)} columns)")
        if lang_at is not None and row[lang_at] != lang:
            continue
        label = row[need[label_col]]
        if label in ("-", ""):  # MultiNLI pairs without a gold label
            continue
        out.append(NLIExample(row[need["sentence1"]], row[need["sentence2"]], _label(label, f"{path}:{lineno}")))
    return out


_PLAIN_NAME = re.compile(r"^(train|dev|validation|test)-[A-Za-z_-]+\.tsv$")


def _find_xnli(source, lang: str, split: str) -> tuple[Path, str | None, bool] | None:
    """The one lookup behind `load_xnli` and `xnli_available`: (file, language filter, has header) or None."""
    root = Path(source)
    if root.is_file():
        if _PLAIN_NAME.match(root.name):
            return root, None, False
        return root, (lang if root.name.startswith("xnli.") else None), True
    aliases = _SPLIT_ALIASES.get(split, (split,))
    for s in aliases:
        if (root / f"{s}-{lang}.tsv").is_file():
            return root / f"{s}-{lang}.tsv", None, False
    for s in aliases:
        if (root / f"xnli.{s}.tsv").is_file():
            return root / f"xnli.{s}.tsv", lang, True
    if lang == "en" and split == "train":
        for name in ("multinli_1.0_train.txt", "train.tsv"):
            if (root / name).is_file():
                return root / name, None, True
    return None


def xnli_available(source, lang: str, split: str, *, data_dir=None) -> bool:
    """Whether `load_xnli(source, lang, split)` finds a file (same lookup; a TFDS source: whether
    its prepared dataset has the split; raises `DataError` if it is unknown or not prepared)."""
    if is_tfds(source):
        return tfds_split(tfds_name(source), split, data_dir) is not None
    return _find_xnli(source, lang, split) is not None


def load_xnli(source, lang: str, split: str, *, data_dir: str | None = None) -> list[NLIExample]:
    """Examples of one language and split (see the module docstring for the layouts)."""
    if is_tfds(source):
        return _load_tfds(tfds_name(source), lang, split, data_dir)
    found = _find_xnli(source, lang, split)
    if found is None:
        raise DataError(f"{source}: no XNLI data for lang={lang!r} split={split!r} "
                        f"(looked for {split}-{lang}.tsv, xnli.{split}.tsv, MultiNLI train files)")
    path, lang_filter, header = found
    return _read_header_tsv(path, lang_filter) if header else _read_plain(path)


def _load_tfds(name: str, lang: str, split: str, data_dir) -> list[NLIExample]:
    tsplit, ds = open_split(name, split, data_dir)
    out = []
    for k, ex in enumerate(ds):
        prem = ex["premise"]
        hyp = ex["hypothesis"]
        if isinstance(prem, dict) and lang not in prem:
            raise DataError(f"tfds:{name}/{tsplit} example {k}: no premise in {lang!r} "
                            f"(has {sorted(prem)})")
        p = prem[lang] if isinstance(prem, dict) else prem
        if isinstance(hyp, dict) and "language" in hyp:
            langs = [x.decode() if isinstance(x, bytes) else x for x in hyp["language"]]
            if lang not in langs:
                raise DataError(f"tfds:{name}/{tsplit} example {k}: no hypothesis in {lang!r}")
            h = hyp["translation"][langs.index(lang)]
        else:
            h = hyp
        dec = (lambda x: x.decode("utf-8") if isinstance(x, bytes) else str(x))
        out.append(NLIExample(dec(p), dec(h), int(ex["label"])))
    return out
