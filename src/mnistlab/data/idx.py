"""The IDX files MNIST ships as: read, parse, check, write.

Every array is checked before it is used: the IDX magic number and dimensions,
the item count, the label range and the MD5 of the uncompressed file against
the canonical value (`DatasetSpec.md5`). A failure raises `MnistlabError`
naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnistlab.errors import MnistlabError

if TYPE_CHECKING:
    from mnistlab.data.sources import DatasetSpec

# role -> (file name, IDX type code 0x08=ubyte, number of dimensions)
ROLES = {
    "x_train": ("train-images-idx3-ubyte", 3),
    "y_train": ("train-labels-idx1-ubyte", 1),
    "x_test": ("t10k-images-idx3-ubyte", 3),
    "y_test": ("t10k-labels-idx1-ubyte", 1),
}


def read_file_bytes(path: Path) -> bytes:
    """The uncompressed bytes of `path`, which may be gzip-compressed."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MnistlabError(f"cannot read {path}: {e.strerror}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise MnistlabError(
            f"{path} is a damaged gzip file ({e or 'truncated'}); "
            "delete it and download it again, or point --data-dir at a good copy"
        ) from None


def parse_idx(data: bytes, where: str, ndim: int) -> np.ndarray:
    """Parse IDX bytes of unsigned bytes with `ndim` dimensions, checking the header."""
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise MnistlabError(f"{where} is too short to be an IDX file ({len(data)} bytes)")
    zero, type_code, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code != 0x08 or dims != ndim:
        raise MnistlabError(
            f"{where} has IDX magic number 0x{data[:4].hex()} but an unsigned-byte file "
            f"with {ndim} dimension(s) (0x000008{ndim:02x}) was expected: wrong or corrupt file"
        )
    shape = struct.unpack(">" + "I" * ndim, data[4:header_len])
    expected = header_len + int(np.prod(shape))
    if len(data) != expected:
        raise MnistlabError(
            f"{where} holds {len(data)} bytes but its header {shape} says {expected}: "
            "the file is truncated or corrupt; download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """Inverse of `parse_idx`: the IDX file for a uint8 array (used to write test data
    and to check the MD5 of arrays that came from an npz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    return header + array.tobytes()


def check_array(role: str, array: np.ndarray, where: str, ds_spec: DatasetSpec | None = None) -> None:
    """Dimensions and label range; with `ds_spec`, also its counts and canonical MD5.

    The MD5 is taken over the IDX file the array makes, so arrays from an npz
    are held to the same checksum as the original files.
    """
    _, ndim = ROLES[role]
    if array.ndim != ndim or (ndim == 3 and array.shape[1:] != (28, 28)):
        raise MnistlabError(
            f"{where}: expected {'(N, 28, 28) images' if ndim == 3 else '(N,) labels'}, "
            f"found shape {array.shape}"
        )
    if ndim == 1 and array.size and array.max() > 9:
        raise MnistlabError(f"{where}: label {int(array.max())} is outside 0-9: corrupt file")
    if ds_spec is None:
        return
    count = ds_spec.counts[role.split("_")[1]]
    if len(array) != count:
        raise MnistlabError(f"{where}: expected {count} items, found {len(array)}: incomplete file")
    _check_md5(idx_bytes(array), where, ds_spec.md5[role])


def _check_md5(raw: bytes, where: str, expected: str) -> None:
    digest = hashlib.md5(raw).hexdigest()
    if digest != expected:
        raise MnistlabError(
            f"{where}: MD5 of the uncompressed file is {digest}, expected {expected}: "
            "the file is corrupt or not the original; delete it and download it again"
        )


def read_idx(path: Path, role: str, ds_spec: DatasetSpec | None = None) -> np.ndarray:
    """Read and check one IDX file (gzip or raw); `ds_spec` adds counts and MD5."""
    raw = read_file_bytes(path)
    if ds_spec is not None:  # checked first: a wrong file fails with the clearest message
        _check_md5(raw, str(path), ds_spec.md5[role])
    array = parse_idx(raw, str(path), ROLES[role][1])
    check_array(role, array, str(path))
    return array

