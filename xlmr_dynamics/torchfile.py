"""Read PyTorch `torch.save` files (fairseq `model.pt`, HF `pytorch_model.bin`) without torch.

Owns: `load_torch_file(path) -> nested Python objects with numpy arrays for tensors`.

Both serialisation formats are supported: the zip format (torch >= 1.6, `archive/data.pkl` plus one
raw file per storage) and the legacy format (torch < 1.6, e.g. the 2019 XLM-R `model.pt`: magic
number, protocol, sys info, the object pickle, the storage key list, then each storage's raw bytes).

Safety: every pickle in the file goes through a restricted unpickler. The legacy header and key-list
pickles resolve no global at all; the object pickle resolves only a fixed allow-list (tensor
rebuilders, storage types, OrderedDict, argparse.Namespace, numpy scalars/arrays, plain builtins).
Every other class, e.g. omegaconf's `DictConfig` in fairseq's `cfg` or fairseq enums, becomes an
inert `Opaque` record of its constructor arguments and pickled state, so nothing from the file is
ever executed and neither fairseq nor omegaconf is needed. `to_plain` turns those records back into
dicts/values.

Tensor views are checked against their storage's length, so a truncated storage raises instead of
reading past it. Limits: dense CPU tensors of the dtypes in `_STORAGE_DTYPES`/`_TORCH_DTYPES` only
(others, e.g. complex or float8, raise "unsupported"); no sparse/quantized tensors; little-endian files.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,  # raw bytes; v3 tensors (torch >= 2.1) carry their own dtype
}
_TORCH_DTYPES = {  # names used by torch.dtype pickles (`torch.float32` -> find_class("torch", "float32"))
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "bfloat16": ml_dtypes.bfloat16, "int64": np.int64,
    "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16, "int8": np.int8,
    "uint8": np.uint8, "bool": np.bool_,
}
_SUPPORTED_TENSOR_DTYPES = frozenset(_TORCH_DTYPES.values())
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class TorchFileError(ValueError):
    """The file is not a readable torch.save file (truncated, corrupt, or unsupported)."""


class Opaque:
    """An object of a class outside the allow-list, kept as inert data."""

    def __init__(self, module: str, name: str, args=(), state=None):
        self.module, self.name, self.args, self.state = module, name, tuple(args), state
        self.items: list = []
        self.dict_items: dict = {}

    def __setstate__(self, state):
        self.state = state

    def append(self, x):  # list subclasses
        self.items.append(x)

    def extend(self, xs):
        self.items.extend(xs)

    def __setitem__(self, k, v):  # dict subclasses
        self.dict_items[k] = v

    def __repr__(self):
        return f"Opaque({self.module}.{self.name})"


_OPAQUE_CLASSES: dict[tuple[str, str], type] = {}


def _opaque_class(module: str, name: str) -> type:
    """A stand-in type for `module.name` (pickle's NEWOBJ needs a real type) that records its inputs."""
    key = (module, name)
    if key not in _OPAQUE_CLASSES:

        def __new__(cls, *args, **_kw):
            obj = object.__new__(cls)
            Opaque.__init__(obj, module, name, args)
            return obj

        def __init__(self, *_args, **_kw):
            pass

        _OPAQUE_CLASSES[key] = type(name, (Opaque,), {"__new__": __new__, "__init__": __init__})
    return _OPAQUE_CLASSES[key]


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES.get(name)


class _Storage:
    """Raw bytes of one storage (None until read, in legacy files), its pickled type and its key."""

    def __init__(self, data: bytes | None, stype, key):
        self.data, self.stype, self.key = data, stype, key


def _storage_dtype(stype) -> np.dtype:
    """The element type of a storage type; TorchFileError for types outside `_STORAGE_DTYPES`."""
    if not isinstance(stype, _StorageType) or stype.dtype is None:
        raise TorchFileError(f"unsupported storage type {getattr(stype, 'name', stype)}")
    return np.dtype(stype.dtype)


def _tensor_dtype(storage: _Storage, dtype) -> np.dtype:
    """The element type of a tensor: its own pickled dtype (v3 tensors) or else its storage's."""
    if dtype is None:
        return _storage_dtype(storage.stype)
    if dtype not in _SUPPORTED_TENSOR_DTYPES:
        raise TorchFileError(f"unsupported tensor dtype {getattr(dtype, '__name__', dtype)}")
    return np.dtype(dtype)


def _check_view(storage: _Storage, numel: int, offset, size, stride) -> None:
    """Raise unless the view (offset, size, stride) lies inside a storage of `numel` elements."""
    size, stride = tuple(size), tuple(stride)
    where = f"tensor of size {size}, stride {stride}, offset {offset} in storage {storage.key}"
    if len(size) != len(stride) or not all(isinstance(d, int) and d >= 0 for d in (offset, *size, *stride)):
        raise TorchFileError(f"invalid {where}")
    if 0 in size:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= numel:
        raise TorchFileError(f"{where} needs {last + 1} elements, the storage holds {numel}; "
                             "the file is truncated or corrupt")


class _Deferred:
    """A tensor whose storage bytes come later in a legacy-format file."""

    def __init__(self, *args, **kw):
        self.args, self.kw = args, kw

    def build(self):
        return _rebuild_tensor(*self.args, **self.kw)


def _resolve(obj):
    if isinstance(obj, _Deferred):
        return obj.build()
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _resolve(obj[k])
        return obj
    if isinstance(obj, list):
        obj[:] = [_resolve(v) for v in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    if isinstance(obj, argparse.Namespace):
        for k, v in vars(obj).items():
            setattr(obj, k, _resolve(v))
    return obj


def _rebuild_tensor(storage: _Storage, offset, size, stride, *_rest, dtype=None):
    if storage.data is None:
        return _Deferred(storage, offset, size, stride, dtype=dtype)
    dt = _tensor_dtype(storage, dtype)
    flat = np.frombuffer(storage.data, dtype=dt, count=len(storage.data) // dt.itemsize)
    _check_view(storage, len(flat), offset, size, stride)
    if not size:
        return flat[offset].copy()
    itemsize = dt.itemsize
    arr = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.array(arr)  # own, contiguous copy


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *_):
    return _rebuild_tensor(storage, offset, size, stride, dtype=dtype)


def _rebuild_parameter(data, *_):
    return data


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


class _Unpickler(pickle.Unpickler):
    def __init__(self, fileobj, load_storage):
        super().__init__(fileobj)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str):
        if module == "torch._utils":
            if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
                return _rebuild_tensor
            if name == "_rebuild_tensor_v3":
                return _rebuild_tensor_v3
            if name == "_rebuild_parameter":
                return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if module == "torch.storage" and name in ("UntypedStorage", "_LegacyStorage", "TypedStorage"):
            return _StorageType(name)
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "argparse" and name == "Namespace":
            return argparse.Namespace
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("scalar", "_reconstruct"):
            return getattr(np.core.multiarray if hasattr(np, "core") else np._core.multiarray, name)
        if module == "numpy" and name in ("dtype", "ndarray"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":  # how protocol-2 pickles spell bytes
            return _codecs_encode
        if module == "builtins" and name in ("set", "frozenset", "slice", "complex", "tuple", "list", "dict"):
            return getattr(__import__("builtins"), name)
        return _opaque_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchFileError(f"unsupported persistent id {pid!r}")
        return self._load_storage(pid)


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy header and key-list pickles: plain data only, no global is ever resolved."""

    def find_class(self, module: str, name: str):
        raise TorchFileError(f"unexpected {module}.{name} in a plain-data pickle (not a torch.save file)")


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise TorchFileError("zip file without data.pkl (not a torch.save file)")
        root = pkl[0][: -len("data.pkl")]
        cache: dict[str, _Storage] = {}

        def load_storage(pid):
            _, stype, key, _location, _numel = pid[:5]
            if key not in cache:
                try:
                    raw = zf.read(f"{root}data/{key}")
                except KeyError as e:
                    raise TorchFileError(f"storage data/{key} is missing from the archive") from e
                cache[key] = _Storage(raw, stype, key)
            return cache[key]

        return _Unpickler(io.BytesIO(zf.read(pkl[0])), load_storage).load()


def _read_storage_bytes(f, storage: _Storage) -> bytes:
    """The raw bytes of one legacy-format storage: an int64 element count, then the elements."""
    (count,) = struct.unpack("<q", f.read(8))
    nbytes = count * _storage_dtype(storage.stype).itemsize
    if not 0 <= nbytes <= os.fstat(f.fileno()).st_size - f.tell():
        raise TorchFileError(f"file is truncated (storage {storage.key})")
    return f.read(nbytes)


def _load_legacy(path: Path) -> Any:
    with open(path, "rb") as f:
        if _PlainUnpickler(f).load() != _LEGACY_MAGIC:
            raise TorchFileError("not a torch.save file (bad magic number)")
        _PlainUnpickler(f).load()  # protocol version
        _PlainUnpickler(f).load()  # sys info
        storages: dict[str, _Storage] = {}

        def load_storage(pid):
            _, stype, key, _location, _numel, view = pid
            if view is not None:
                raise TorchFileError("storage views are not supported")
            return storages.setdefault(key, _Storage(None, stype, key))

        obj = _Unpickler(f, load_storage).load()
        for key in _PlainUnpickler(f).load():
            storages[key].data = _read_storage_bytes(f, storages[key])
        unread = sorted(k for k, st in storages.items() if st.data is None)
        if unread:
            raise TorchFileError(f"file is truncated (no data for storages {unread})")
        return _resolve(obj)


def load_torch_file(path: str | Path) -> Any:
    """Load a torch.save file into Python objects with numpy arrays in place of tensors.

    Raises:
      TorchFileError: naming the file, when it is truncated, corrupt or not a torch file.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        return _load_legacy(path)
    except TorchFileError as e:
        raise TorchFileError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, KeyError,
            ValueError, TypeError, AttributeError, IndexError, OSError) as e:
        raise TorchFileError(f"{path}: cannot read torch checkpoint ({type(e).__name__}: {e}); "
                             "the file is truncated, corrupt or not a torch.save file") from e


def to_plain(obj: Any) -> Any:
    """Turn Namespaces, OrderedDicts and `Opaque` records (e.g. omegaconf DictConfig) into plain data."""
    if isinstance(obj, argparse.Namespace):
        return {k: to_plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj) if isinstance(obj, list) else tuple(to_plain(v) for v in obj)
    if isinstance(obj, Opaque):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict, slots) pickles
        if isinstance(state, dict):
            if "_content" in state:  # omegaconf containers
                return to_plain(state["_content"])
            if "_val" in state:  # omegaconf value nodes
                return to_plain(state["_val"])
            if "_value_" in state:  # enums
                return to_plain(state["_value_"])
            return to_plain(state)
        if obj.dict_items:
            return to_plain(obj.dict_items)
        if obj.items:
            return to_plain(obj.items)
        if len(obj.args) == 1:
            return to_plain(obj.args[0])
        return None
    return obj
