"""The ``.safetensors`` format for :mod:`npconv.io`: the header validated entry by entry, the
tensors read (``BF16`` and the float8 dtypes widened to float32 exactly, :func:`float8_table`),
and written as the safetensors package writes them (see :mod:`npconv.io`'s docstring for the rules).
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from typing import IO, Any, Mapping

import numpy as np

from .io_checks import PathLike, _check_total, _invalid, _native, _read_exactly

MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors package's own limit
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                      "I8": "|i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "|u1", "BOOL": "|b1",
                      "C64": "<c8"}
TensorLayout = tuple[str, tuple[int, ...], int, int]  # dtype code, shape, begin, end
WIDENED_ITEMSIZE = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1}


def _read_safetensors(file: IO[bytes], path: PathLike) -> "OrderedDict[str, np.ndarray]":
    size = os.fstat(file.fileno()).st_size
    header, data_start = _safetensors_header(file, path, size)
    layouts = OrderedDict((name, _tensor_layout(path, name, entry, size - data_start))
                          for name, entry in header.items())
    _check_no_overlap(path, layouts)
    _check_total(path, f"its {len(layouts)} tensors", sum(_loaded_nbytes(code, shape) for code, shape, _, _
                                                         in layouts.values()))
    tensors: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, (code, shape, begin, end) in layouts.items():
        file.seek(data_start + begin)
        raw = _read_exactly(file, end - begin, f"weight file {str(path)!r} tensor {name!r}")
        tensors[name] = _decode(path, name, code, shape, raw)
    return tensors


def _safetensors_header(file: IO[bytes], path: PathLike, size: int) -> tuple[dict[str, Any], int]:
    """The header's tensor entries (``__metadata__`` checked and dropped) and where data starts."""
    if size < 8:
        raise _invalid(path, ".safetensors", f"{size} bytes, shorter than the 8-byte header length")
    length = int.from_bytes(file.read(8), "little")
    if length > min(size - 8, MAX_SAFETENSORS_HEADER):
        raise _invalid(path, ".safetensors", f"header length {length} exceeds the {size - 8} bytes after it "
                                             f"(or the {MAX_SAFETENSORS_HEADER}-byte limit)")
    try:
        header = json.loads(file.read(length).decode("utf-8"), object_pairs_hook=_unique_keys)
    except ValueError as error:  # JSONDecodeError, duplicate keys
        raise _invalid(path, ".safetensors", f"header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise _invalid(path, ".safetensors", f"header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict):
        raise _invalid(path, ".safetensors", "__metadata__ must be a JSON object")
    return header, 8 + length


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def _tensor_layout(path: PathLike, name: str, entry: object, buffer_len: int) -> TensorLayout:
    """(dtype code, shape, begin, end) of one header entry, every field checked."""
    def bad(reason: str) -> ValueError:
        return _invalid(path, ".safetensors", f"tensor {name!r}: {reason}")
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise bad(f"entry must be an object with dtype, shape and data_offsets, got {entry!r:.200}")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if code not in SAFETENSORS_DTYPES and code not in WIDENED_ITEMSIZE:
        known = sorted(SAFETENSORS_DTYPES) + sorted(WIDENED_ITEMSIZE)
        raise bad(f"unknown or unsupported dtype {code!r:.50}; known: {', '.join(known)}")
    if not isinstance(shape, list) or any(type(v) is not int or v < 0 for v in shape):
        raise bad(f"shape must be a list of non-negative ints, got {shape!r:.200}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or any(type(v) is not int for v in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= buffer_len):
        raise bad(f"data_offsets must be [begin, end] with 0 <= begin <= end <= {buffer_len} (the data "
                  f"buffer's size), got {offsets!r:.200}")
    itemsize = WIDENED_ITEMSIZE.get(code) or np.dtype(SAFETENSORS_DTYPES[code]).itemsize
    needed = math.prod(shape) * itemsize
    if offsets[1] - offsets[0] != needed:
        raise bad(f"data_offsets {offsets} span {offsets[1] - offsets[0]} bytes, shape {shape} of {code} "
                  f"needs {needed}")
    return code, tuple(shape), offsets[0], offsets[1]


def _check_no_overlap(path: PathLike, layouts: Mapping[str, TensorLayout]) -> None:
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in layouts.items() if end > begin)
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise _invalid(path, ".safetensors", f"tensors {first!r} and {second!r} overlap in the data buffer")


def _loaded_nbytes(code: str, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * (4 if code in WIDENED_ITEMSIZE else np.dtype(SAFETENSORS_DTYPES[code]).itemsize)


def _decode(path: PathLike, name: str, code: str, shape: tuple[int, ...], raw: np.ndarray) -> np.ndarray:
    if code == "BF16":  # bfloat16 is float32's top half: shifting the bits back is exact
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if code in WIDENED_ITEMSIZE:  # float8: a table of the 256 values, as bits (NaN payloads kept)
        return float8_table(code)[raw].view(np.float32).reshape(shape)
    if code == "BOOL" and raw.size and raw.max() > 1:
        raise _invalid(path, ".safetensors", f"tensor {name!r}: BOOL bytes must be 0 or 1, found {raw.max()}")
    return _native(raw.view(SAFETENSORS_DTYPES[code]).reshape(shape))


# (exponent bits, mantissa bits, bias, NaN/inf convention) of each float8 safetensors dtype
FLOAT8_FORMATS = {"F8_E4M3": (4, 3, 7, "fn"), "F8_E5M2": (5, 2, 15, "ieee"),
                  "F8_E4M3FNUZ": (4, 3, 8, "fnuz"), "F8_E5M2FNUZ": (5, 2, 16, "fnuz")}
_FLOAT8_TABLES: dict[str, np.ndarray] = {}


def float8_table(code: str) -> np.ndarray:
    """The float32 bit patterns (uint32) of the 256 values of a float8 format, as PyTorch's
    ``.float()`` gives them: fn (e4m3fn): no infinities, S.1111.111 is NaN; ieee (e5m2):
    exponent all ones is inf (mantissa 0) or a quiet NaN; fnuz: 0x80 is the only NaN.

    Parameters
    ----------
    code : str
        A safetensors float8 dtype: ``F8_E4M3``, ``F8_E5M2``, ``F8_E4M3FNUZ`` or ``F8_E5M2FNUZ``.

    Returns
    -------
    numpy.ndarray
        (256,) uint32, read-only: entry b is the float32 bits of byte b's value.

    Raises
    ------
    KeyError
        Another code.

    Examples
    --------
    >>> float8_table("F8_E4M3")[[0x38, 0x7F]].view(np.float32)
    array([ 1., nan], dtype=float32)
    """
    if code not in _FLOAT8_TABLES:
        exp_bits, man_bits, bias, kind = FLOAT8_FORMATS[code]
        table = np.array([_float8_bits(byte, exp_bits, man_bits, bias, kind) for byte in range(256)], np.uint32)
        table.flags.writeable = False
        _FLOAT8_TABLES[code] = table
    return _FLOAT8_TABLES[code]


def _float8_bits(byte: int, exp_bits: int, man_bits: int, bias: int, kind: str) -> int:
    sign, exponent, mantissa = byte >> 7, (byte >> man_bits) & ((1 << exp_bits) - 1), byte & ((1 << man_bits) - 1)
    top = (1 << exp_bits) - 1
    nan_payload = mantissa << (23 - man_bits)
    if kind == "fnuz" and byte == 0x80:
        return 0x7F800001  # PyTorch's pattern for the fnuz NaN
    if kind == "fn" and exponent == top and mantissa == (1 << man_bits) - 1:
        return (sign << 31) | 0x7F800000 | nan_payload
    if kind == "ieee" and exponent == top:
        return (sign << 31) | 0x7F800000 | (0x400000 | nan_payload if mantissa else 0)
    magnitude = (math.ldexp(mantissa, 1 - bias - man_bits) if exponent == 0
                 else math.ldexp((1 << man_bits) | mantissa, exponent - bias - man_bits))
    return int(np.array(-magnitude if sign else magnitude, np.float32).view(np.uint32))


def _write_safetensors(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """Widest dtype first, then by name (as the safetensors package orders them), so every
    tensor starts aligned; the header is padded with spaces to a multiple of 8 bytes."""
    codes = {np.dtype(v): k for k, v in SAFETENSORS_DTYPES.items()}
    header: dict[str, Any] = {}
    offset, order = 0, sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    for key in order:
        little = arrays[key].astype(arrays[key].dtype.newbyteorder("<"), copy=False)
        arrays[key] = little
        header[key] = {"dtype": codes[little.dtype], "shape": list(little.shape), "data_offsets": [offset, offset + little.nbytes]}
        offset += little.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    file.write(len(text).to_bytes(8, "little") + text)
    for key in order:
        file.write(arrays[key].reshape(-1).view(np.uint8).data)
