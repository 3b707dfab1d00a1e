"""Language registry: ISO 639-1/639-3 codes, XLM-R's 100 pretraining languages, default UD treebanks.

Owns the code tables only (no file access). XLM-R's list is Table 6 of Conneau et al. (2020): 94
languages (Chinese twice: `zh` simplified, `zh_hant` traditional) plus 6 romanized or Zawgyi variants
(`bn_rom`, `hi_rom`, `my_zaw`, `ta_rom`, `te_rom`, `ur_rom`), 100 in all; 94 excluding the 6 variants
(the paper's BPC count).
"""

from __future__ import annotations

# ISO 639-1 (or the CC100 code) -> ISO 639-3, for XLM-R's languages and a few others used by UD/Tatoeba.
ISO3 = {
    "af": "afr", "am": "amh", "ar": "ara", "as": "asm", "az": "aze", "be": "bel", "bg": "bul", "bn": "ben",
    "br": "bre", "bs": "bos", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan", "de": "deu", "el": "ell",
    "en": "eng", "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra",
    "fy": "fry", "ga": "gle", "gd": "gla", "gl": "glg", "gu": "guj", "ha": "hau", "he": "heb", "hi": "hin",
    "hr": "hrv", "hu": "hun", "hy": "hye", "id": "ind", "is": "isl", "it": "ita", "ja": "jpn", "jv": "jav",
    "ka": "kat", "kk": "kaz", "km": "khm", "kn": "kan", "ko": "kor", "ku": "kur", "ky": "kir", "la": "lat",
    "lo": "lao", "lt": "lit", "lv": "lvs", "mg": "mlg", "mk": "mkd", "ml": "mal", "mn": "mon", "mr": "mar",
    "ms": "zsm", "my": "mya", "ne": "nep", "nl": "nld", "no": "nob", "om": "orm", "or": "ori", "pa": "pan",
    "pl": "pol", "ps": "pus", "pt": "por", "ro": "ron", "ru": "rus", "sa": "san", "sd": "snd", "si": "sin",
    "sk": "slk", "sl": "slv", "so": "som", "sq": "sqi", "sr": "srp", "su": "sun", "sv": "swe", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur", "ug": "uig", "uk": "ukr", "ur": "urd",
    "uz": "uzb", "vi": "vie", "xh": "xho", "yi": "yid", "zh": "cmn",
}
XLMR_ROMANIZED = ("bn_rom", "hi_rom", "my_zaw", "ta_rom", "te_rom", "ur_rom")
XLMR_VARIANTS = XLMR_ROMANIZED + ("zh_hant",)  # CC100 has Chinese twice: simplified (zh) and traditional
XLMR_LANGUAGES: tuple[str, ...] = tuple(sorted(ISO3)) + XLMR_VARIANTS
assert len(XLMR_LANGUAGES) == 100, len(XLMR_LANGUAGES)

# Default UD treebank per language (largest general-purpose treebank of UD 2.x; the loader falls back
# to any `UD_*/<lang>_*-ud-<split>.conllu` when the default is absent, e.g. Arabic-PUD for PADT).
DEFAULT_TREEBANKS = {
    "af": "UD_Afrikaans-AfriBooms", "ar": "UD_Arabic-PADT", "bg": "UD_Bulgarian-BTB", "ca": "UD_Catalan-AnCora",
    "cs": "UD_Czech-PDT", "da": "UD_Danish-DDT", "de": "UD_German-GSD", "el": "UD_Greek-GDT",
    "en": "UD_English-EWT", "es": "UD_Spanish-GSD", "et": "UD_Estonian-EDT", "eu": "UD_Basque-BDT",
    "fa": "UD_Persian-Seraji", "fi": "UD_Finnish-TDT", "fr": "UD_French-GSD", "ga": "UD_Irish-IDT",
    "gl": "UD_Galician-CTG", "he": "UD_Hebrew-HTB", "hi": "UD_Hindi-HDTB", "hr": "UD_Croatian-SET",
    "hu": "UD_Hungarian-Szeged", "hy": "UD_Armenian-ArmTDP", "id": "UD_Indonesian-GSD", "it": "UD_Italian-ISDT",
    "ja": "UD_Japanese-GSD", "ko": "UD_Korean-GSD", "la": "UD_Latin-ITTB", "lt": "UD_Lithuanian-ALKSNIS",
    "lv": "UD_Latvian-LVTB", "mr": "UD_Marathi-UFAL", "nl": "UD_Dutch-Alpino", "no": "UD_Norwegian-Bokmaal",
    "pl": "UD_Polish-PDB", "pt": "UD_Portuguese-Bosque", "ro": "UD_Romanian-RRT", "ru": "UD_Russian-GSD",
    "sk": "UD_Slovak-SNK", "sl": "UD_Slovenian-SSJ", "sr": "UD_Serbian-SET", "sv": "UD_Swedish-Talbanken",
    "ta": "UD_Tamil-TTB", "te": "UD_Telugu-MTG", "tr": "UD_Turkish-IMST", "ug": "UD_Uyghur-UDT",
    "uk": "UD_Ukrainian-IU", "ur": "UD_Urdu-UDTB", "vi": "UD_Vietnamese-VTB", "zh": "UD_Chinese-GSDSimp",
}


def language_codes() -> tuple[str, ...]:
    """Every language code the registry knows."""
    return XLMR_LANGUAGES


def iso3(lang: str) -> str:
    if lang not in ISO3:
        raise KeyError(f"unknown language code {lang!r}")
    return ISO3[lang]
