"""`torchfile`: exact decoding of torch.save files, and refusal of malicious, truncated or unsupported ones."""

import pickle
import re
import zipfile

import numpy as np
import pytest
import torch

from xlmr_dynamics.torchfile import Opaque, TorchFileError, _rebuild_tensor, _Storage, _StorageType, load_torch_file

FORMATS = pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])


class _Touch:
    """Pickles as a call `open(marker, "w")`: creating the marker file proves the pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _save(obj, path, legacy):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _rewrite_zip(path, edit):
    """Rewrite the zip file at `path`, replacing each entry's bytes by `edit(name, data)`."""
    with zipfile.ZipFile(path) as zin:
        entries = [(n, zin.read(n)) for n in zin.namelist()]
    with zipfile.ZipFile(path, "w") as zout:
        for name, data in entries:
            zout.writestr(name, edit(name, data))


def _raises_naming(path, pattern):
    return pytest.raises(TorchFileError, match=re.escape(str(path)) + ".*" + pattern)


@FORMATS
def test_supported_tensors_decode_exactly(tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {
        "f32": base, "f16": base.half(), "i64": base.long(), "i8": base.to(torch.int8), "u8": base.to(torch.uint8),
        "bool": base > 5, "f64": base.double(), "transposed": base.t(), "offset_view": base[1:, 2:],
        "strided": base[:, ::2], "scalar": base[2, 3], "empty": base[4:], "bf16": base.bfloat16(),
    }
    got = load_torch_file(_save(tensors, tmp_path / "t.pt", legacy))
    for k, t in tensors.items():
        want = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        np.testing.assert_array_equal(np.asarray(got[k], dtype=want.dtype), want, err_msg=k)
        assert got[k].shape == want.shape, k
    assert str(got["bf16"].dtype) == "bfloat16"


@pytest.mark.parametrize("slot", [0, 1, 2, 4], ids=["magic", "protocol", "sys-info", "key-list"])
def test_legacy_header_pickles_are_never_executed(tmp_path, slot):
    marker = tmp_path / "executed"
    parts = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {"a": 1}, []]
    parts[slot] = _Touch(marker)
    path = tmp_path / "evil.pt"
    path.write_bytes(b"".join(pickle.dumps(p, protocol=2) for p in parts))
    with _raises_naming(path, "unexpected .*open"):
        load_torch_file(path)
    assert not marker.exists()


@FORMATS
def test_object_pickle_calls_become_inert_records(tmp_path, legacy):
    marker = tmp_path / "executed"
    path = _save({"w": torch.ones(2)}, tmp_path / "evil.pt", legacy)
    evil = pickle.dumps({"w": _Touch(marker)}, protocol=2)
    if legacy:  # magic, protocol, sys info are kept; object pickle replaced; empty key list
        with open(path, "rb") as f:
            header = [pickle.load(f) for _ in range(3)]
        path.write_bytes(b"".join(pickle.dumps(p, protocol=2) for p in header) + evil + pickle.dumps([]))
    else:
        _rewrite_zip(path, lambda name, data: evil if name.endswith("data.pkl") else data)
    got = load_torch_file(path)
    assert isinstance(got["w"], Opaque) and got["w"].args == (str(marker), "w")
    assert not marker.exists()


@pytest.mark.parametrize("view", ["whole", "offset"])
def test_truncated_zip_storage_is_named(tmp_path, view):
    full = torch.ones(100, 100)
    path = _save({"w": full if view == "whole" else full.view(-1)[5000:]}, tmp_path / "model.pt", False)
    _rewrite_zip(path, lambda name, data: data[:4000] if name.endswith("/data/0") else data)  # valid CRC
    with _raises_naming(path, "storage 0 needs \\d+ elements, the storage holds 1000; the file is truncated"):
        load_torch_file(path)


@pytest.mark.parametrize(
    "offset, size, stride",
    [(-1, (2,), (1,)), (0, (2,), (-1,)), (0, (2, 2), (1,)), (3, (), ()), (0, (2, 2), (2, 1)), (2.0, (1,), (1,))],
    ids=["negative-offset", "negative-stride", "rank-mismatch", "scalar-past-end", "past-end", "float-offset"],
)
def test_views_outside_their_storage_are_refused(offset, size, stride):
    storage = _Storage(np.zeros(3, np.float32).tobytes(), _StorageType("FloatStorage"), "7")
    with pytest.raises(TorchFileError, match="storage 7"):
        _rebuild_tensor(storage, offset, size, stride)


def test_legacy_storage_count_beyond_file_end_is_named(tmp_path):
    path = _save({"w": torch.ones(10)}, tmp_path / "model.pt", True)
    data = path.read_bytes()  # ends with the int64 element count, then 10 float32s
    assert data[-48:-40] == (10).to_bytes(8, "little")
    path.write_bytes(data[:-48] + (10**12).to_bytes(8, "little") + data[-40:])
    with _raises_naming(path, "file is truncated \\(storage "):
        load_torch_file(path)


@FORMATS
@pytest.mark.parametrize(
    "tensor, message",
    [
        (torch.tensor([1 + 2j, 3 + 4j], dtype=torch.complex64), "unsupported storage type ComplexFloatStorage"),
        (torch.tensor([1.0, 0.5]).to(torch.float8_e4m3fn), "unsupported tensor dtype float8_e4m3fn"),
        (torch.tensor([1, 2], dtype=torch.uint16), "unsupported tensor dtype uint16"),
    ],
    ids=["complex64", "float8_e4m3fn", "uint16"],
)
def test_unsupported_dtypes_are_named(tmp_path, legacy, tensor, message):
    path = _save({"x": tensor}, tmp_path / "odd.pt", legacy)
    with _raises_naming(path, message):
        load_torch_file(path)
