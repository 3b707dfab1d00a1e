"""Gold word alignments: tokenized parallel text plus sure/possible links, 0-based, English first.

Owns: `AlignmentSet`, `load_alignment` (the 0-based `i-j`/`ipj` layout of SimAlign/awesome-align:
`en.txt`, `<xx>.txt`, `gold.en-<xx>.txt`), and readers for the original 1-based formats: talp/lilt
(`i-j`/`ipj` per line, `read_talp`), WPT/Mihalcea (`sent i j [S|P] [confidence]` lines, `read_wpt`;
NULL links, index 0 of the 1-based file, are dropped) and `src ||| tgt` text files (`read_pipe_text`).
`possible` always includes `sure` (AER convention). Links past a sentence end or below 0, non-integer
indices and mismatched line counts raise `DataError` naming file and line. Lines end at "\n" only
(`lines.read_lines`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from xlmr_dynamics.data.lines import DataError, read_lines

_LINK = re.compile(r"^(\d+)([-p])(\d+)$")


@dataclasses.dataclass
class AlignmentSet:
    src: list[list[str]]
    tgt: list[list[str]]
    sure: list[set[tuple[int, int]]]
    possible: list[set[tuple[int, int]]]
    lang: str = ""

    def __len__(self) -> int:
        return len(self.src)

    def subset(self, n: int) -> "AlignmentSet":
        return AlignmentSet(self.src[:n], self.tgt[:n], self.sure[:n], self.possible[:n], self.lang)


def _read_tokens(path: Path) -> list[list[str]]:
    return [line.split() for line in read_lines(path)]


def read_talp(path: str | Path, *, one_based: bool = True, swap: bool = False):
    """Per-line links `i-j` (sure) / `ipj` (possible); returns (sure, possible) lists of sets."""
    path = Path(path)
    sure, poss = [], []
    off = 1 if one_based else 0
    for lineno, line in enumerate(read_lines(path), 1):
        s, p = set(), set()
        for tok in line.split():
            m = _LINK.match(tok)
            if not m:
                raise DataError(f"{path}:{lineno}: bad link {tok!r} (expected i-j or ipj)")
            i, j = int(m.group(1)) - off, int(m.group(3)) - off
            if i < 0 or j < 0:
                raise DataError(f"{path}:{lineno}: link {tok!r} below the first index")
            link = (j, i) if swap else (i, j)
            (s if m.group(2) == "-" else p).add(link)
        sure.append(s)
        poss.append(p | s)
    return sure, poss


def read_wpt(path: str | Path, sentence_ids: list[str], *, one_based: bool = True, swap: bool = False):
    """`sent i j [S|P] [confidence]` lines (WPT / Mareček); sentence_ids gives the id of each text line.

    A missing S/P means S; a confidence must be a number and is otherwise ignored. With `one_based`,
    index 0 is WPT's NULL word: links to it are dropped.
    """
    path = Path(path)
    index = {sid: k for k, sid in enumerate(sentence_ids)}
    sure = [set() for _ in sentence_ids]
    poss = [set() for _ in sentence_ids]
    off = 1 if one_based else 0
    for lineno, line in enumerate(read_lines(path), 1):
        cols = line.split()
        if not cols:
            continue
        where = f"{path}:{lineno}"
        if not 3 <= len(cols) <= 5 or cols[0] not in index:
            raise DataError(f"{where}: expected 'sent i j [S|P] [confidence]' with a known sentence id")
        rest = cols[3:]
        kind = rest.pop(0) if rest and rest[0] in ("S", "P") else "S"
        try:
            i, j = int(cols[1]), int(cols[2])
            if len(rest) > 1:
                raise ValueError
            for conf in rest:
                float(conf)
        except ValueError:
            raise DataError(f"{where}: expected 'sent i j [S|P] [confidence]' with integer i, j, "
                            f"found {line.strip()!r}") from None
        if i < 0 or j < 0:
            raise DataError(f"{where}: negative word index in {line.strip()!r}")
        if one_based and (i == 0 or j == 0):
            continue  # a link to the NULL word
        link = (j - off, i - off) if swap else (i - off, j - off)
        (sure[index[cols[0]]] if kind == "S" else poss[index[cols[0]]]).add(link)
    return sure, [p | s for s, p in zip(sure, poss)]


def read_pipe_text(path: str | Path, *, swap: bool = False):
    """`src ||| tgt` lines -> (src tokens, tgt tokens)."""
    src, tgt = [], []
    for lineno, line in enumerate(read_lines(path), 1):
        if "|||" not in line:
            raise DataError(f"{path}:{lineno}: expected 'src ||| tgt'")
        a, b = line.split("|||", 1)
        src.append(a.split())
        tgt.append(b.split())
    return (tgt, src) if swap else (src, tgt)


def validate_alignment(gold: AlignmentSet, where: str) -> AlignmentSet:
    if not (len(gold.src) == len(gold.tgt) == len(gold.sure) == len(gold.possible)):
        raise DataError(f"{where}: line counts differ (src {len(gold.src)}, tgt {len(gold.tgt)}, "
                        f"gold {len(gold.sure)})")
    for k, (s, t, links) in enumerate(zip(gold.src, gold.tgt, gold.possible)):
        for i, j in links:
            if i < 0 or j < 0:
                raise DataError(f"{where}: line {k + 1}: link {i}-{j} has a negative index")
            if i >= len(s) or j >= len(t):
                raise DataError(f"{where}: line {k + 1}: link {i}-{j} points past the sentence "
                                f"({len(s)} source, {len(t)} target words)")
    return gold


def load_alignment(dir_or_files, *, lang: str | None = None) -> AlignmentSet:
    """Load a gold set.

    Args:
      dir_or_files: a directory `en-<xx>/` holding `en.txt`, `<xx>.txt`, `gold.en-<xx>.txt` (0-based),
        or a tuple `(src_file, tgt_file, gold_file)` in that layout.
      lang: target language code (default: from the directory name).
    """
    if isinstance(dir_or_files, (tuple, list)):
        src_f, tgt_f, gold_f = (Path(x) for x in dir_or_files)
        lang = lang or tgt_f.stem
    else:
        d = Path(dir_or_files)
        if not d.is_dir():
            raise DataError(f"{d}: no such alignment directory")
        pair = d.name
        xx = lang or (pair.split("-", 1)[1] if "-" in pair else "")
        src_f, tgt_f, gold_f = d / "en.txt", d / f"{xx}.txt", d / f"gold.{pair}.txt"
        lang = xx
        for f in (src_f, tgt_f, gold_f):
            if not f.exists():
                raise DataError(f"{d}: missing {f.name}")
    sure, poss = read_talp(gold_f, one_based=False)
    gold = AlignmentSet(_read_tokens(src_f), _read_tokens(tgt_f), sure, poss, lang)
    return validate_alignment(gold, str(gold_f))
