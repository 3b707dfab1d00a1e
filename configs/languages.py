"""Task language lists (data, not code). Counts follow the paper's Table 1; the lists are our choice.

Blevins et al. (2022) probe 44 UD languages in-language, 18 -> 18 cross-lingually, 15 XNLI
languages and en -> 6 for alignment; their exact UD and cross-lingual lists are not public
(../shared/docs/method.md, "Language lists: OPEN"). Ours: every XLM-R pretraining language with a
UD 2.x treebank that has train and test splits (the registry's default treebank), 44 of them; the 18
cross-lingual ones cover 10 families and 8 scripts and include all 15 XNLI languages with UD data.
"""

import ml_collections

# 44 UD languages (in-language probing); OUR CHOICE (paper's list unknown).
UD_44 = ("af", "ar", "bg", "ca", "cs", "da", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "ga", "gl",
         "he", "hi", "hr", "hu", "hy", "id", "it", "ja", "ko", "la", "lt", "lv", "mr", "nl", "no", "pl", "pt",
         "ro", "ru", "sk", "sl", "sr", "sv", "ta", "tr", "uk", "ur")
# 18 cross-lingual languages (train on each, test on each: 324 cells); OUR CHOICE.
CROSS_18 = ("ar", "bg", "de", "el", "en", "es", "eu", "fa", "fi", "fr", "he", "hi", "ja", "ko", "ru", "ta", "tr",
            "ur")
# The 15 XNLI languages (Conneau et al. 2018).
XNLI_15 = ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")
# en -> 6 SimAlign gold sets (Jalili Sabet et al. 2020).
ALIGN_6 = ("cs", "de", "fa", "fr", "hi", "ro")


def get_config():
    c = ml_collections.ConfigDict()
    c.ud = UD_44
    c.cross = CROSS_18
    c.xnli = XNLI_15
    c.align = ALIGN_6
    return c
