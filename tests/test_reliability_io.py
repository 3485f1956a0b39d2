"""Weight files are untrusted input: every hostile file found by the audit is refused with a
ValueError naming the file and the member or tensor, quickly and before anything large is
allocated; files written by the safetensors package (NumPy and PyTorch) read back exactly."""

import io
import json
import os
import pickle
import struct
import threading
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import torch
from numpy.lib import format as npy

import npconv
import npconv.io
import npconv.io_checks
import npconv.memory
from npconv.memory import AllocationRefused
from helpers import require

safetensors_numpy = require("safetensors.numpy", "the exact round trips with the safetensors package")
safetensors_torch = require("safetensors.torch", "the exact round trips with the safetensors package")
st_numpy_load, st_numpy_save = safetensors_numpy.load_file, safetensors_numpy.save_file
st_torch_load, st_torch_save = safetensors_torch.load_file, safetensors_torch.save_file

HANG_GUARD_S = 5.0  # not a speed test: a refusal takes milliseconds, the bugs took minutes or forever


# ---- helpers: hostile files built byte by byte ------------------------------------------
def npy_header(dtype: str, shape) -> bytes:
    header = io.BytesIO()
    npy.write_array_header_2_0(header, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return header.getvalue()


def zip_with(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _crc32_times_x8n(n: int) -> int:
    """x^(8n) mod the CRC-32 polynomial (bit-reflected), as zlib's crc32_combine computes it."""
    def multiply(a, b):
        product, bit = 0, 1 << 31
        while bit:
            if a & bit:
                product ^= b
            bit >>= 1
            b = (b >> 1) ^ 0xEDB88320 if b & 1 else b >> 1
        return product
    result, power = 1 << 31, 1 << 30
    for _ in range(3):
        power = multiply(power, power)
    while n:
        if n & 1:
            result = multiply(power, result)
        power, n = multiply(power, power), n >> 1
    return result, multiply


def crc32_then_zeros(prefix: bytes, zeros: int) -> int:
    """zlib.crc32(prefix + bytes(zeros)) without touching the zeros (4 GiB would take seconds)."""
    power, multiply = _crc32_times_x8n(zeros)
    return multiply(power, zlib.crc32(prefix) ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def zip64_member(path, name: str, deflated: bytes, crc: int, file_size: int, compress_size=None):
    """A one-member zip64 archive written by hand, so sizes of any magnitude (even lies) can be said."""
    compress_size = len(deflated) if compress_size is None else compress_size
    raw_name, extra = name.encode(), struct.pack("<HHQQ", 1, 16, file_size, compress_size)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                        len(raw_name), len(extra)) + raw_name + extra
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF,
                          0xFFFFFFFF, len(raw_name), len(extra), 0, 0, 0, 0, 0) + raw_name + extra
    cd_offset = len(local) + len(deflated)
    eocd64_offset = cd_offset + len(central)
    tail = (struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(central), cd_offset)
            + struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
            + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), 0xFFFFFFFF, 0))
    path.write_bytes(local + deflated + central + tail)
    return path


def zeros_bomb(path, gib: int):
    """``x.npy``: a float32 array of ``gib`` GiB of zeros, deflated to about 1/1000 of that,
    built from one compressed 16 MiB block repeated (each block stands alone after a full flush)."""
    header = npy_header("<f4", (gib << 28,))
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = head.compress(header) + head.flush(zlib.Z_FULL_FLUSH)
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = zeros.compress(bytes(1 << 24)) + zeros.flush(zlib.Z_FULL_FLUSH)
    deflated = first + block * (gib << 6) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return zip64_member(path, "x.npy", deflated, crc32_then_zeros(header, gib << 30), len(header) + (gib << 30))


def refused(path, *fragments, error=ValueError):
    """load(path) raises ``error`` quickly, with a small peak of traced memory, naming the file."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error) as caught:
            npconv.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < HANG_GUARD_S
    assert peak < 64 << 20, f"{peak} bytes were allocated before the refusal"
    message = str(caught.value)
    assert str(path) in message and all(f in message for f in fragments), message
    assert "Traceback" not in message
    return message


# ---- 1. .npz members that are not .npy arrays ----------------------------------------------
@pytest.mark.parametrize("data", [pickle.dumps({"evil": 1}), os.urandom(64), b""])
def test_npz_member_that_is_not_an_npy_is_refused(tmp_path, data):
    path = zip_with(tmp_path / "m.npz", {"x": data, "w.npy": npy_header("<f4", (1,)) + bytes(4)})
    refused(path, "member 'x'", "not an .npy array")


@pytest.mark.parametrize("data", [pickle.dumps(np.ones(3)), os.urandom(64), b"\x93NUMPY\x09\x00{}"])
def test_npz_member_named_npy_holding_other_bytes_is_refused(tmp_path, data):
    refused(zip_with(tmp_path / "m.npz", {"x.npy": data}), "member 'x.npy'")


def test_duplicate_npz_members_are_refused(tmp_path):
    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        for value in (1.0, 2.0):
            archive.writestr("w.npy", npy_header("<f8", ()) + np.float64(value).tobytes())
    refused(path, "member 'w.npy' appears 2 times")


# ---- 2. sizes: zip bombs and headers that lie --------------------------------------------
def test_zip_bomb_of_4_gib_zeros_is_refused_before_inflating(tmp_path):
    path = zeros_bomb(tmp_path / "bomb.npz", 4)
    assert path.stat().st_size < 8 << 20
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("x.npy").file_size > 4 << 30  # a real zip64 member of 4 GiB
    refused(path, "member 'x.npy'", "zip bomb", "100:1")


def test_compressed_small_members_still_load(tmp_path):
    path = tmp_path / "small.npz"
    np.savez_compressed(path, bias=np.zeros(1000, np.float32), w=np.arange(12.0).reshape(3, 4))
    loaded = npconv.load(path)
    np.testing.assert_array_equal(loaded["bias"], np.zeros(1000, np.float32))
    np.testing.assert_array_equal(loaded["w"], np.arange(12.0).reshape(3, 4))


def test_npy_header_claiming_hundreds_of_gib_is_refused(tmp_path):
    path = zip_with(tmp_path / "liar.npz", {"x.npy": npy_header("<f8", (50 << 30,)) + bytes(64)})
    refused(path, "member 'x.npy' holds", "but its header says shape [53687091200] of float64")


def test_zip_directory_lying_about_a_huge_member_is_refused_by_memory(tmp_path):
    header = npy_header("<f8", (50 << 30,))  # 400 GiB, declared consistently, deflate ratio kept 'honest'
    path = zip64_member(tmp_path / "huge.npz", "x.npy", zlib.compress(header)[2:-4], zlib.crc32(header),
                        len(header) + (400 << 30), compress_size=8 << 30)
    message = refused(path, "member 'x.npy'", "400 GiB", error=AllocationRefused)
    assert "more than the" in message


def test_arrays_that_together_exceed_memory_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(npconv.memory, "available_bytes", lambda: 3 << 20)
    monkeypatch.setattr(npconv.io_checks, "available_bytes", lambda: 3 << 20)
    path = tmp_path / "two.npz"
    npconv.save({"a": np.zeros(1 << 18), "b": np.zeros(1 << 18)}, path)  # 2 MiB each: each fits, not both
    refused(path, "its 2 arrays need 4194304 bytes", error=AllocationRefused)
    st = tmp_path / "two.safetensors"
    npconv.save({"a": np.zeros(1 << 18), "b": np.zeros(1 << 18)}, st)
    refused(st, "its 2 tensors need 4194304 bytes", error=AllocationRefused)


def test_truncated_member_data_is_refused(tmp_path):
    header = npy_header("<f4", (1000,))
    path = zip_with(tmp_path / "short.npz", {"x.npy": header + bytes(4000)})
    data = bytearray(path.read_bytes())
    data[data.index(header) + len(header) + 100] ^= 0xFF  # flip a byte: the CRC no longer matches
    path.write_bytes(bytes(data))
    refused(path, "is not a valid .npz file", "CRC")


# ---- 3. dtypes that are not numbers ---------------------------------------------------------
NON_NUMBERS = {
    "str": np.array(["a", "bc"]), "bytes": np.array([b"a", b"bc"]),
    "record": np.zeros(2, [("a", "<f4"), ("b", "<i4")]), "void": np.zeros(2, "V8"),
    "datetime": np.array(["2024-01-01"], "datetime64[D]"), "timedelta": np.array([1], "timedelta64[s]"),
    "longdouble": np.zeros(2, np.longdouble), "object": np.array([{"evil": 1}], dtype=object),
}


@pytest.mark.parametrize("kind", sorted(NON_NUMBERS))
def test_non_number_arrays_are_refused_on_load(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    np.savez(path, x=NON_NUMBERS[kind])
    if NON_NUMBERS[kind].dtype == np.float64:  # longdouble is float64 on some platforms: a number
        pytest.skip("longdouble is float64 here")
    refused(path, "member 'x.npy'", "not a number type")


@pytest.mark.parametrize("kind", sorted(NON_NUMBERS))
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_non_number_arrays_are_refused_on_save(tmp_path, kind, suffix):
    if NON_NUMBERS[kind].dtype == np.float64:
        pytest.skip("longdouble is float64 here")
    path = tmp_path / f"x{suffix}"
    path.write_bytes(b"previous contents")
    with pytest.raises(TypeError, match="object array|not a number type"):
        npconv.save({"x": NON_NUMBERS[kind]}, path)
    assert path.read_bytes() == b"previous contents"  # refused before the file was opened


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_every_number_dtype_round_trips(tmp_path, suffix):
    rng = np.random.default_rng(0)
    arrays = {np.dtype(t).name: (rng.standard_normal((2, 3)) * 50).astype(t) for t in
              (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
               np.float16, np.float32, np.float64, np.complex64) + ((np.complex128,) if suffix == ".npz" else ())}
    arrays["scalar"], arrays["empty"] = np.float32(3.5), np.zeros((0, 4), np.float64)
    npconv.save(arrays, tmp_path / f"all{suffix}")
    loaded = npconv.load(tmp_path / f"all{suffix}")
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == np.shape(value)
        np.testing.assert_array_equal(loaded[key], value)


def test_big_endian_and_fortran_npz_members_load_as_native_equal_arrays(tmp_path):
    value = np.arange(12.0).reshape(3, 4)
    np.savez(tmp_path / "m.npz", big=value.astype(">f8"), fortran=np.asfortranarray(value))
    loaded = npconv.load(tmp_path / "m.npz")
    assert loaded["big"].dtype == np.float64 and loaded["big"].dtype.isnative
    np.testing.assert_array_equal(loaded["big"], value)
    np.testing.assert_array_equal(loaded["fortran"], value)


def test_keys_that_clash_with_savez_keywords_round_trip(tmp_path):
    arrays = {"file": np.ones(2), "allow_pickle": np.zeros(2), "a/b": np.arange(3)}
    npconv.save(arrays, tmp_path / "k.npz")
    assert list(npconv.load(tmp_path / "k.npz")) == list(arrays)
    assert sorted(np.load(tmp_path / "k.npz").files) == sorted(arrays)  # still an ordinary .npz


def test_complex128_cannot_go_to_safetensors(tmp_path):
    with pytest.raises(TypeError, match="complex128 cannot be stored in .safetensors"):
        npconv.save({"z": np.ones(2, np.complex128)}, tmp_path / "z.safetensors")


# ---- 4. safetensors: read by npconv itself ----------------------------------------------------
TORCH_WIDENED = [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz,
                 torch.float8_e5m2fnuz]


@pytest.mark.parametrize("dtype", TORCH_WIDENED, ids=str)
def test_torch_low_precision_tensors_load_as_float32_bit_exactly(tmp_path, dtype):
    bits = 16 if dtype == torch.bfloat16 else 8
    every = torch.arange(2**bits, dtype=torch.int32)
    tensor = (every.to(torch.int16) if bits == 16 else every.to(torch.uint8)).view(dtype).reshape(-1, 16)
    path = tmp_path / "low.safetensors"
    st_torch_save({"w": tensor, "tail": tensor[:3, :5].contiguous()}, str(path))
    loaded = npconv.load(path)
    for name, want in (("w", tensor), ("tail", tensor[:3, :5])):
        assert loaded[name].dtype == np.float32 and loaded[name].shape == tuple(want.shape)
        np.testing.assert_array_equal(loaded[name].view(np.uint32), want.float().numpy().view(np.uint32))


def test_files_of_the_safetensors_numpy_api_load_and_ours_read_back_there(tmp_path):
    arrays = {"f64": np.linspace(-1, 1, 6).reshape(2, 3), "f16": np.arange(4, dtype=np.float16),
              "u64": np.array([2**64 - 1], np.uint64), "i8": np.array([-128, 127], np.int8),
              "bool": np.array([True, False]), "c64": np.array([1 + 2j], np.complex64)}
    st_numpy_save(arrays, str(tmp_path / "theirs.safetensors"))
    npconv.save(arrays, tmp_path / "ours.safetensors")
    for loaded in (npconv.load(tmp_path / "theirs.safetensors"), st_numpy_load(str(tmp_path / "ours.safetensors"))):
        for key, value in arrays.items():
            assert loaded[key].dtype == value.dtype
            np.testing.assert_array_equal(loaded[key], value)
    from_torch = st_torch_load(str(tmp_path / "ours.safetensors"))
    np.testing.assert_array_equal(from_torch["f64"].numpy(), arrays["f64"])


def safetensors_bytes(header, data=b"", length=None) -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text) if length is None else length) + text + data


ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
BAD_SAFETENSORS = [
    ("length beyond the file", safetensors_bytes({"w": ENTRY}, bytes(8), length=2**63), "header length"),
    ("length past the data", safetensors_bytes({"w": ENTRY}, bytes(8), length=10**6), "header length"),
    ("not json", safetensors_bytes(b"{nope", bytes(8)), "not valid JSON"),
    ("not utf-8", safetensors_bytes(b"\xff\xfe", bytes(8)), "not a valid"),
    ("json array", safetensors_bytes([1, 2], bytes(8)), "not an object"),
    ("deep json", safetensors_bytes(b"[" * 100000 + b"]" * 100000), "not a valid"),
    ("duplicate keys", safetensors_bytes(b'{"w": %s, "w": %s}' % ((json.dumps(ENTRY).encode(),) * 2), bytes(8)),
     "duplicate keys"),
    ("entry not an object", safetensors_bytes({"w": [1]}, bytes(8)), "tensor 'w': entry must be"),
    ("missing offsets", safetensors_bytes({"w": {"dtype": "F32", "shape": [2]}}, bytes(8)), "tensor 'w'"),
    ("unknown dtype", safetensors_bytes({"w": {**ENTRY, "dtype": "F8_E8M0"}}, bytes(8)), "unknown or unsupported dtype"),
    ("negative shape", safetensors_bytes({"w": {**ENTRY, "shape": [-2]}}, bytes(8)), "non-negative ints"),
    ("bool in shape", safetensors_bytes({"w": {**ENTRY, "shape": [True, 2]}}, bytes(8)), "non-negative ints"),
    ("float in shape", safetensors_bytes({"w": {**ENTRY, "shape": [2.0]}}, bytes(8)), "non-negative ints"),
    ("offsets past the buffer", safetensors_bytes({"w": {**ENTRY, "data_offsets": [0, 16]}}, bytes(8)),
     "end <= 8"),
    ("offsets reversed", safetensors_bytes({"w": {**ENTRY, "data_offsets": [8, 0]}}, bytes(8)), "begin <= end"),
    ("size mismatch", safetensors_bytes({"w": {**ENTRY, "shape": [3]}}, bytes(8)), "needs 12"),
    ("huge shape", safetensors_bytes({"w": {**ENTRY, "shape": [2**40, 2**40]}}, bytes(8)), "needs"),
    ("overlap", safetensors_bytes({"a": ENTRY, "b": {**ENTRY, "data_offsets": [4, 12]}}, bytes(12)), "overlap"),
    ("bool byte", safetensors_bytes({"w": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x07"),
     "BOOL bytes must be 0 or 1"),
    ("metadata not object", safetensors_bytes({"__metadata__": [1], "w": ENTRY}, bytes(8)), "__metadata__"),
    ("shorter than 8 bytes", b"\x01\x02", "shorter than the 8-byte header length"),
]


@pytest.mark.parametrize("content, fragment", [case[1:] for case in BAD_SAFETENSORS],
                         ids=[case[0] for case in BAD_SAFETENSORS])
def test_malformed_safetensors_are_refused_naming_the_problem(tmp_path, content, fragment):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    refused(path, "is not a valid .safetensors file", fragment)


def test_safetensors_metadata_is_accepted(tmp_path):
    path = tmp_path / "meta.safetensors"
    st_numpy_save({"w": np.ones(3, np.float32)}, str(path), metadata={"format": "np"})
    np.testing.assert_array_equal(npconv.load(path)["w"], np.ones(3, np.float32))


# ---- 5. paths that are not regular files ------------------------------------------------------
def test_directory_is_named_as_such(tmp_path):
    folder = tmp_path / "weights.npz"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        npconv.load(folder)
    with pytest.raises(ValueError, match="is a directory"):
        npconv.save({"w": np.ones(1)}, folder)


def _finishes(call) -> BaseException | None:
    """The exception ``call`` raised, failing (not hanging) when it blocks."""
    outcome = []

    def run():
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "blocked on the FIFO"
    return outcome[0] if outcome else None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_fifo_is_refused_without_blocking(tmp_path, suffix):
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    for call in (lambda: npconv.load(fifo), lambda: npconv.save({"w": np.ones(1)}, fifo)):
        error = _finishes(call)
        assert isinstance(error, ValueError) and "is not a regular file" in str(error), error
