"""Shared fixtures: small IDX data sets made here, and the real MNIST when available."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data import idx_bytes

REPO = Path(__file__).resolve().parents[1]
# Read once at import: the autouse fixture below removes it from each test's environment.
_DATA_DIR_ENV = os.environ.get("MNISTLAB_DATA_DIR")


def real_mnist_dir() -> Path | None:
    """$MNISTLAB_DATA_DIR, else ../shared/data/mnist beside the repo, else None."""
    for candidate in (_DATA_DIR_ENV, REPO.parent / "shared" / "data" / "mnist"):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    return None


def synthetic_digits(n: int, seed: int = 0):
    """`n` 28x28 uint8 images of 10 easily told-apart patterns, with noise and jitter.

    Class k is a bright bar at an angle and position that depends on k, so a
    small model learns it in a few epochs: enough to test training end to end.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.float32)
    for i, k in enumerate(y):
        dx, dy = rng.integers(-1, 2, size=2)
        if k < 5:  # horizontal bars at five heights
            r = 4 + 5 * k + dy
            x[i, r : r + 3, 4 + dx : 24 + dx] = 255
        else:  # vertical bars at five columns
            c = 4 + 5 * (k - 5) + dx
            x[i, 4 + dy : 24 + dy, c : c + 3] = 255
    return x.clip(0, 255).astype(np.uint8), y.astype(np.uint8)


def write_idx_folder(folder: Path, n_train: int = 600, n_test: int = 100, seed: int = 0,
                     compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = synthetic_digits(n_train, seed)
    x_te, y_te = synthetic_digits(n_test, seed + 1)
    files = {
        "train-images-idx3-ubyte": x_tr, "train-labels-idx1-ubyte": y_tr,
        "t10k-images-idx3-ubyte": x_te, "t10k-labels-idx1-ubyte": y_te,
    }
    for stem, array in files.items():
        data = idx_bytes(array)
        if compress:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / stem).write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory) -> Path:
    """A folder of the four gzip IDX files: 600 train / 100 test synthetic digits.

    Not real MNIST, so loading it needs `MNISTLAB_SKIP_MD5=1` (set by `skip_md5`).
    """
    return write_idx_folder(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture
def skip_md5(monkeypatch):
    monkeypatch.setenv("MNISTLAB_SKIP_MD5", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's cache or environment data folder from a test."""
    monkeypatch.setenv("MNISTLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MNISTLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("MNISTLAB_MIRRORS", raising=False)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder, or a visible skip."""
    found = real_mnist_dir()
    if found is None:
        pytest.skip("real MNIST not found: set MNISTLAB_DATA_DIR to a folder of the four IDX files")
    return found


# JAX's cache settings a CLI run in this process (`cli.main`) may have left behind.
_JAX_CACHE_VARS = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                   "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES")


# `mnistlab tune`'s tests: a search space that trains in seconds, and the folder of the
# sitecustomize hook that lets a test hold a worker inside a trial.
TUNE_HOOK = Path(__file__).parent / "tune_hold"
TINY_SPACE = """base = "none"
depth = 1
width = [8, 16]
batch_norm = false
augment = 0
lr = {min = 1e-3, max = 1e-2, sampling = "log"}
batch_size = 64
"""


def in_one_pass(backend: str, why: str = "its processes pick their own backends"):
    """Run a test in one of CI's passes only (CI runs the suite once per backend): for tests
    whose work does not depend on the backend the pass imports, where a second pass would
    repeat the same processes (docs/development.md, "Tests")."""
    import keras

    return pytest.mark.skipif(keras.backend.backend() != backend, reason=f"{why}; run in the {backend} pass")


def cli_env(**extra) -> dict:
    """Environment for `python -m mnistlab` subprocesses in tests.

    No MNISTLAB_ settings of the user's, except the test's own cache folder
    (`_isolated_cache` sets MNISTLAB_CACHE_DIR per test), so a subprocess never
    reads or fills the user's ~/.cache/mnistlab (downloads, JAX's compiled programs).
    """
    cache = os.environ.get("MNISTLAB_CACHE_DIR")
    assert cache, "cli_env() is for use inside a test (its _isolated_cache fixture sets MNISTLAB_CACHE_DIR)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNISTLAB_") and k not in _JAX_CACHE_VARS}
    env["MNISTLAB_CACHE_DIR"] = cache
    env.update({k: str(v) for k, v in extra.items()})
    return env
