"""`load`: MNIST or Fashion-MNIST, found or downloaded, always verified.

Where the four IDX files come from, in order:

1. an explicit folder (`data_dir=`, the CLI's `--data-dir`): the four IDX
   files, gzip or raw, or a Keras-style `mnist.npz`;
2. the folder in the environment variable `MNISTLAB_DATA_DIR`;
3. the user cache folder (`MNISTLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/mnistlab`,
   else `~/.cache/mnistlab`);
4. for Fashion-MNIST, Debian's `dataset-fashion-mnist` folder;
5. a download into the cache (see `mnistlab.data.download`).

Whatever the source, the data is checked before it is used: IDX magic numbers,
dimensions, counts, label range and the MD5 of each uncompressed file against
the canonical value. Any failure raises `MnistlabError` naming the file.

    >>> from mnistlab import data
    >>> ds = data.load("mnist")
    >>> x_tr, y_tr, x_val, y_val = data.split_validation(ds.x_train, ds.y_train, 0.1, seed=0)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnistlab.data.idx import ROLES, check_array, read_idx
from mnistlab.data.sources import Dataset, DatasetSpec, cache_dir, spec
from mnistlab.errors import MnistlabError


def _idx_path(folder: Path, role: str) -> Path | None:
    stem = ROLES[role][0]
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
    paths = {role: _idx_path(folder, role) for role in ROLES}
    if all(paths.values()):
        arrays = {
            role: read_idx(path, role, ds_spec if verify else None)
            for role, path in paths.items()
        }
        source = str(folder)
    else:
        npz = next((p for p in (folder / f"{name}.npz", folder / "mnist.npz") if p.is_file()), None)
        if npz is None:
            missing = [ROLES[r][0] + "[.gz]" for r, p in paths.items() if p is None]
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
            arrays = {role: np.asarray(npz[role]) for role in ROLES}
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
        if folder.is_dir() and all(_idx_path(folder, role) for role in ROLES):
            return load_folder(folder, name)
    if not download:
        raise MnistlabError(
            f"{name} not found in {cached} and downloading is off: pass --data-dir "
            "or set MNISTLAB_DATA_DIR to a folder of the four IDX files"
        )
    from mnistlab.data.download import download_dataset

    download_dataset(ds_spec, cached, mirrors=mirrors)
    return load_folder(cached, name)
