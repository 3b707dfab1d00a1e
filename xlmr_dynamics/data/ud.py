"""Universal Dependencies: a validating CoNLL-U reader, treebank lookup, and TFDS sources.

Owns: `Sentence`, `UPOS_TAGS`, `DEPRELS`, `load_ud`, `find_ud_file`, `find_and_load_ud`, `ud_available`,
`tfds_ud_name` (`DataError` is defined in `lines.py` and re-exported here).

Words are the integer-id lines: multiword-token ranges (`2-3`) and empty nodes (`4.1`) are dropped;
heads refer to integer ids, so they stay consistent. Validation (strict: raise `DataError` naming
file:line; lenient: skip the sentence and count the reason in `.skipped`): wrong column count,
non-integer or out-of-sequence ids, head out of range or not an integer, unknown UPOS, unknown
relation, empty file. Nothing is dropped silently. IDs and heads are ASCII digits only. Files may
start with a byte-order mark; lines end at "\n" only (see `lines.py`).

Sources: a `.conllu` file; a treebank directory + split; a release tree + `treebank=`; or a TFDS
name `tfds:<name>/<config>` read with `tfds.data_source` from ArrayRecord files (no TensorFlow):
see `tfds_ud.py`.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import numpy as np

from xlmr_dynamics.data.languages import DEFAULT_TREEBANKS
from xlmr_dynamics.data.lines import DataError, read_lines
from xlmr_dynamics.data.tfds_source import is_tfds, tfds_name, tfds_split

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
             "PUNCT", "SCONJ", "SYM", "VERB", "X")
DEPRELS = ("acl", "advcl", "advmod", "amod", "appos", "aux", "case", "cc", "ccomp", "clf", "compound", "conj",
           "cop", "csubj", "dep", "det", "discourse", "dislocated", "expl", "fixed", "flat", "goeswith", "iobj",
           "list", "mark", "nmod", "nsubj", "nummod", "obj", "obl", "orphan", "parataxis", "punct", "reparandum",
           "root", "vocative", "xcomp")
_UPOS_ID = {t: i for i, t in enumerate(UPOS_TAGS)}
_DEPREL_ID = {t: i for i, t in enumerate(DEPRELS)}


def _is_int(s: str) -> bool:
    """A non-negative integer in ASCII digits (`str.isdigit` also accepts '²', which `int` rejects)."""
    return s.isascii() and s.isdigit()


@dataclasses.dataclass
class Sentence:
    """One UD sentence (syntactic words only).

    Attributes:
      tokens: word forms.
      upos: int32 [n], index into UPOS_TAGS.
      head: int32 [n], 0 = root, else the 1-based index of the head word.
      deprel: int32 [n], index into DEPRELS of the universal relation (subtype stripped).
      deprel_full: relation labels as written, subtypes kept (`nmod:poss`), or stripped when the
        loader's `strip_subtypes=True`.
      lang: language code; sent_id: the `# sent_id` comment (or file:line).
    """

    tokens: list[str]
    upos: np.ndarray
    head: np.ndarray
    deprel: np.ndarray
    deprel_full: list[str]
    lang: str = ""
    sent_id: str = ""

    def __len__(self) -> int:
        return len(self.tokens)


class SentenceList(list):
    """A list of Sentences that also reports what was skipped (lenient mode): `.skipped` (reason ->
    count), `.source`."""

    def __init__(self, items=(), *, source: str = "", skipped=None):
        super().__init__(items)
        self.source = source
        self.skipped: collections.Counter = collections.Counter(skipped or {})


def _lang_from_path(path: Path) -> str:
    return path.name.split("_", 1)[0] if "_" in path.name else ""


def _parse_block(lines, path: Path, strip_subtypes: bool, lang: str):
    """Parse one sentence block [(lineno, text)]; raise DataError(file:line) on the first problem."""
    tokens, upos, head, deprel, full = [], [], [], [], []
    sent_id = ""
    head_lines = []
    for lineno, line in lines:
        if line.startswith("#"):
            if line.startswith("# sent_id"):
                sent_id = line.split("=", 1)[-1].strip()
            continue
        cols = line.split("\t")
        where = f"{path}:{lineno}"
        if len(cols) != 10:
            raise DataError(f"{where}: expected 10 tab-separated columns, found {len(cols)}")
        tid = cols[0]
        if "-" in tid or "." in tid:
            a, _, b = tid.replace(".", "-").partition("-")
            if not (_is_int(a) and _is_int(b)):
                raise DataError(f"{where}: non-integer id {tid!r}")
            continue  # multiword-token range or empty node
        if not _is_int(tid):
            raise DataError(f"{where}: non-integer id {tid!r}")
        if int(tid) != len(tokens) + 1:
            raise DataError(f"{where}: id {tid} out of sequence (expected {len(tokens) + 1})")
        if cols[3] not in _UPOS_ID:
            raise DataError(f"{where}: unknown UPOS {cols[3]!r}")
        if not _is_int(cols[6]):
            raise DataError(f"{where}: head {cols[6]!r} is not an integer")
        rel = cols[7]
        base = rel.split(":", 1)[0]
        if base not in _DEPREL_ID:
            raise DataError(f"{where}: unknown dependency relation {rel!r}")
        tokens.append(cols[1])
        upos.append(_UPOS_ID[cols[3]])
        head.append(int(cols[6]))
        head_lines.append(lineno)
        deprel.append(_DEPREL_ID[base])
        full.append(base if strip_subtypes else rel)
    n = len(tokens)
    if n == 0:
        raise DataError(f"{path}:{lines[0][0]}: sentence without words")
    for h, lineno in zip(head, head_lines):
        if h > n:
            raise DataError(f"{path}:{lineno}: head {h} out of range (sentence has {n} words)")
    return Sentence(tokens, np.asarray(upos, np.int32), np.asarray(head, np.int32), np.asarray(deprel, np.int32),
                    full, lang, sent_id or f"{path.name}:{lines[0][0]}")


def read_conllu(path: str | Path, *, strict: bool = True, strip_subtypes: bool = True, lang: str | None = None
                ) -> SentenceList:
    """Read and validate one CoNLL-U file (see module docstring)."""
    path = Path(path)
    lines = read_lines(path)
    lang = lang if lang is not None else _lang_from_path(path)
    out = SentenceList(source=str(path))
    block: list[tuple[int, str]] = []

    def flush():
        if not block:
            return
        if all(line.startswith("#") for _, line in block):
            block.clear()
            return
        try:
            out.append(_parse_block(block, path, strip_subtypes, lang))
        except DataError as e:
            if strict:
                raise
            reason = str(e).split(": ", 1)[-1].split(" ")[0:3]
            out.skipped[" ".join(reason)] += 1
        block.clear()

    for lineno, line in enumerate(lines, 1):
        if line.strip():
            block.append((lineno, line))
        else:
            flush()
    flush()
    if not out and not out.skipped:
        raise DataError(f"{path}: empty file (no sentences)")
    return out


def _split_file(tb_dir: Path, split: str, lang: str | None = None) -> Path | None:
    pattern = f"{lang}_*-ud-{split}.conllu" if lang else f"*-ud-{split}.conllu"
    found = sorted(tb_dir.glob(pattern))
    return found[0] if found else None


def find_ud_file(root: str | Path, lang: str, split: str, *, treebank: str | None = None) -> Path | None:
    """The `.conllu` file of `lang`'s treebank and split under a UD release tree, or None.

    With `treebank`, looks in `root/treebank` only (None if that directory or split is absent; no
    fallback to another treebank). Else the registry default, else any
    `UD_*/<lang>_*-ud-<split>.conllu` (sorted, first), one level deep only.
    """
    root = Path(root)
    if treebank:
        return _split_file(root / treebank, split) if (root / treebank).is_dir() else None
    tb = DEFAULT_TREEBANKS.get(lang)
    if tb and (root / tb).is_dir():
        f = _split_file(root / tb, split)
        if f is not None:
            return f
    found = sorted(root.glob(f"UD_*/{lang}_*-ud-{split}.conllu"))
    return found[0] if found else None


def load_ud(source, split: str | None = None, *, treebank: str | None = None, strict: bool = True,
            strip_subtypes: bool = True, lang: str | None = None, data_dir: str | None = None) -> SentenceList:
    """Load UD sentences.

    Args:
      source: a `.conllu` file; a treebank directory (then `split` is required); a release tree root
        with `treebank=`; or `"tfds:<name>/<config>"` (e.g. `tfds:universal_dependencies/en_ewt` or
        the package-local builder, see `tfds_ud`), read from ArrayRecord with `data_dir`.
      split: "train", "dev" or "test" (TFDS: "train", "dev"/"validation", "test").
      strict: raise on the first malformed sentence (file:line); else skip and count in `.skipped`.
      strip_subtypes: `deprel_full` without subtypes (`nmod:poss` -> `nmod`).
    """
    if is_tfds(source):
        from xlmr_dynamics.data.tfds_ud import load_tfds_ud

        return load_tfds_ud(tfds_name(source), split or "train", data_dir=data_dir, strip_subtypes=strip_subtypes,
                            lang=lang)
    path = Path(source)
    if treebank:
        path = path / treebank
    if path.is_dir():
        if split is None:
            raise DataError(f"{path}: a treebank directory needs split=train/dev/test")
        f = _split_file(path, split)
        if f is None:
            raise DataError(f"{path}: no *-ud-{split}.conllu file")
        path = f
    elif not path.exists():
        raise DataError(f"{path}: no such file or directory")
    return read_conllu(path, strict=strict, strip_subtypes=strip_subtypes, lang=lang)


def tfds_ud_name(base: str, lang: str, treebank: str | None = None) -> str:
    """The TFDS dataset holding `lang`'s treebank under the TFDS UD source `tfds:<base>`.

    `treebank` (`ud.treebanks[lang]`) is a config of `base` (`en_gum` -> `<base>/en_gum`) or a whole
    name with a "/" (`local_ud/ud`). Without it: `base` itself if it names a config already, else the
    registry default treebank's config as the stock `universal_dependencies` names it
    (`UD_English-EWT` -> `<base>/en_ewt`).
    """
    if treebank:
        return treebank if "/" in treebank else f"{base}/{treebank}"
    if "/" in base:
        return base
    tb = DEFAULT_TREEBANKS.get(lang)
    if tb is None:
        raise DataError(f"tfds:{base}: no default treebank for {lang!r}; set ud.treebanks.{lang} "
                        f"to a config of {base}")
    return f"{base}/{lang}_{tb.split('-', 1)[1].lower()}"


def ud_available(root, lang: str, split: str, *, treebank: str | None = None, data_dir=None) -> bool:
    """Whether `find_and_load_ud(root, lang, split, ...)` finds the split (same lookup).

    Raises:
        DataError: a `tfds:` root whose dataset is unknown or not prepared.
    """
    if is_tfds(root):
        return tfds_split(tfds_ud_name(tfds_name(root), lang, treebank), split, data_dir) is not None
    return find_ud_file(root, lang, split, treebank=treebank) is not None


def find_and_load_ud(root, lang: str, split: str, *, treebank: str | None = None, strict: bool = True,
                     strip_subtypes: bool = True, data_dir=None) -> SentenceList | None:
    """`lang`'s sentences of `split`, or None if that split does not exist.

    `root` is a UD release tree (`find_ud_file`) or a TFDS UD source `tfds:<name>` (`tfds_ud_name`,
    read from `data_dir`).
    """
    if is_tfds(root):
        name = tfds_ud_name(tfds_name(root), lang, treebank)
        tsplit = tfds_split(name, split, data_dir)
        if tsplit is None:
            return None
        return load_ud(f"tfds:{name}", tsplit, data_dir=data_dir, strip_subtypes=strip_subtypes, lang=lang)
    f = find_ud_file(root, lang, split, treebank=treebank)
    if f is None:
        return None
    return read_conllu(f, strict=strict, strip_subtypes=strip_subtypes, lang=lang)
