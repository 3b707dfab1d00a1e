"""Data layer edge cases on hand-made files: treebank lookup, TFDS split names and order, XNLI lookup
and malformed rows, WPT alignments, byte-order marks and Unicode line breaks, language codes."""

import pytest

from xlmr_dynamics import data as D
from xlmr_dynamics.data.lines import read_lines, split_lines
from xlmr_dynamics.data.tfds_ud import LocalUD, build_local_ud

ROW = "{}\t{}\t_\t{}\t_\t_\t{}\t{}\t_\t_"
# Two sentences, 2 + 1 words, 7 lines (5 of them non-blank).
TWO = ("# sent_id = s1\n" + ROW.format(1, "a", "DET", 2, "det") + "\n" + ROW.format(2, "b", "NOUN", 0, "root")
       + "\n\n# sent_id = s2\n" + ROW.format(1, "c", "NOUN", 0, "root") + "\n\n")


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:  # newline="": bytes exactly as written
        f.write(text)
    return path


class StockLikeUd(LocalUD):
    """A LocalUD registered as `stock_like_ud`; its splits are named like the stock UD builder's."""


# --- 1. find_ud_file with an explicit treebank looks nowhere else ---------------------------------

def test_explicit_treebank_has_no_fallback(tmp_path):
    write(tmp_path / "UD_English-EWT" / "en_ewt-ud-dev.conllu", TWO)
    write(tmp_path / "UD_English-Other" / "en_other-ud-test.conllu", TWO)
    assert D.find_ud_file(tmp_path, "en", "dev").name == "en_ewt-ud-dev.conllu"  # registry default
    assert D.find_ud_file(tmp_path, "en", "test").name == "en_other-ud-test.conllu"  # any UD_*/en_*
    assert D.find_ud_file(tmp_path, "en", "dev", treebank="UD_English-GUM") is None  # was EWT's file
    assert D.find_ud_file(tmp_path, "en", "test", treebank="UD_English-EWT") is None  # was Other's file
    assert D.find_ud_file(tmp_path, "en", "dev", treebank="UD_English-EWT").name == "en_ewt-ud-dev.conllu"
    assert D.find_and_load_ud(tmp_path, "en", "dev", treebank="UD_English-GUM") is None
    with pytest.raises(D.DataError, match="UD_English-GUM: no such file"):
        D.load_ud(tmp_path, "dev", treebank="UD_English-GUM")


# --- 2 + 3. TFDS: dev/validation by what the builder has; file order ---------------------------------

def test_tfds_dev_split_name_follows_the_builder(tmp_path):
    f = write(tmp_path / "x_y-ud-dev.conllu", TWO)
    b = StockLikeUd(files={"train": f, "dev": f}, data_dir=str(tmp_path / "tfds"), file_format="array_record")
    b.download_and_prepare()
    assert set(b.info.splits.keys()) == {"train", "dev"}
    for split in ("dev", "validation"):  # "dev" used to be sent as "validation" for non-local builders
        got = D.load_ud("tfds:stock_like_ud/ud", split, data_dir=tmp_path / "tfds")
        assert [s.tokens for s in got] == [["a", "b"], ["c"]]
    with pytest.raises(D.DataError, match="cannot open split 'test'"):
        D.load_ud("tfds:stock_like_ud/ud", "test", data_dir=tmp_path / "tfds")


def test_tfds_local_builder_keeps_file_order_and_validation_alias(tmp_path):
    many = "".join(f"# sent_id = s{k}\n" + ROW.format(1, f"w{k}", "NOUN", 0, "root") + "\n\n" for k in range(30))
    train = write(tmp_path / "x_y-ud-train.conllu", many)
    dev = write(tmp_path / "x_y-ud-dev.conllu", TWO)
    build_local_ud({"train": train, "validation": dev}, tmp_path / "tfds")
    got = D.load_ud("tfds:local_ud/ud", "train", data_dir=tmp_path / "tfds")
    ref = D.load_ud(train)
    assert [s.tokens for s in got] == [s.tokens for s in ref] == [[f"w{k}"] for k in range(30)]
    assert [s.sent_id for s in got] == [s.sent_id for s in ref] == [f"s{k}" for k in range(30)]
    assert [s.tokens for s in got[:5]] == [s.tokens for s in ref[:5]]  # a cap picks the same sentences
    assert [s.tokens for s in D.load_ud("tfds:local_ud/ud", "dev", data_dir=tmp_path / "tfds")] == [["a", "b"], ["c"]]


# --- 4. xnli_available == load_xnli finds something ---------------------------------------------------

HEADER = "gold_label\tsentence1\tsentence2\n"


@pytest.mark.parametrize("name,text,lang,split,n", [
    ("multinli_1.0_train.txt", HEADER + "neutral\tp\th\n", "en", "train", 1),
    ("train.tsv", "sentence1\tsentence2\tlabel\np\th\tentailment\n", "en", "train", 1),
    ("dev-de.tsv", "p\th\tneutral\n", "de", "dev", 1),
    ("validation-de.tsv", "p\th\tneutral\n", "de", "dev", 1),
    ("xnli.test.tsv", "language\t" + HEADER + "fr\tneutral\tp\th\nde\tneutral\tq\th\n", "fr", "test", 1),
    ("multinli_1.0_train.txt", HEADER + "neutral\tp\th\n", "de", "train", None),  # English only
    ("dev-de.tsv", "p\th\tneutral\n", "fr", "dev", None),
], ids=["mnli", "glue", "plain", "validation", "xnli", "mnli-not-en", "plain-other-lang"])
def test_xnli_available_agrees_with_load_xnli(tmp_path, name, text, lang, split, n):
    write(tmp_path / name, text)
    assert D.xnli_available(tmp_path, lang, split) is (n is not None)
    if n is None:
        with pytest.raises(D.DataError, match="no XNLI data"):
            D.load_xnli(tmp_path, lang, split)
    else:
        assert len(D.load_xnli(tmp_path, lang, split)) == n
    assert D.xnli_available(tmp_path / "absent", lang, split) is False


def test_xnli_plain_file_given_directly(tmp_path):
    f = write(tmp_path / "dev-en.tsv", "p\th\tcontradiction\n")
    assert D.load_xnli(f, "en", "dev") == [D.NLIExample("p", "h", 2)]
    assert D.xnli_available(f, "en", "dev")


# --- 5. header TSV rows with missing fields ----------------------------------------------------------

@pytest.mark.parametrize("row,missing", [("entailment\tonly premise", "sentence2"), ("", None),
                                         ("\tp", "sentence2")], ids=["premise-only", "blank", "empty-label"])
def test_header_tsv_short_rows_name_file_and_line(tmp_path, row, missing):
    good = "neutral\tp\th\n"
    f = write(tmp_path / "train.tsv", HEADER + good + "\n" + row + "\n" + good)
    if missing is None:  # blank lines are skipped (and do not shift line numbers)
        assert len(D.load_xnli(f, "en", "train")) == 2
        return
    with pytest.raises(D.DataError, match=rf"train\.tsv:4: .*missing {missing}"):
        D.load_xnli(f, "en", "train")


def test_header_tsv_missing_label_field(tmp_path):
    f = write(tmp_path / "train.tsv", "sentence1\tsentence2\tgold_label\np\th\tneutral\np\th\n")
    with pytest.raises(D.DataError, match=r"train\.tsv:3: .*missing gold_label"):  # was AttributeError
        D.load_xnli(f, "en", "train")
    f = write(tmp_path / "xnli.dev.tsv", "language\tsentence1\tsentence2\tgold_label\nfr\tp\th\tneutral\nde\n")
    with pytest.raises(D.DataError, match=r"xnli\.dev\.tsv:3: .*missing"):
        D.load_xnli(tmp_path, "fr", "dev")


# --- 6. WPT alignments -------------------------------------------------------------------------------

def test_wpt_null_links_confidence_and_bad_indices(tmp_path):
    f = write(tmp_path / "w.wa", "1 1 1 S\n1 2 0 S\n1 0 2 P\n1 2 2 P\n2 1 2 P 0.75\n2 2 1 S 1.0\n2 1 1 0.5\n")
    sure, poss = D.read_wpt(f, ["1", "2"])
    assert sure == [{(0, 0)}, {(1, 0), (0, 0)}]  # NULL (index 0) links dropped, not turned into -1
    assert poss == [{(0, 0), (1, 1)}, {(0, 1), (1, 0), (0, 0)}]
    assert D.read_wpt(f, ["1", "2"], swap=True)[0] == [{(0, 0)}, {(0, 1), (0, 0)}]
    for text, line in [("1 1 1 S\n1 a 1 S\n", 2), ("1 1 1.5\n", 1), ("1 1 1 S x\n", 1), ("1 1 1 S 0.5 7\n", 1),
                       ("1 1 1 X\n", 1), ("1 -1 1\n", 1)]:
        with pytest.raises(D.DataError, match=rf"w\.wa:{line}: "):
            D.read_wpt(write(tmp_path / "w.wa", text), ["1"])


def test_validate_alignment_rejects_negative_indices():
    gold = D.AlignmentSet([["a", "b"]], [["x", "y"]], [{(1, -1)}], [{(1, -1)}])
    with pytest.raises(D.DataError, match="line 1: link 1--1 has a negative index"):
        D.validate_alignment(gold, "g")


# --- 7. byte-order marks and Unicode line breaks -----------------------------------------------------

def test_split_lines_cuts_at_newline_only(tmp_path):
    assert split_lines("a\u2028b\x85c\x0cd\x1ce\r\nf\rg\n\nh") == ["a\u2028b\x85c\x0cd\x1ce", "f\rg", "", "h"]
    assert split_lines("") == [] and split_lines("\n") == [""] and split_lines("x\r\n") == ["x"]
    assert read_lines(write(tmp_path / "b.txt", "\ufeffx\ny\n")) == ["x", "y"]
    with pytest.raises(D.DataError, match="not UTF-8"):
        read_lines(write(tmp_path / "l1.txt", "caf\xe9\n", encoding="latin-1"))
    with pytest.raises(D.DataError, match="cannot read"):
        read_lines(tmp_path / "missing.txt")


@pytest.mark.parametrize("prefix", ["", "# newdoc\n"])
def test_conllu_with_bom(tmp_path, prefix):
    got = D.load_ud(write(tmp_path / "x_y-ud-dev.conllu", "\ufeff" + prefix + TWO))
    assert [s.tokens for s in got] == [["a", "b"], ["c"]] and got[0].sent_id == "s1"


@pytest.mark.parametrize("odd", ["\u2028", "\u2029", "\x85", "\x0c", "\x1c", "\x1d", "\x1e", "\x0b"],
                         ids=["LS", "PS", "NEL", "FF", "FS", "GS", "RS", "VT"])
def test_conllu_unicode_line_breaks_stay_inside_the_line(tmp_path, odd):
    text = ("# sent_id = s1\n# text = a" + odd + "b\n" + ROW.format(1, "a" + odd + "b", "NOUN", 0, "root") + "\n\n"
            + "# sent_id = s2\n" + ROW.format(1, "c", "NOUNY", 0, "root") + "\n\n")
    f = write(tmp_path / "x_y-ud-dev.conllu", text)
    with pytest.raises(D.DataError, match=r"x_y-ud-dev\.conllu:6: unknown UPOS"):  # line numbers as in an editor
        D.load_ud(f)
    got = D.load_ud(f, strict=False)
    assert [s.tokens for s in got] == [["a" + odd + "b"]] and sum(got.skipped.values()) == 1


def test_conllu_crlf_still_reads(tmp_path):
    got = D.load_ud(write(tmp_path / "x_y-ud-dev.conllu", "\ufeff" + TWO.replace("\n", "\r\n")))
    assert [s.tokens for s in got] == [["a", "b"], ["c"]] and [s.deprel_full for s in got] == [["det", "root"], ["root"]]


def test_text_bom_and_line_separators(tmp_path):
    lines = D.load_text(write(tmp_path / "t.txt", "\ufeffone\u2028two\n\x85\nthree\x0c\r\n"))
    assert list(lines) == ["one\u2028two", "three"] and lines.skipped_blank == 1


def test_xnli_lone_carriage_return_and_bom(tmp_path):
    f = write(tmp_path / "dev-xx.tsv", "\ufeffp1\tcarriage\rreturn\tneutral\r\np2\th\u2028x\tentailment\n")
    assert D.load_xnli(tmp_path, "xx", "dev") == [D.NLIExample("p1", "carriage\rreturn", 1),
                                                  D.NLIExample("p2", "h\u2028x", 0)]
    write(tmp_path / "train.tsv", "\ufeffsentence1\tsentence2\tlabel\r\np\th\u0085\tneutral\r\n")
    assert D.load_xnli(tmp_path, "en", "train") == [D.NLIExample("p", "h\x85", 1)]
    assert f.exists()


def test_alignment_files_with_bom_and_line_separators(tmp_path):
    d = tmp_path / "en-xx"
    write(d / "en.txt", "\ufeffa b\u2028\nc\n")
    write(d / "xx.txt", "x\x85y\nz\n")
    write(d / "gold.en-xx.txt", "\ufeff0-0 1p1\r\n0-0\r\n")
    gold = D.load_alignment(d)
    assert gold.src == [["a", "b"], ["c"]] and gold.tgt == [["x", "y"], ["z"]]
    assert gold.sure == [{(0, 0)}, {(0, 0)}] and gold.possible == [{(0, 0), (1, 1)}, {(0, 0)}]
    assert D.read_pipe_text(write(tmp_path / "p.txt", "\ufeffa\u2028b ||| c\n")) == ([["a", "b"]], [["c"]])
    s, _ = D.read_wpt(write(tmp_path / "w.wa", "\ufeff1 1 1 S\n"), ["1"])
    assert s == [{(0, 0)}]


# --- 8. non-ASCII digits in ID/HEAD; Latvian Tatoeba code -----------------------------------------------

@pytest.mark.parametrize("col,row", [("id", ROW.format("\u00b2", "a", "NOUN", 0, "root")),
                                     ("head", ROW.format(1, "a", "NOUN", "\u00b2", "root")),
                                     ("range", "1-\u00b2\tab\t_\t_\t_\t_\t_\t_\t_\t_"),
                                     ("arabic", ROW.format(1, "a", "NOUN", "\u0663", "root"))],
                         ids=["id", "head", "range", "arabic"])
def test_non_ascii_digits_are_data_errors(tmp_path, col, row):
    f = write(tmp_path / "x_y-ud-dev.conllu", "# sent_id = bad\n" + row + "\n\n" + TWO)
    with pytest.raises(D.DataError, match=r"x_y-ud-dev\.conllu:2: "):
        D.load_ud(f)
    got = D.load_ud(f, strict=False)  # lenient: skipped and counted, not a crash
    assert len(got) == 2 and sum(got.skipped.values()) == 1


def test_latvian_tatoeba_code(shared_data):
    assert D.iso3("lv") == "lvs"
    f = D.find_text_file(shared_data / "text" / "tatoeba", "lv")
    assert f is not None and f.name == "tatoeba.lvs-eng.lvs"


def test_tfds_ud_names_and_split_availability(tmp_path):
    from xlmr_dynamics.data.tfds_ud import build_local_ud

    assert D.tfds_ud_name("universal_dependencies", "en") == "universal_dependencies/en_ewt"
    assert D.tfds_ud_name("universal_dependencies", "zh") == "universal_dependencies/zh_gsdsimp"
    assert D.tfds_ud_name("universal_dependencies", "en", "en_gum") == "universal_dependencies/en_gum"
    assert D.tfds_ud_name("universal_dependencies", "en", "local_ud/ud") == "local_ud/ud"
    assert D.tfds_ud_name("local_ud/ud", "fr") == "local_ud/ud"
    with pytest.raises(D.DataError, match="set ud.treebanks.xx"):
        D.tfds_ud_name("universal_dependencies", "xx")
    import tensorflow_datasets as tfds

    stock = {c.name for c in tfds.builder_cls("universal_dependencies").BUILDER_CONFIGS}
    assert {D.tfds_ud_name("universal_dependencies", lang).split("/")[1] for lang in D.DEFAULT_TREEBANKS} <= stock

    f = tmp_path / "x-ud-dev.conllu"
    f.write_text("# sent_id = s1\n1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    build_local_ud({"dev": f}, tmp_path / "tfds")
    src, dd = "tfds:local_ud/ud", tmp_path / "tfds"
    assert D.ud_available(src, "en", "dev", data_dir=dd) and D.ud_available(src, "en", "validation", data_dir=dd)
    assert not D.ud_available(src, "en", "train", data_dir=dd)
    assert D.find_and_load_ud(src, "en", "train", data_dir=dd) is None
    (s,) = D.find_and_load_ud(src, "en", "dev", data_dir=dd)
    assert s.tokens == ["Hi"] and s.lang == "en"
    with pytest.raises(D.DataError, match="not prepared under"):
        D.ud_available(src, "en", "dev", data_dir=tmp_path / "elsewhere")
    with pytest.raises(D.DataError, match="unknown TFDS dataset"):
        D.xnli_available("tfds:no_such_dataset_xyz", "en", "test", data_dir=dd)


def test_tfds_xnli_picks_the_language_and_names_a_missing_one():
    import tensorflow_datasets as tfds

    ex = {"premise": {"en": b"A man sleeps.", "fr": b"Un homme dort."},
          "hypothesis": {"language": [b"en", b"fr"], "translation": [b"He rests.", b"Il se repose."]},
          "label": 0}
    with tfds.testing.mock_data(as_data_source_fn=lambda builder, split, **kw: [ex]):
        (fr,) = D.load_xnli("tfds:xnli", "fr", "test")
        assert (fr.premise, fr.hypothesis, fr.label) == ("Un homme dort.", "Il se repose.", 0)
        with pytest.raises(D.DataError, match="example 0: no premise in 'de'"):
            D.load_xnli("tfds:xnli", "de", "test")


def test_tfds_stock_xnli_is_found_without_tensorflow(tmp_path):
    """TFDS registers its legacy text datasets (xnli) only when their module is imported."""
    with pytest.raises(D.DataError, match=r"tfds:xnli: not prepared under .*xnli"):
        D.xnli_available("tfds:xnli", "fr", "test", data_dir=tmp_path)
