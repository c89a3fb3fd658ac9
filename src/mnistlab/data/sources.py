"""The data sets mnistlab knows: what each must look like, where it comes from, where it is cached.

`DATASETS` maps a name (`mnist`, `fashion_mnist`) to its `DatasetSpec`: the MD5
of each uncompressed IDX file, the item counts, the download mirrors, the
folders a system package installs it into, and its class names.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from mnistlab.errors import MnistlabError


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

