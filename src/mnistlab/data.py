"""MNIST and Fashion-MNIST, found or downloaded, always verified.

Where the four IDX files come from, in order:

1. an explicit folder (`data_dir=`, the CLI's `--data-dir`): the four IDX
   files, gzip or raw, or a Keras-style `mnist.npz`;
2. the folder in the environment variable `MNISTLAB_DATA_DIR`;
3. the user cache folder (`MNISTLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/mnistlab`,
   else `~/.cache/mnistlab`);
4. for Fashion-MNIST, Debian's `dataset-fashion-mnist` folder;
5. a download into the cache (see `mnistlab.download`).

Whatever the source, the data is checked before it is used: IDX magic numbers,
dimensions, counts, label range and the MD5 of each uncompressed file against
the canonical value. Any failure raises `MnistlabError` naming the file.

    >>> from mnistlab import data
    >>> ds = data.load("mnist")
    >>> x_tr, y_tr, x_val, y_val = data.split_validation(ds.x_train, ds.y_train, 0.1, seed=0)
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mnistlab.errors import MnistlabError

# role -> (file name, IDX type code 0x08=ubyte, number of dimensions)
_ROLES = {
    "x_train": ("train-images-idx3-ubyte", 3),
    "y_train": ("train-labels-idx1-ubyte", 1),
    "x_test": ("t10k-images-idx3-ubyte", 3),
    "y_test": ("t10k-labels-idx1-ubyte", 1),
}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a data set must look like and where it can be fetched from.

    Args:
        name: the name users pass (`mnist`, `fashion_mnist`).
        md5: MD5 of each *uncompressed* IDX file, by role.
        counts: the number of items in the training and test files.
        mirrors: base URLs, tried in order; each serves `<file name>.gz`.
        system_dirs: folders a system package installs the files into.
        class_names: a readable name per label.
    """

    name: str
    md5: dict
    mirrors: tuple
    counts: dict = dataclasses.field(default_factory=lambda: {"train": 60000, "test": 10000})
    system_dirs: tuple = ()
    class_names: tuple = tuple(str(i) for i in range(10))


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        md5={
            "x_train": "6bbc9ace898e44ae57da46a324031adb",
            "y_train": "a25bea736e30d166cdddb491f175f624",
            "x_test": "2646ac647ad5339dbf082846283269ea",
            "y_test": "27ae3e4e09519cfbb04c329615203637",
        },
        # torchvision's primary host, then the copy TensorFlow's tutorials used.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        # Zalando publishes MD5s of its .gz files only; these are of the
        # uncompressed files, read off Debian's dataset-fashion-mnist package
        # (whose label counts are the expected 6000/1000 per class).
        md5={
            "x_train": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "y_train": "9018921c3c673c538a1fc5bad174d6f9",
            "x_test": "8181f5470baa50b63fa0f6fddb340f0a",
            "y_test": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        # Keras' host, then Zalando's own.
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        class_names=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
    ),
}


@dataclasses.dataclass
class Dataset:
    """Images as uint8 (N, 28, 28), labels as uint8 (N,), and where they came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    class_names: tuple


def spec(name: str) -> DatasetSpec:
    """The `DatasetSpec` for `name`, or a clear error listing the known ones."""
    if name not in DATASETS:
        raise MnistlabError(
            f"unknown dataset {name!r}: choose one of {', '.join(sorted(DATASETS))}"
        )
    return DATASETS[name]


def cache_dir() -> Path:
    """The user cache folder that downloads go into."""
    if os.environ.get("MNISTLAB_CACHE_DIR"):
        return Path(os.environ["MNISTLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnistlab"


# ---------------------------------------------------------------- IDX parsing


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
    _, ndim = _ROLES[role]
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
    array = parse_idx(raw, str(path), _ROLES[role][1])
    check_array(role, array, str(path))
    return array


# --------------------------------------------------------------- folders


def _idx_path(folder: Path, role: str) -> Path | None:
    stem = _ROLES[role][0]
    for candidate in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def load_folder(folder, name: str = "mnist", verify: bool | None = None) -> Dataset:
    """Load a data set from a folder of IDX files (gzip or raw) or a `<name>.npz`.

    Args:
        folder: the folder to read.
        name: which data set it must be (its checksums are checked).
        verify: check the canonical MD5s and counts. Default: yes, unless the
            environment variable `MNISTLAB_SKIP_MD5=1` is set (for tests and
            home-made data in the same format; structure is still checked).
    """
    if verify is None:
        verify = os.environ.get("MNISTLAB_SKIP_MD5") != "1"
    folder = Path(folder)
    ds_spec = spec(name)
    if not folder.is_dir():
        raise MnistlabError(
            f"data folder {folder} does not exist: pass a folder holding the four "
            "MNIST IDX files (or mnist.npz)"
        )
    paths = {role: _idx_path(folder, role) for role in _ROLES}
    if all(paths.values()):
        arrays = {
            role: read_idx(path, role, ds_spec if verify else None)
            for role, path in paths.items()
        }
        source = str(folder)
    else:
        npz = next((p for p in (folder / f"{name}.npz", folder / "mnist.npz") if p.is_file()), None)
        if npz is None:
            missing = [_ROLES[r][0] + "[.gz]" for r, p in paths.items() if p is None]
            raise MnistlabError(
                f"{folder} is missing {', '.join(missing)}: put the four IDX files "
                f"(or {name}.npz) there, or leave out --data-dir to use the cache/download"
            )
        arrays = _load_npz(npz, ds_spec if verify else None)
        source = str(npz)
    for part in ("train", "test"):
        if len(arrays["x_" + part]) != len(arrays["y_" + part]):
            raise MnistlabError(
                f"{source}: {len(arrays['x_' + part])} {part} images but "
                f"{len(arrays['y_' + part])} labels"
            )
    return Dataset(name=name, source=source, class_names=ds_spec.class_names, **arrays)


def _load_npz(path: Path, ds_spec: DatasetSpec | None) -> dict:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {role: np.asarray(npz[role]) for role in _ROLES}
    except KeyError:
        raise MnistlabError(
            f"{path} lacks one of the arrays a Keras-style npz holds (x_train, y_train, x_test, y_test)"
        ) from None
    except Exception as e:  # zipfile/pickle/format errors all mean the same thing here
        raise MnistlabError(f"{path} is not a readable npz file ({e}); download it again") from None
    for role, array in arrays.items():
        if array.dtype != np.uint8:
            raise MnistlabError(f"{path}: {role} has dtype {array.dtype}, expected uint8")
        check_array(role, array, f"{path}[{role}]", ds_spec)
    return arrays


def load(name: str = "mnist", data_dir=None, download: bool = True, mirrors=None) -> Dataset:
    """Find (or download) and load a verified data set. See the module docstring.

    Args:
        name: `mnist` or `fashion_mnist`.
        data_dir: an explicit folder; when given, nothing else is tried.
        download: allow downloading into the cache when nothing is found.
        mirrors: override the spec's download mirrors (base URLs).
    """
    ds_spec = spec(name)
    if data_dir is not None:
        return load_folder(data_dir, name)
    env_dir = os.environ.get("MNISTLAB_DATA_DIR")
    if env_dir:
        return load_folder(env_dir, name)
    cached = cache_dir() / name
    for folder in (cached, *map(Path, ds_spec.system_dirs)):
        if folder.is_dir() and all(_idx_path(folder, role) for role in _ROLES):
            return load_folder(folder, name)
    if not download:
        raise MnistlabError(
            f"{name} not found in {cached} and downloading is off: pass --data-dir "
            "or set MNISTLAB_DATA_DIR to a folder of the four IDX files"
        )
    from mnistlab.download import download_dataset

    download_dataset(ds_spec, cached, mirrors=mirrors)
    return load_folder(cached, name)


# ------------------------------------------------------------ splitting


def split_validation(x, y, fraction: float = 0.1, seed: int = 0):
    """A seeded, stratified validation split of a training set.

    Returns `(x_train, y_train, x_val, y_val)`. The test set never enters here:
    it is for the final evaluation only.
    """
    if not 0 < fraction < 1:
        raise MnistlabError(f"validation fraction must be between 0 and 1, got {fraction}")
    from sklearn.model_selection import train_test_split

    try:
        x_tr, x_val, y_tr, y_val = train_test_split(
            x, y, test_size=fraction, random_state=seed, stratify=y
        )
    except ValueError as e:
        raise MnistlabError(f"cannot split {len(y)} examples with fraction {fraction}: {e}") from None
    return x_tr, y_tr, x_val, y_val


def shift_augment(x, y):
    """The seed's offline augmentation: every image plus copies shifted one pixel up, down, left, right.

    Returns `(x5, y5)` with five times the examples: the originals first, then
    each direction in turn (pixels shifted in from the border are 0). Labels
    follow their images. Apply it to the training split only, after the
    validation split, or shifted copies of validation digits leak into training.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3 or len(x) != len(y):
        raise MnistlabError(f"shift_augment wants (N, H, W) images and N labels, got {x.shape} and {y.shape}")
    copies = [x]
    for axis, step in ((1, -1), (1, 1), (2, -1), (2, 1)):  # up, down, left, right
        moved = np.roll(x, step, axis=axis)
        edge = [slice(None)] * 3
        edge[axis] = -1 if step == -1 else 0
        moved[tuple(edge)] = 0
        copies.append(moved)
    return np.concatenate(copies), np.concatenate([y] * 5)
