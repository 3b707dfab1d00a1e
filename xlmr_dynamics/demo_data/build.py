"""Rebuild the shipped demo data from the team's shared data folder (maintainer tool, not runtime).

Owns: the exact, deterministic recipe behind every file in `xlmr_dynamics/demo_data/` (which
sentences, which languages, which splits). Run from the repo root:

    python -m xlmr_dynamics.demo_data.build --shared ../shared/data

It overwrites `text/`, `ud/`, `alignment/` and `LICENSES/CC-BY-SA-4.0.txt` in this folder and prints the sizes that
README.md quotes. Limits: needs the shared data layout of `shared/data/MANIFEST.md`; it copies whole
lines / whole CoNLL-U sentence blocks verbatim and never edits annotation.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ISO 639-1 code (used everywhere in the project) -> Tatoeba/LASER ISO 639-3 code.
TEXT_LANGS = {
    "ar": "ara", "bg": "bul", "de": "deu", "el": "ell", "en": "eng", "es": "spa", "fi": "fin",
    "fr": "fra", "hi": "hin", "ja": "jpn", "ko": "kor", "ro": "ron", "ru": "rus", "tr": "tur",
    "vi": "vie", "zh": "cmn",
}
HELDOUT_LINES = 100  # last lines of each language's file: the BPC held-out portion
EN_PAIRS = ("fra", "deu", "spa")  # English = eng sides of these pairs, in order, de-duplicated
EN_MAX_LINES = 2000

# treebank dir -> (lang, {demo split: (source split, first N sentences)}); all CC BY-SA 4.0.
UD = {
    "UD_English-EWT": ("en", {"train": ("train", 300), "dev": ("dev", 80), "test": ("test", 100)}),
    "UD_French-GSD": ("fr", {"train": ("dev", 80), "test": ("test", 80)}),
    "UD_German-GSD": ("de", {"train": ("dev", 80), "test": ("test", 80)}),
    "UD_Russian-GSD": ("ru", {"train": ("dev", 80), "test": ("test", 80)}),
    "UD_Chinese-GSDSimp": ("zh", {"train": ("dev", 60), "test": ("test", 60)}),
}
ALIGN_PAIRS = ("en-fr", "en-ro")


def _read_lines(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")


def build_text(shared: Path, out: Path) -> None:
    tat = shared / "text" / "tatoeba"
    for lang, code in sorted(TEXT_LANGS.items()):
        if lang == "en":
            seen, lines = set(), []
            for pair in EN_PAIRS:
                for ln in _read_lines(tat / f"tatoeba.{pair}-eng.eng"):
                    if ln not in seen:
                        seen.add(ln)
                        lines.append(ln)
            lines = lines[:EN_MAX_LINES]
        else:
            lines = _read_lines(tat / f"tatoeba.{code}-eng.{code}")
        heldout = lines[-HELDOUT_LINES:]
        held = set(heldout)
        train = [ln for ln in lines[:-HELDOUT_LINES] if ln not in held]  # no train/held-out overlap
        _write_lines(out / "text" / f"{lang}.train.txt", train)
        _write_lines(out / "text" / f"{lang}.heldout.txt", heldout)


def _first_sentences(path: Path, n: int) -> str:
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    if len(blocks) < n:
        raise ValueError(f"{path}: only {len(blocks)} sentences, wanted {n}")
    return "".join(b.strip("\n") + "\n\n" for b in blocks[:n])


def build_ud(shared: Path, out: Path) -> None:
    for tb, (lang, splits) in UD.items():
        src_dir = shared / "ud" / tb
        dst = out / "ud" / tb
        dst.mkdir(parents=True, exist_ok=True)
        prefix = next(src_dir.glob("*-ud-*.conllu")).name.split("-ud-")[0]
        for split, (src_split, n) in splits.items():
            text = _first_sentences(src_dir / f"{prefix}-ud-{src_split}.conllu", n)
            (dst / f"{prefix}-ud-{split}.conllu").write_text(text, encoding="utf-8")
        shutil.copyfile(src_dir / "LICENSE.txt", dst / "LICENSE.txt")


def build_alignment(shared: Path, out: Path) -> None:
    for pair in ALIGN_PAIRS:
        xx = pair.split("-")[1]
        dst = out / "alignment" / pair
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("en.txt", f"{xx}.txt", f"gold.{pair}.txt"):
            shutil.copyfile(shared / "alignment" / pair / name, dst / name)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=HERE.parents[2] / "shared" / "data")
    args = ap.parse_args(argv)
    for sub in ("text", "ud", "alignment"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    build_text(args.shared, HERE)
    build_ud(args.shared, HERE)
    build_alignment(args.shared, HERE)
    # Full CC BY-SA 4.0 legal code (EWT's LICENSE.txt is exactly that text); the other LICENSES/
    # files are hand-written notices kept in git.
    shutil.copyfile(args.shared / "ud" / "UD_English-EWT" / "LICENSE.txt", HERE / "LICENSES" / "CC-BY-SA-4.0.txt")
    total = 0
    for sub in ("text", "ud", "alignment", "LICENSES"):
        size = sum(p.stat().st_size for p in (HERE / sub).rglob("*") if p.is_file())
        total += size
        print(f"{sub:10s} {size / 1e3:8.1f} kB")
    print(f"{'total':10s} {total / 1e3:8.1f} kB")


if __name__ == "__main__":
    main()
