"""Small multilingual demo data shipped inside the package (see README.md here for sources/licences).

Owns: the paths of the shipped files and tiny readers for the plain-text part. Everything is
resolved through `importlib.resources`, so it works from a source checkout and from an installed
wheel. Layout:

    text/<lang>.train.txt, text/<lang>.heldout.txt      Tatoeba sentences, one per line (CC BY 2.0 FR)
    ud/UD_<Lang>-<TB>/<tb>-ud-{train,dev,test}.conllu   UD subsets + LICENSE.txt (CC BY-SA 4.0)
    alignment/en-<xx>/{en.txt, <xx>.txt, gold.en-<xx>.txt}   WPT gold word alignments
    LICENSES/                                            licence texts and notices

Limits: no XNLI (CC BY-NC 4.0, cannot be shipped) and no non-commercial UD treebanks. UD "train"
for non-English treebanks is a slice of the official *dev* file (the train files are not available
to us); see README.md. Paths are real filesystem paths only when the package is installed
unzipped (the normal case); a zipped install raises a clear error.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

TEXT_LANGUAGES: tuple[str, ...] = (
    "ar", "bg", "de", "el", "en", "es", "fi", "fr", "hi", "ja", "ko", "ro", "ru", "tr", "vi", "zh",
)
TEXT_SPLITS: tuple[str, ...] = ("train", "heldout")
UD_TREEBANKS: dict[str, str] = {  # lang -> treebank folder under ud/
    "en": "UD_English-EWT",
    "fr": "UD_French-GSD",
    "de": "UD_German-GSD",
    "ru": "UD_Russian-GSD",
    "zh": "UD_Chinese-GSDSimp",
}
ALIGNMENT_PAIRS: tuple[str, ...] = ("en-fr", "en-ro")


class DemoDataError(ValueError):
    """A requested demo file does not exist (unknown language, split or pair)."""


def root() -> Path:
    """The demo_data directory as a filesystem path."""
    res = importlib.resources.files(__name__)
    path = Path(str(res))
    if not path.is_dir():
        raise DemoDataError(f"demo data at {res!r} is not a directory (zipped install?); reinstall unzipped")
    return path


ROOT: Path = Path(str(importlib.resources.files(__name__)))  # same as root(), without the check


def text_path(lang: str, split: str = "train") -> Path:
    """Path of `text/<lang>.<split>.txt` (split: "train" for pretraining, "heldout" for BPC)."""
    if lang not in TEXT_LANGUAGES or split not in TEXT_SPLITS:
        raise DemoDataError(
            f"no demo text for lang={lang!r} split={split!r}; languages {TEXT_LANGUAGES}, splits {TEXT_SPLITS}"
        )
    return root() / "text" / f"{lang}.{split}.txt"


def load_text(split: str = "train", langs: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """Sentences per language, in file order (blank lines dropped).

    Args:
      split: "train" or "heldout".
      langs: languages to read (default: all of TEXT_LANGUAGES).

    Returns:
      {lang: [sentence, ...]}, ready for `xlmr_dynamics.pretrain.pretrain(..., lines_by_lang=...)`.
    """
    out = {}
    for lang in langs or TEXT_LANGUAGES:
        text = text_path(lang, split).read_text(encoding="utf-8")
        out[lang] = [ln for ln in (s.strip() for s in text.splitlines()) if ln]
    return out


def ud_dir(lang: str) -> Path:
    """Folder holding the UD subset for `lang` (files `*-ud-{train,dev,test}.conllu` + LICENSE.txt)."""
    if lang not in UD_TREEBANKS:
        raise DemoDataError(f"no demo UD treebank for {lang!r}; have {sorted(UD_TREEBANKS)}")
    return root() / "ud" / UD_TREEBANKS[lang]


def ud_file(lang: str, split: str) -> Path:
    """Path of the UD subset file for `lang` and split "train", "dev" (English only) or "test"."""
    found = sorted(ud_dir(lang).glob(f"*-ud-{split}.conllu"))
    if len(found) != 1:
        raise DemoDataError(f"{ud_dir(lang)}: no demo UD file for split {split!r}")
    return found[0]


def alignment_dir(pair: str) -> Path:
    """Folder `alignment/<pair>` with en.txt, <xx>.txt and gold.<pair>.txt (0-based, `i-j`/`ipj`)."""
    if pair not in ALIGNMENT_PAIRS:
        raise DemoDataError(f"no demo alignment set {pair!r}; have {ALIGNMENT_PAIRS}")
    return root() / "alignment" / pair
