"""Line reading shared by every reader of the data layer, and `DataError`.

Owns: `DataError`, `split_lines`, `read_lines`. Files are UTF-8 with an optional byte-order mark;
lines end at "\\n" only (one trailing "\\r" is dropped, so CRLF files read like LF files). Unlike
`str.splitlines`, U+0085, U+2028, U+2029, form feed and \\x1c-\\x1e inside a line (a word form, a
comment) stay where they are, so line numbers match what an editor or `sed -n` shows.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Malformed or missing data; the message names the file and line (or key)."""


def split_lines(text: str) -> list[str]:
    """`text` cut at "\\n" only, one trailing "\\r" per line removed; a final newline ends the last line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 (optionally BOM-prefixed) file; DataError naming the file if unreadable."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # newline="": no "\r" translation
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e})") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    return split_lines(text)
