"""Raw text for bits-per-character: one sentence per line, per language.

Owns: `load_text` (blank lines skipped and counted in `.skipped_blank`), `find_text_file`. Lines end at
"\n" only, a leading byte-order mark is dropped (`lines.read_lines`).
"""

from __future__ import annotations

from pathlib import Path

from xlmr_dynamics.data.languages import ISO3
from xlmr_dynamics.data.lines import DataError, read_lines


class TextLines(list):
    """Lines of a text file, with `.skipped_blank` and `.source`."""

    def __init__(self, items=(), *, source: str = "", skipped_blank: int = 0):
        super().__init__(items)
        self.source, self.skipped_blank = source, skipped_blank


def load_text(path: str | Path) -> TextLines:
    path = Path(path)
    raw = read_lines(path)
    lines = [ln.strip() for ln in raw]
    kept = [ln for ln in lines if ln]
    if not kept:
        raise DataError(f"{path}: no non-empty lines")
    return TextLines(kept, source=str(path), skipped_blank=len(lines) - len(kept))


def find_text_file(root: str | Path, lang: str, pattern: str = "tatoeba.{iso3}-eng.{iso3}",
                   files: dict | None = None) -> Path | None:
    """`root / pattern` with {lang} and {iso3} filled in (a `files[lang]` entry overrides)."""
    root = Path(root)
    name = (files or {}).get(lang) or pattern.format(lang=lang, iso3=ISO3.get(lang, lang))
    p = root / name
    return p if p.exists() else None
