"""Weight files: ``.safetensors`` and ``.npz``, read and written by npconv itself.

A weight file is untrusted input.  Loading one never unpickles, never blocks and never
allocates more than the file honestly holds:

* the path must be a regular file: a directory, FIFO or device is refused by name (it is
  opened non-blocking and checked with ``fstat`` before a byte is read);
* weights are numbers: bool, int8..int64, uint8..uint64, float16/32/64, complex64/128.
  Strings, bytes, records (structured), object, void, datetime and timedelta arrays are
  refused, on load (``ValueError``) and on save (``TypeError``);
* ``.npz``: every member must be an ``.npy`` file.  Each member's header is read first; its
  shape and dtype must account for the member's size in the zip exactly, and a member over
  1 MiB compressed more than 100:1 is refused as a zip bomb (weights do not compress like
  that: a zero-filled weight worth storing can be saved with :func:`save`, which never
  compresses).  Only then is the member read;
* ``.safetensors``: the header (at most 100 MB of JSON) is validated entry by entry: a known
  dtype, a shape of non-negative ints, data offsets inside the file that do not overlap and
  span exactly ``prod(shape) * itemsize`` bytes.  ``BF16``, ``F8_E4M3`` (PyTorch's
  ``float8_e4m3fn``), ``F8_E5M2`` and their ``FNUZ`` forms come back as float32 holding the
  same values exactly (bit for bit what PyTorch's ``.float()`` gives); ``C64`` as complex64;
  other safetensors dtypes (``F8_E8M0``, ``F4``, ``F6_*``) are refused;
* the arrays together must fit in the memory this process can use
  (:func:`npconv.memory.check_allocation`), checked before they are allocated.

Every refusal of a file raises ``ValueError`` naming the file, the member or tensor and the
rule (size refusals raise :class:`npconv.memory.AllocationRefused`, also a ``ValueError``); a
missing file raises ``FileNotFoundError``.  Arrays come back C- or Fortran-ordered as stored,
in native byte order.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
import zlib
from collections import Counter, OrderedDict
from pathlib import Path
from typing import IO, Mapping

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy

# the checks both formats share, and the .safetensors format: importable from here too
from .io_checks import READ_CHUNK, PathLike, _check_total, _invalid, _native, _read_exactly  # noqa: F401
from .io_safetensors import (MAX_SAFETENSORS_HEADER, SAFETENSORS_DTYPES, WIDENED_ITEMSIZE,  # noqa: F401
                             _read_safetensors, _write_safetensors, float8_table)
from .memory import check_allocation, human_bytes

FORMATS = (".safetensors", ".npz")
NUMBER_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.complex64, np.complex128))
ZIP_BOMB_RATIO = 100  # deflate reaches ~1000:1 on zeros; float weights barely compress
ZIP_BOMB_MIN_BYTES = 1 << 20  # small members (biases, zero inits) may compress as they like
NpyLayout = tuple[tuple[int, ...], bool, np.dtype, int]  # shape, fortran_order, dtype, nbytes


# ---- the API ---------------------------------------------------------------------------
def save(state_dict: Mapping[str, npt.ArrayLike], path: PathLike) -> None:
    """Write a state dict (name -> array) as .safetensors or .npz, chosen by the suffix.

    Nothing is pickled or compressed; PyTorch's ``safetensors.torch.load_file`` reads the
    .safetensors files, ``np.load`` the .npz ones.

    Parameters
    ----------
    state_dict : mapping of str to array_like
        ``module.state_dict()`` or any name -> numbers mapping.
    path : str or os.PathLike
        Ending in ``.safetensors`` or ``.npz``.

    Raises
    ------
    ValueError
        Another suffix; a path that is a directory, FIFO or device; a key the format cannot
        hold (a NUL in .npz, ``__metadata__`` in .safetensors).
    TypeError
        A key that is not a str; an array of strings, objects, records or other non-numbers;
        complex128 in .safetensors.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.safetensors")
    >>> save({"conv.weight": np.ones((2, 1, 3, 3), np.float32)}, path)
    >>> load(path)["conv.weight"].shape
    (2, 1, 3, 3)
    """
    kind = _format(path)
    arrays = _plain_arrays(state_dict, kind)
    with _open_regular(path, kind, write=True) as file:
        if kind == ".npz":
            _write_npz(file, arrays)
        else:
            _write_safetensors(file, arrays)


def load(path: PathLike) -> "OrderedDict[str, np.ndarray]":
    """Read a state dict written by :func:`save`, ``np.savez`` or any safetensors writer
    (PyTorch's included), never unpickling; see the module docstring for what is refused.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` or ``.npz`` file.

    Returns
    -------
    OrderedDict of str to numpy.ndarray
        In the file's order, native byte order.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Another suffix, a file that is not a regular one, or any content that breaks the
        format's rules (the message names the file, the member or tensor and the rule);
        :class:`npconv.memory.AllocationRefused` (a ValueError) when the arrays would not fit
        in memory.
    """
    kind = _format(path)
    with _open_regular(path, kind, write=False) as file:
        try:
            return _read_npz(file, path) if kind == ".npz" else _read_safetensors(file, path)
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
                RecursionError, UnicodeDecodeError) as error:  # what a damaged file makes the readers raise
            raise _invalid(path, kind, f"{type(error).__name__}: {error}") from None


# ---- paths and dtypes ------------------------------------------------------------------
def _format(path: PathLike) -> str:
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise ValueError(f"weight file {str(path)!r}: unknown format {suffix!r}, expected one of {FORMATS}")
    return suffix


def _open_regular(path: PathLike, kind: str, write: bool) -> IO[bytes]:
    """The file, opened only if it is a regular one.  A stat first, for a clear message; then
    the open is O_NONBLOCK, so that a FIFO put there meanwhile cannot block it, and fstat
    checks what was really opened."""
    try:
        _refuse_special(path, os.stat(path).st_mode, kind)
    except FileNotFoundError:
        if not write:
            raise FileNotFoundError(f"weight file {str(path)!r} does not exist") from None
    flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if write else os.O_RDONLY
    fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0), 0o666)
    try:
        _refuse_special(path, os.fstat(fd).st_mode, kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb" if write else "rb")


def _refuse_special(path: PathLike, mode: int, kind: str) -> None:
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
        raise ValueError(f"weight file {str(path)!r} is {what}, not a {kind} file")


def _number_dtype_problem(dtype: np.dtype) -> str | None:
    """Why ``dtype`` cannot be a weight, or None when it can (byte order aside)."""
    if dtype.newbyteorder("=") in NUMBER_DTYPES:
        return None
    return (f"dtype {dtype.str} ({dtype}) is not a number type; weight files hold bool, int, uint, "
            f"float16/32/64 or complex64/128 arrays only")


def _plain_arrays(state_dict: Mapping[str, npt.ArrayLike], kind: str) -> dict[str, np.ndarray]:
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r}")
        if kind == ".npz" and "\0" in key:
            raise ValueError(f"state_dict key {key!r}: a zip member name cannot hold a NUL character")
        if kind == ".safetensors" and key == "__metadata__":
            raise ValueError("state_dict key '__metadata__' is reserved by the .safetensors format")
        array = np.asarray(value)
        if kind == ".safetensors" and array.dtype == np.complex128:
            raise TypeError(f"state_dict[{key!r}]: complex128 cannot be stored in .safetensors (it has "
                            f"complex64 only): use .npz, or complex64")
        if array.dtype == object:
            raise TypeError(f"state_dict[{key!r}] is an object array; weight files hold numbers only")
        problem = _number_dtype_problem(array.dtype)
        if problem:
            raise TypeError(f"state_dict[{key!r}]: {problem}")
        arrays[key] = np.asarray(array, order="C").view(np.ndarray)  # not ascontiguousarray: 0-d stays 0-d
    return arrays


# ---- .npz ------------------------------------------------------------------------------
def _read_npz(file: IO[bytes], path: PathLike) -> "OrderedDict[str, np.ndarray]":
    with zipfile.ZipFile(file) as archive:
        members = archive.infolist()
        counts = Counter(info.filename for info in members)
        for info in members:
            if not info.filename.endswith(".npy"):
                raise _invalid(path, ".npz", f"member {info.filename!r} is not an .npy array "
                                             "(a .npz file holds only .npy members)")
            if counts[info.filename] > 1:
                raise _invalid(path, ".npz", f"member {info.filename!r} appears {counts[info.filename]} times")
        layouts = [_npy_layout(archive, info, path) for info in members]
        _check_total(path, f"its {len(members)} arrays", sum(nbytes for _, _, _, nbytes in layouts))
        return OrderedDict((info.filename[:-4], _npy_data(archive, info, layout, path))
                           for info, layout in zip(members, layouts))


def _npy_layout(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: PathLike) -> NpyLayout:
    """(shape, fortran_order, dtype, nbytes) of one member, from its header, checked against
    the member's size in the zip before any of its data is read."""
    where = f"member {info.filename!r}"
    with archive.open(info) as stream:
        shape, fortran, dtype = _npy_header(stream, path, where)
        header_bytes = stream.tell()
    problem = _number_dtype_problem(dtype)
    if problem:
        raise _invalid(path, ".npz", f"{where}: {problem}")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != header_bytes + nbytes:
        raise _invalid(path, ".npz", f"{where} holds {info.file_size} bytes, but its header says shape "
                                     f"{list(shape)} of {dtype} ({nbytes} bytes) after {header_bytes} header bytes")
    if info.file_size > ZIP_BOMB_MIN_BYTES and info.file_size > ZIP_BOMB_RATIO * max(info.compress_size, 1):
        raise _invalid(path, ".npz", f"{where} inflates {info.compress_size} bytes to {info.file_size} "
                                     f"({human_bytes(info.file_size)}), more than {ZIP_BOMB_RATIO}:1: refused as "
                                     f"a zip bomb")
    check_allocation(f"weight file {str(path)!r} {where}", shape, dtype)
    return shape, fortran, dtype, nbytes


def _npy_header(stream: IO[bytes], path: PathLike, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = npy.read_magic(stream)
        if version not in ((1, 0), (2, 0)):  # 3.0 exists only for records with unicode field names
            raise ValueError(f"unsupported .npy format version {version}")
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read(stream)
    except ValueError as error:
        raise _invalid(path, ".npz", f"{where}: {error}") from None
    if any(not isinstance(v, int) or v < 0 for v in shape):
        raise _invalid(path, ".npz", f"{where}: shape {shape} must hold non-negative ints")
    return shape, fortran, dtype


def _npy_data(archive: zipfile.ZipFile, info: zipfile.ZipInfo, layout: NpyLayout, path: PathLike) -> np.ndarray:
    shape, fortran, dtype, nbytes = layout
    where = f"weight file {str(path)!r} member {info.filename!r}"
    with archive.open(info) as stream:
        stream.seek(info.file_size - nbytes)  # past the header, read and checked by _npy_layout
        raw = _read_exactly(stream, nbytes, where)
        if stream.read(1):  # also makes zipfile check the CRC at the end of the member
            raise ValueError(f"{where}: more data than its header says")
    return _native(raw.view(dtype).reshape(shape, order="F" if fortran else "C"))


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """What np.savez writes, without its keyword clash (a key named 'file' or 'allow_pickle')."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                npy.write_array(member, array, allow_pickle=False)
