"""UD through TFDS without TensorFlow: a package-local CoNLL-U builder and a `tfds.data_source` reader.

Owns: `LocalUD` (a `ConllUDatasetBuilder` over local `.conllu` files that keeps only integer-id words,
written as ArrayRecord), `build_local_ud`, and `load_tfds_ud` (any UD-style TFDS dataset, e.g. the
stock `universal_dependencies/en_ewt`, read with `tfds.data_source`). TensorFlow is never needed:
ArrayRecord + data_source only (stack-notes section 4).

The stock builder keeps multiword-token ranges and empty nodes (upos '_', head 'None'); the reader
drops every position whose head is not an integer, which removes exactly those. `LocalUD` writes
examples in file order (shuffling disabled), so sentence caps pick the same sentences as the `.conllu`
route. "dev" and "validation" name the same split: the reader asks for whichever the builder has
(the stock `universal_dependencies` builder says "dev").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.dataset_builders.conll import conllu_dataset_builder as _conllu
from tensorflow_datasets.core.dataset_builders.conll import conllu_dataset_builder_utils as _utils

from xlmr_dynamics.data.tfds_source import open_split
from xlmr_dynamics.data.ud import _DEPREL_ID, _UPOS_ID, DataError, Sentence, SentenceList, _is_int


def _integer_words_only(sentence, *args, **kwargs):
    sentence = sentence.filter(id=lambda i: isinstance(i, int))
    return _conllu.get_conllu_example(sentence, *args, **kwargs)


class LocalUD(tfds.dataset_builders.ConllUDatasetBuilder):
    """UD from local files: `LocalUD(files={"train": path, ...}, data_dir=..., file_format="array_record")`."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": "Examples in file order (shuffling disabled).", "1.0.0": "Initial release."}
    BUILDER_CONFIGS = [tfds.dataset_builders.ConllUBuilderConfig(
        name="ud", features=_utils.UNIVERSAL_DEPENDENCIES_FEATURES, language="multi")]

    def __init__(self, *, files: dict | None = None, **kwargs):
        self._files = dict(files or {})
        super().__init__(**kwargs)

    def _info(self):
        # disable_shuffling: examples stay in file order. DatasetInfo directly (not dataset_info_from_configs):
        # no README/CITATIONS lookup next to the class's source, which also lets scripts subclass it.
        return tfds.core.DatasetInfo(builder=self, features=self.builder_config.features_dict,
                                     disable_shuffling=True)

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(str(path), process_example_fn=_integer_words_only)
                for split, path in self._files.items()}


def build_local_ud(files: dict, data_dir: str | Path) -> LocalUD:
    """Prepare a LocalUD dataset (ArrayRecord) under data_dir; read it with `load_tfds_ud("local_ud/ud")`."""
    builder = LocalUD(files=files, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare()
    return builder


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def load_tfds_ud(name: str, split: str, *, data_dir=None, strip_subtypes: bool = True, lang: str | None = None
                 ) -> SentenceList:
    """UD sentences from a TFDS dataset (ArrayRecord) via `tfds.data_source`."""
    tsplit, source = open_split(name, split, data_dir)
    upos_names = _utils.UPOS
    out = SentenceList(source=f"tfds:{name}/{tsplit}")
    for k in range(len(source)):
        ex = source[k]
        heads = [_text(h) for h in ex["head"]]
        keep = [i for i, h in enumerate(heads) if _is_int(h)]
        tokens = [_text(ex["tokens"][i]) for i in keep]
        upos = [_UPOS_ID.get(upos_names[int(ex["upos"][i])], -1) for i in keep]
        rels = [_text(ex["deprel"][i]) for i in keep]
        if -1 in upos or any(r.split(":")[0] not in _DEPREL_ID for r in rels):
            raise DataError(f"tfds:{name} example {k}: unknown UPOS or relation")
        head = np.asarray([int(heads[i]) for i in keep], np.int32)
        if len(head) and head.max() > len(head):
            raise DataError(f"tfds:{name} example {k}: head out of range")
        out.append(Sentence(tokens, np.asarray(upos, np.int32), head,
                            np.asarray([_DEPREL_ID[r.split(":")[0]] for r in rels], np.int32),
                            [r.split(":")[0] if strip_subtypes else r for r in rels],
                            lang or "", _text(ex.get("idx", k))))
    return out
