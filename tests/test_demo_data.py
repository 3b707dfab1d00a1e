"""Shipped demo data: present, small, licensed, no non-commercial data, parseable, consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xlmr_dynamics import demo_data

ROOT = demo_data.root()
MAX_TOTAL_BYTES = 3_800_000
MAX_FILE_BYTES = 1_000_000
NC_PATTERN = re.compile(r"NonCommercial|BY-NC|by-nc", re.IGNORECASE)


def _files():
    return [p for p in ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def test_total_and_file_sizes_are_small():
    files = _files()
    total = sum(p.stat().st_size for p in files)
    assert total <= MAX_TOTAL_BYTES, f"demo data is {total} bytes"
    big = [(p, p.stat().st_size) for p in files if p.stat().st_size > MAX_FILE_BYTES]
    assert not big, big


def test_every_text_language_has_train_and_heldout_without_overlap():
    train = demo_data.load_text("train")
    held = demo_data.load_text("heldout")
    assert set(train) == set(held) == set(demo_data.TEXT_LANGUAGES)
    assert len(demo_data.TEXT_LANGUAGES) >= 12
    for lang in demo_data.TEXT_LANGUAGES:
        assert len(held[lang]) == 100, lang
        assert len(train[lang]) >= 800, lang
        assert not set(train[lang]) & set(held[lang]), f"{lang}: train/held-out overlap"
    # Several scripts really are present (catches a build that picked the English sides by mistake).
    assert re.search(r"[\u0600-\u06FF]", held["ar"][0])
    assert re.search(r"[\u0400-\u04FF]", held["ru"][0])
    assert re.search(r"[\u4E00-\u9FFF]", "".join(held["zh"]))
    assert re.search(r"[\uAC00-\uD7AF]", "".join(held["ko"]))
    assert re.search(r"[\u0900-\u097F]", "".join(held["hi"]))


def test_text_is_the_deterministic_tatoeba_split(shared_data: Path):
    src = shared_data / "text" / "tatoeba" / "tatoeba.fra-eng.fra"
    lines = [ln.strip() for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert demo_data.load_text("heldout", ("fr",))["fr"] == lines[-100:]
    assert demo_data.load_text("train", ("fr",))["fr"] == [ln for ln in lines[:-100] if ln not in set(lines[-100:])]


def test_licences_present_for_every_source_and_no_nc_data():
    lic = ROOT / "LICENSES"
    for name in ("TATOEBA.txt", "ALIGNMENT.txt", "CC-BY-SA-4.0.txt"):
        assert (lic / name).stat().st_size > 200, name
    assert "CC BY 2.0 FR" in (lic / "TATOEBA.txt").read_text()
    assert "Attribution-ShareAlike 4.0" in (lic / "CC-BY-SA-4.0.txt").read_text()
    ud_dirs = sorted(p for p in (ROOT / "ud").iterdir() if p.is_dir())
    assert {p.name for p in ud_dirs} == set(demo_data.UD_TREEBANKS.values())
    for d in ud_dirs:
        text = (d / "LICENSE.txt").read_text()
        assert "ShareAlike 4.0" in text or "by-sa/4.0" in text, d
        assert not NC_PATTERN.search(text), f"{d}: non-commercial licence"
    # Non-commercial data only where its licence allows redistribution and says so: the XNLI subset
    # (CC BY-NC 4.0 permits non-commercial sharing with attribution), with its licence file. None of
    # the NC treebanks (the demo does not need them).
    xnli_lic = (ROOT / "xnli" / "LICENSE.txt").read_text()
    assert "CC BY-NC 4.0" in xnli_lic and "NON-COMMERCIAL" in xnli_lic and "Conneau" in xnli_lic
    names = " ".join(str(p.relative_to(ROOT)).lower() for p in _files() if "xnli" not in p.parts)
    for banned in ("xnli", "turkish-imst", "tr_imst", "greek-gdt", "el_gdt", "bulgarian-btb", "bg_btb",
                   "urdu-udtb", "ur_udtb"):
        assert banned not in names, f"{banned!r} found in demo_data outside xnli/"
    for f in (ROOT / "xnli").glob("*.tsv"):
        assert len(f.read_text(encoding="utf-8").splitlines()) == 400, f
    readme = (ROOT / "README.md").read_text()
    for word in ("CC BY 2.0 FR", "CC BY-SA 4.0", "XNLI", "Tatoeba", "awesome-align"):
        assert word in readme, word


def _parse_conllu(path: Path):
    """(tokens, upos, heads) per sentence, via the data helper's loader when present."""
    try:
        from xlmr_dynamics.data import load_ud
    except ImportError:
        load_ud = None
    if load_ud is not None:
        sents = load_ud(path)
        return [(list(s.tokens), list(s.upos), [int(h) for h in s.head]) for s in sents]
    import conllu

    out = []
    for sent in conllu.parse(path.read_text(encoding="utf-8")):
        words = sent.filter(id=lambda i: isinstance(i, int))
        out.append(([w["form"] for w in words], [w["upos"] for w in words], [int(w["head"]) for w in words]))
    return out


@pytest.mark.parametrize("lang", sorted(demo_data.UD_TREEBANKS))
def test_ud_files_parse_into_trees(lang):
    splits = ("train", "dev", "test") if lang == "en" else ("train", "test")
    seen_ids = set()
    for split in splits:
        path = demo_data.ud_file(lang, split)
        sents = _parse_conllu(path)
        assert len(sents) == path.read_text(encoding="utf-8").count("# sent_id") >= 60
        for tokens, upos, heads in sents:
            assert len(tokens) == len(upos) == len(heads) > 0
            assert all(0 <= h <= len(tokens) for h in heads)
            assert heads.count(0) >= 1
        ids = set(re.findall(r"^# sent_id = (.+)$", path.read_text(encoding="utf-8"), flags=re.M))
        assert not ids & seen_ids, f"{path}: sentences shared with another split"
        seen_ids |= ids


@pytest.mark.parametrize("pair", demo_data.ALIGNMENT_PAIRS)
def test_alignment_gold_matches_sentences(pair):
    d = demo_data.alignment_dir(pair)
    xx = pair.split("-")[1]
    en = (d / "en.txt").read_text(encoding="utf-8").splitlines()
    tgt = (d / f"{xx}.txt").read_text(encoding="utf-8").splitlines()
    gold = (d / f"gold.{pair}.txt").read_text(encoding="utf-8").splitlines()
    assert len(en) == len(tgt) == len(gold) == {"en-fr": 447, "en-ro": 248}[pair]
    links = 0
    for e, t, g in zip(en, tgt, gold):
        ne, nt = len(e.split()), len(t.split())
        for link in g.split():
            i, j = map(int, re.split(r"[-p]", link))
            assert 0 <= i < ne and 0 <= j < nt, (pair, link)
            links += 1
    assert links > 1000


def test_unknown_names_raise_clear_errors():
    with pytest.raises(demo_data.DemoDataError, match="xx"):
        demo_data.text_path("xx")
    with pytest.raises(demo_data.DemoDataError, match="ja"):
        demo_data.ud_dir("ja")
    with pytest.raises(ValueError, match="en-de"):
        demo_data.alignment_dir("en-de")
