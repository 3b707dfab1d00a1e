"""Data layer on real shared data and hand-made fixtures: counts, validation, TFDS, spans, batching."""

import unicodedata

import jax
import numpy as np
import pytest

from xlmr_dynamics import data as D
from xlmr_dynamics.tokenizer import load_tokenizer, train_sentencepiece

# MANIFEST.md table: file -> (sentences, words)
MANIFEST = {
    "UD_English-EWT/en_ewt-ud-train.conllu": (7474, 120452), "UD_English-EWT/en_ewt-ud-dev.conllu": (2001, 25147),
    "UD_English-EWT/en_ewt-ud-test.conllu": (2077, 25094), "UD_German-GSD/de_gsd-ud-dev.conllu": (799, 12480),
    "UD_German-GSD/de_gsd-ud-test.conllu": (977, 16499), "UD_French-GSD/fr_gsd-ud-dev.conllu": (1476, 35721),
    "UD_French-GSD/fr_gsd-ud-test.conllu": (416, 10018), "UD_Spanish-GSD/es_gsd-ud-dev.conllu": (1400, 37154),
    "UD_Spanish-GSD/es_gsd-ud-test.conllu": (427, 12002), "UD_Russian-GSD/ru_gsd-ud-dev.conllu": (579, 11709),
    "UD_Russian-GSD/ru_gsd-ud-test.conllu": (601, 11385), "UD_Chinese-GSD/zh_gsd-ud-dev.conllu": (500, 12665),
    "UD_Chinese-GSD/zh_gsd-ud-test.conllu": (500, 12010),
    "UD_Chinese-GSDSimp/zh_gsdsimp-ud-dev.conllu": (500, 12663),
    "UD_Chinese-GSDSimp/zh_gsdsimp-ud-test.conllu": (500, 12012),
    "UD_Japanese-GSD/ja_gsd-ud-dev.conllu": (507, 12287), "UD_Japanese-GSD/ja_gsd-ud-test.conllu": (543, 13034),
    "UD_Arabic-PUD/ar_pud-ud-test.conllu": (1000, 20747), "UD_Hindi-PUD/hi_pud-ud-test.conllu": (1000, 23829),
    "UD_Finnish-TDT/fi_tdt-ud-dev.conllu": (1364, 18308), "UD_Finnish-TDT/fi_tdt-ud-test.conllu": (1555, 21070),
    "UD_Turkish-IMST/tr_imst-ud-train.conllu": (3435, 37522), "UD_Turkish-IMST/tr_imst-ud-dev.conllu": (1100, 10542),
    "UD_Turkish-IMST/tr_imst-ud-test.conllu": (1100, 10032), "UD_Korean-GSD/ko_gsd-ud-dev.conllu": (950, 11958),
    "UD_Korean-GSD/ko_gsd-ud-test.conllu": (989, 11677),
    "UD_Korean-GSD/r2.10/ko_gsd-ud-train.conllu": (4400, 56687),
    "UD_Korean-GSD/r2.10/ko_gsd-ud-dev.conllu": (950, 11958),
    "UD_Korean-GSD/r2.10/ko_gsd-ud-test.conllu": (989, 11677),
    "UD_Greek-GDT/el_gdt-ud-train.conllu": (1662, 42326), "UD_Greek-GDT/el_gdt-ud-dev.conllu": (403, 10443),
    "UD_Greek-GDT/el_gdt-ud-test.conllu": (456, 10672), "UD_Bulgarian-BTB/bg_btb-ud-dev.conllu": (1115, 16089),
    "UD_Bulgarian-BTB/bg_btb-ud-test.conllu": (1116, 15724), "UD_Urdu-UDTB/ur_udtb-ud-dev.conllu": (552, 14581),
    "UD_Urdu-UDTB/ur_udtb-ud-test.conllu": (535, 14806),
}

ROW = "{id}\t{form}\t_\t{upos}\t_\t_\t{head}\t{rel}\t_\t_"
GOOD = "\n".join([
    "# sent_id = s1", ROW.format(id=1, form="Vamos", upos="VERB", head=0, rel="root"),
    "2-3\tal\t_\t_\t_\t_\t_\t_\t_\t_", ROW.format(id=2, form="a", upos="ADP", head=4, rel="case"),
    ROW.format(id=3, form="el", upos="DET", head=4, rel="det"),
    ROW.format(id=4, form="mar", upos="NOUN", head=1, rel="obl:arg"),
    "4.1\tido\t_\tVERB\t_\t_\t_\t_\t1:conj\t_", ROW.format(id=5, form=".", upos="PUNCT", head=1, rel="punct"),
]) + "\n\n"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_every_shared_treebank_matches_the_manifest(shared_data):
    root = shared_data / "ud"
    found = {str(p.relative_to(root)) for p in root.rglob("*.conllu")}
    assert found == set(MANIFEST)
    for rel, (n_sent, n_words) in MANIFEST.items():
        sents = D.load_ud(root / rel)
        assert (len(sents), sum(len(s) for s in sents)) == (n_sent, n_words), rel
        assert not sents.skipped


def test_multiword_tokens_and_empty_nodes(tmp_path):
    (s,) = D.load_ud(write(tmp_path, "es_x-ud-test.conllu", GOOD))
    assert s.tokens == ["Vamos", "a", "el", "mar", "."]
    assert s.head.tolist() == [0, 4, 4, 1, 1]
    assert [D.UPOS_TAGS[i] for i in s.upos] == ["VERB", "ADP", "DET", "NOUN", "PUNCT"]
    assert D.DEPRELS[s.deprel[3]] == "obl" and s.deprel_full[3] == "obl" and s.lang == "es" and s.sent_id == "s1"
    (k,) = D.load_ud(write(tmp_path, "b.conllu", GOOD), strip_subtypes=False)
    assert k.deprel_full[3] == "obl:arg" and D.DEPRELS[k.deprel[3]] == "obl"


BAD = {
    "columns": (ROW.format(id=1, form="x", upos="NOUN", head=0, rel="root").replace("\t_\t_", "", 1), "10 tab-separated"),
    "id": (ROW.format(id="one", form="x", upos="NOUN", head=0, rel="root"), "non-integer id"),
    "sequence": (ROW.format(id=3, form="x", upos="NOUN", head=0, rel="root"), "out of sequence"),
    "head_range": (ROW.format(id=1, form="x", upos="NOUN", head=7, rel="root"), "out of range"),
    "head_int": (ROW.format(id=1, form="x", upos="NOUN", head="h", rel="root"), "not an integer"),
    "upos": (ROW.format(id=1, form="x", upos="NOUNY", head=0, rel="root"), "unknown UPOS"),
    "rel": (ROW.format(id=1, form="x", upos="NOUN", head=0, rel="rooot"), "unknown dependency relation"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_malformed_strict_names_file_and_line_lenient_skips(tmp_path, kind):
    line, message = BAD[kind]
    text = GOOD + "# sent_id = bad\n" + line + "\n\n" + GOOD
    p = write(tmp_path, f"{kind}.conllu", text)
    bad_line = GOOD.count("\n") + 2
    with pytest.raises(D.DataError, match=rf"{kind}\.conllu:{bad_line}: .*{message}"):
        D.load_ud(p)
    lenient = D.load_ud(p, strict=False)
    assert len(lenient) == 2 and sum(lenient.skipped.values()) == 1


def test_empty_file(tmp_path):
    with pytest.raises(D.DataError, match="empty.conllu: empty file"):
        D.load_ud(write(tmp_path, "empty.conllu", "\n# only a comment\n"))


def test_treebank_lookup(shared_data, tmp_path):
    root = shared_data / "ud"
    assert D.find_ud_file(root, "en", "train").name == "en_ewt-ud-train.conllu"
    assert D.find_ud_file(root, "ar", "test").name == "ar_pud-ud-test.conllu"  # PADT absent -> PUD
    assert D.find_ud_file(root, "de", "train") is None
    assert D.find_and_load_ud(root, "de", "train") is None
    assert len(D.load_ud(root, "test", treebank="UD_German-GSD")) == 977
    with pytest.raises(D.DataError, match="needs split"):
        D.load_ud(root / "UD_German-GSD")


def test_tfds_local_builder_round_trip_without_tensorflow(tmp_path):
    import importlib.util

    from xlmr_dynamics.data.tfds_ud import build_local_ud

    assert importlib.util.find_spec("tensorflow") is None
    fixture = write(tmp_path, "es_x-ud-train.conllu", GOOD * 3)
    build_local_ud({"train": fixture}, tmp_path / "tfds")
    got = D.load_ud("tfds:local_ud/ud", "train", data_dir=tmp_path / "tfds")
    ref = D.load_ud(fixture)
    assert len(got) == 3
    for a, b in zip(got, ref):
        assert a.tokens == b.tokens and a.head.tolist() == b.head.tolist()
        assert a.upos.tolist() == b.upos.tolist() and a.deprel.tolist() == b.deprel.tolist()


def test_tfds_stock_name_with_mock_data():
    import tensorflow_datasets as tfds

    example = {"idx": "s1", "tokens": ["Vamos", "al", "a", "el", "mar"], "upos": [15, 17, 1, 5, 7],
               "head": ["0", "None", "4", "4", "1"], "deprel": ["root", "_", "case", "det", "obl"]}
    with tfds.testing.mock_data(as_data_source_fn=lambda builder, split, **kw: [example]):
        (s,) = D.load_ud("tfds:universal_dependencies/en_ewt", "train")
    assert s.tokens == ["Vamos", "a", "el", "mar"] and s.head.tolist() == [0, 4, 4, 1]  # ids, not positions


@pytest.fixture(scope="session")
def tok(tmp_path_factory, shared_data):
    lines = []
    for f in sorted((shared_data / "text" / "tatoeba").glob("tatoeba.*-eng.*")):
        lines += f.read_text(encoding="utf-8").splitlines()[:120]
    for f in sorted((shared_data / "ud").glob("UD_*/*-ud-dev.conllu")):  # cover every UD script
        lines += [" ".join(s.tokens) for s in D.load_ud(f)[:300]]
    return load_tokenizer(train_sentencepiece(lines, tmp_path_factory.mktemp("spm"), 8000))


def _norm(word: str) -> str:
    return "".join(unicodedata.normalize("NFKC", word).split())


def test_subwords_decode_back_to_each_word_in_every_language(shared_data, tok):
    """Pieces of each word decode to the word up to SentencePiece's NFKC normalisation and whitespace;
    words containing characters the small test model maps to <unk> are counted, not compared."""
    for f in sorted((shared_data / "ud").glob("UD_*/*-ud-test.conllu")):
        sents = D.load_ud(f)[:150]
        enc = D.encode_words(tok, [s.tokens for s in sents])
        words = [w for s in sents for w in s.tokens]
        seen, unk = 0, 0
        for seg in enc.segments:
            for a, b, w in zip(seg.word_start, seg.word_end, seg.word_id):
                ids = seg.ids[a:b]
                if tok.unk_id in ids:
                    unk += 1
                    continue
                assert _norm(tok.decode(ids)) == _norm(words[w]), (f.name, words[w], tok.decode(ids))
                seen += 1
        # an 8k-piece test model leaves some rare Han characters unknown (traditional zh: ~7 %)
        assert seen + unk == len(words) and unk <= 0.10 * len(words), (f.name, unk)


def test_skip_space_piece_starts_spans_at_the_first_content_piece(tok):
    space = tok.piece_to_id("\u2581")
    assert space is not None and tok.id_to_piece(space) == "\u2581" and tok.piece_to_id("no such piece") is None
    cands = ["中华人民共和国", "我们", "经济", "發展", "東京", "ありがとう", "研究所", "問題"]
    bare = [w for w in cands if tok.encode(w)[0] == space and len(tok.encode(w)) > 1]
    assert bare  # unspaced scripts: a bare "▁" before the characters
    words = [bare[0], "the", "x"]
    pieces = [tok.encode(w) for w in words]
    plain = D.encode_words(tok, [words])
    skip = D.encode_words(tok, [words], skip_space_piece=True)
    a, b = plain.segments[0], skip.segments[0]
    assert a.ids.tolist() == b.ids.tolist() and a.word_end.tolist() == b.word_end.tolist()
    expect = [s + (p[0] == space and len(p) > 1) for s, p in zip(a.word_start.tolist(), pieces)]
    assert b.word_start.tolist() == expect and expect[0] == a.word_start[0] + 1
    assert skip.stats["space_piece_skipped"] == sum(e != s for e, s in zip(expect, a.word_start.tolist()))
    assert plain.stats["space_piece_skipped"] == 0


def test_long_sentence_one_slot_per_word(tok):
    words = [f"w{i % 97}x{i}" for i in range(2000)]
    enc = D.encode_words(tok, [words, ["short", "one"]], max_len=512)
    assert enc.num_words == 2002 and enc.stats["long_sentences"] == 1 and enc.stats["windows"] > 2
    ids = np.concatenate([s.word_id for s in enc.segments])
    assert sorted(ids.tolist()) == list(range(2002))
    assert max(len(s.ids) for s in enc.segments) <= 512
    spans = [len(s.ids) - 2 for s in enc.segments[:-1]]  # windows overlap: they hold more subwords in all
    assert sum(spans) > sum(len(tok.encode(w)) for w in words)


def test_encode_pairs_layout(tok):
    enc = D.encode_pairs(tok, [("a b", "c"), ("x " * 400, "y " * 400)], max_len=64)
    a, c = tok.encode("a b"), tok.encode("c")
    assert enc.segments[0].ids.tolist() == [0, *a, 2, 2, *c, 2]
    assert enc.segments[0].word_start.tolist() == [0] and enc.segments[0].word_end.tolist() == [len(a) + len(c) + 4]
    assert len(enc.segments[1].ids) == 64 and enc.stats["truncated_pairs"] == 1


def test_bucketing_bounds_compiles_and_shards_processes(shared_data, tok):
    sents = D.load_ud(shared_data / "ud" / "UD_English-EWT" / "en_ewt-ud-train.conllu")
    enc = D.encode_words(tok, [s.tokens for s in sents])
    buckets = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    plan = D.make_batches(enc.segments, seq_buckets=buckets, tokens_per_batch=4096)
    traces = []

    @jax.jit
    def f(x):
        traces.append(x.shape)
        return x.sum()

    words = []
    for b in plan:
        f(b["input_ids"])
        words.append(b["word_id"][b["word_id"] >= 0])
    assert len(traces) == len(plan.shapes) <= len(buckets)
    assert plan.shapes == {(plan.rows_for[t], t) for t in plan.rows_for}
    # shrink_last: at most 1 + log2(rows) shapes per bucket, less padding.
    small = D.make_batches(enc.segments, seq_buckets=buckets, tokens_per_batch=4096, shrink_last=True)
    assert len(small.shapes) <= sum(1 + int(np.log2(r)) for r in small.rows_for.values())
    assert small.padding_fraction < plan.padding_fraction
    assert sorted(np.concatenate(words).tolist()) == list(range(enc.num_words))
    assert 0 <= plan.padding_fraction < 1
    halves = [list(D.make_batches(enc.segments, seq_buckets=buckets, tokens_per_batch=4096, process_index=i,
                                  process_count=2)) for i in range(2)]
    assert len(halves[0]) == len(halves[1]) == len(plan)
    assert [b["input_ids"].shape for b in halves[0]] == [b["input_ids"].shape for b in halves[1]]
    both = np.concatenate([b["word_id"][b["word_id"] >= 0] for h in halves for b in h])
    assert sorted(both.tolist()) == list(range(enc.num_words))
    packed = D.make_batches(enc.segments, tokens_per_batch=4096, pack=True, pack_len=128)
    assert packed.padding_fraction < 0.1 < plan.padding_fraction


def test_xnli_files(shared_data, tmp_path):
    for lang in ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"):
        dev, test = D.load_xnli(shared_data / "xnli", lang, "dev"), D.load_xnli(shared_data / "xnli", lang, "test")
        assert (len(dev), len(test)) == (2490, 5010)
        assert np.bincount([e.label for e in test]).tolist() == [1670, 1670, 1670]
    mnli = write(tmp_path, "train.tsv", "sentence1\tsentence2\tgold_label\nA\tB\tentailment\nC\tD\t-\nE\tF\tcontradiction\n")
    assert [e.label for e in D.load_xnli(tmp_path, "en", "train")] == [0, 2]
    write(tmp_path, "dev-xx.tsv", "a\tb\tneutral\nc\td\tmaybe\n")
    with pytest.raises(D.DataError, match=r"dev-xx.tsv:2: unknown NLI label"):
        D.load_xnli(tmp_path, "xx", "dev")
    assert mnli.exists()


def test_alignment_gold_sets_and_original_formats(shared_data, tmp_path):
    root = shared_data / "alignment"
    fr = D.load_alignment(root / "en-fr")
    assert len(fr) == 447 and sum(map(len, fr.sure)) == 4038
    assert all(s <= p for s, p in zip(fr.sure, fr.possible))
    ro = D.load_alignment(root / "en-ro")
    assert len(ro) == 248 and sum(map(len, ro.sure)) == 6198
    assert (len(D.load_alignment(root / "en-hi")), len(D.load_alignment(root / "en-cs"))) == (90, 515)
    sure, possible = D.read_talp(root / "en-fr" / "orig" / "enfr.gold")
    assert sure == fr.sure and possible == fr.possible
    cs = D.load_alignment(root / "en-cs")
    ids = [f"{i:04d}" for i in range(1, len(cs) + 1)]
    s2, p2 = D.read_wpt(root / "en-cs" / "orig" / "czen.wal", ids)
    assert s2 == cs.sure and p2 == cs.possible
    d = tmp_path / "en-xx"
    d.mkdir()
    write(d, "en.txt", "a b\nc\n")
    write(d, "xx.txt", "x y\nz\n")
    write(d, "gold.en-xx.txt", "0-0 1-1\n0-3\n")
    with pytest.raises(D.DataError, match="line 2: link 0-3 points past"):
        D.load_alignment(d)
    write(d, "gold.en-xx.txt", "0-0\n")
    with pytest.raises(D.DataError, match="line counts differ"):
        D.load_alignment(d)


def test_text_and_languages(shared_data, tmp_path):
    p = write(tmp_path, "t.txt", "one\n\n two \n\n")
    lines = D.load_text(p)
    assert list(lines) == ["one", "two"] and lines.skipped_blank == 2
    f = D.find_text_file(shared_data / "text" / "tatoeba", "de")
    assert f.name == "tatoeba.deu-eng.deu" and len(D.load_text(f)) == 1000
    assert len(D.XLMR_LANGUAGES) == 100 and D.iso3("zh") == "cmn"
    with pytest.raises(D.DataError, match="no non-empty"):
        D.load_text(write(tmp_path, "e.txt", "\n\n"))


def test_shrink_last_keeps_power_of_two_rows_and_covers_every_word():
    segs = [D.Segment(ids=np.arange(2, 2 + n, dtype=np.int32), word_start=np.arange(n - 1, dtype=np.int32),
                      word_end=np.arange(1, n, dtype=np.int32), word_id=np.arange(n - 1, dtype=np.int32) + 100 * k)
            for k, n in enumerate([10] * 37 + [30])]
    # 37 segments of 10 tokens fill rows of 16 one each; 1 of 30 tokens goes to the 32 bucket alone.
    plan = D.make_batches(segs, seq_buckets=(16, 32), tokens_per_batch=16 * 16, batch_multiple=2,
                          shrink_last=True)
    shapes = [b["input_ids"].shape for b in plan]
    assert shapes == [(16, 16), (16, 16), (8, 16), (2, 32)]
    assert plan.stats["padded_tokens"] == 40 * 16 + 2 * 32
    old = [b["input_ids"].shape for b in D.make_batches(segs, seq_buckets=(16, 32), tokens_per_batch=16 * 16,
                                                         batch_multiple=2)]
    assert old == [(16, 16)] * 3 + [(8, 32)]
    words = np.concatenate([b["word_id"][b["word_id"] >= 0] for b in plan])
    assert sorted(words.tolist()) == sorted(np.concatenate([s.word_id for s in segs]).tolist())
