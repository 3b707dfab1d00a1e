"""Data layer: UD, XNLI, alignment gold and raw text, subword span maps, fixed-shape batches.

Knows nothing of JAX models: it yields numpy arrays and span maps (see `encode` and `batching`).
Public API: `load_ud`, `find_ud_file`, `find_and_load_ud`, `ud_available`, `tfds_ud_name`, `is_tfds`,
`Sentence`, `UPOS_TAGS`, `DEPRELS`, `load_xnli`, `xnli_available`, `NLIExample`, `XNLI_LABELS`, `load_alignment`, `AlignmentSet`,
`load_text`, `find_text_file`, `encode_words`, `encode_pairs`, `Segment`, `EncodedWords`,
`make_batches`, `BatchPlan`, the language registry and `DataError`.
"""

from xlmr_dynamics.data.alignment_gold import (  # noqa: F401
    AlignmentSet, load_alignment, read_pipe_text, read_talp, read_wpt, validate_alignment)
from xlmr_dynamics.data.batching import BatchPlan, make_batches  # noqa: F401
from xlmr_dynamics.data.encode import EncodedWords, Segment, encode_pairs, encode_words  # noqa: F401
from xlmr_dynamics.data.languages import (  # noqa: F401
    DEFAULT_TREEBANKS, ISO3, XLMR_LANGUAGES, iso3, language_codes)
from xlmr_dynamics.data.text import TextLines, find_text_file, load_text  # noqa: F401
from xlmr_dynamics.data.ud import (  # noqa: F401
    DEPRELS, UPOS_TAGS, DataError, Sentence, SentenceList, find_and_load_ud, find_ud_file, load_ud, read_conllu,
    tfds_ud_name, ud_available)
from xlmr_dynamics.data.tfds_source import is_tfds  # noqa: F401
from xlmr_dynamics.data.xnli import XNLI_LABELS, NLIExample, load_xnli, xnli_available  # noqa: F401
