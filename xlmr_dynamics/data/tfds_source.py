"""TFDS sources: which splits a prepared dataset has (dev/validation are one split).

Owns: `is_tfds`, `tfds_name`, `tfds_split`, `open_split`. A source string `tfds:<name>[/<config>]` names a TFDS
dataset read with `tfds.data_source` from ArrayRecord files (no TensorFlow); `data_dir` is TFDS's
(None: its default, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
"""

from __future__ import annotations

from xlmr_dynamics.data.lines import DataError

PREFIX = "tfds:"
_DEV_NAMES = ("dev", "validation")


def is_tfds(source) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def tfds_name(source: str) -> str:
    """`tfds:<name>` -> `<name>`."""
    return source[len(PREFIX):]


def _register(name: str) -> None:
    """Imports TFDS's legacy module of `name` (e.g. `tensorflow_datasets.text.xnli`): those datasets
    are registered on import only, unlike the lazily loaded `tensorflow_datasets.datasets` ones
    (`universal_dependencies`), so `tfds.builder("xnli")` alone reports it as not found."""
    import importlib
    import importlib.util

    base = name.split("/")[0].split(":")[0]
    module = f"tensorflow_datasets.text.{base}"
    if base.isidentifier() and importlib.util.find_spec(module) is not None:
        importlib.import_module(module)


def tfds_split(name: str, split: str, data_dir=None) -> str | None:
    """The dataset's own name of `split` ("dev" and "validation" stand for each other), or None if
    the prepared dataset has no such split.

    Raises:
        DataError: unknown dataset name, or not prepared under `data_dir`.
    """
    import tensorflow_datasets as tfds

    data_dir = None if data_dir is None else str(data_dir)
    _register(name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # tfds raises many types for unknown names and configs
        raise DataError(f"{PREFIX}{name}: unknown TFDS dataset ({type(e).__name__}: {e})") from e
    if not builder.is_prepared():
        raise DataError(f"{PREFIX}{name}: not prepared under {builder.data_dir} (prepare it with "
                        f"tfds.builder({name!r}, data_dir=...).download_and_prepare("
                        "file_format='array_record'), or set the TFDS data dir)")
    have = set(builder.info.splits.keys())
    for s in (_DEV_NAMES if split in _DEV_NAMES else (split,)):
        if s in have:
            return s
    return None


def open_split(name: str, split: str, data_dir=None):
    """(the dataset's name of `split`, its `tfds.data_source`) for reading examples by index.

    Raises:
        DataError: the dataset or split cannot be opened (names both).
    """
    import tensorflow_datasets as tfds

    data_dir = None if data_dir is None else str(data_dir)
    try:
        tsplit = tfds_split(name, split, data_dir) or split
    except DataError:  # unknown or unprepared: data_source below says so with the split name
        tsplit = split
    try:
        return tsplit, tfds.data_source(name, split=tsplit, data_dir=data_dir)
    except Exception as e:  # tfds raises many types for unknown names / unprepared data
        raise DataError(f"{PREFIX}{name}: cannot open split {tsplit!r} ({type(e).__name__}: {e})") from e
