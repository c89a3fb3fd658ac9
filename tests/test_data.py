"""The data layer: IDX parsing and verification, folder/npz loading, the split."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from mnistlab import data
from mnistlab.errors import MnistlabError

from conftest import synthetic_digits, write_idx_folder


def test_idx_roundtrip_and_header_checks():
    x, _ = synthetic_digits(7)
    raw = data.idx_bytes(x)
    assert raw[:4] == b"\x00\x00\x08\x03" and len(raw) == 16 + 7 * 784
    np.testing.assert_array_equal(data.parse_idx(raw, "x", 3), x)
    with pytest.raises(MnistlabError, match="magic number"):
        data.parse_idx(raw, "x", 1)  # an image file where labels were expected
    with pytest.raises(MnistlabError, match="truncated"):
        data.parse_idx(raw[:-5], "x", 3)
    with pytest.raises(MnistlabError, match="too short"):
        data.parse_idx(b"\x00\x00", "x", 3)


def test_load_folder_gzip_and_raw(tmp_path):
    for compress in (True, False):
        folder = write_idx_folder(tmp_path / str(compress), 50, 20, compress=compress)
        ds = data.load_folder(folder, verify=False)
        assert ds.x_train.shape == (50, 28, 28) and ds.x_train.dtype == np.uint8
        assert ds.y_test.shape == (20,) and ds.y_train.max() <= 9
        expected, _ = synthetic_digits(50)
        np.testing.assert_array_equal(ds.x_train, expected)


def test_canonical_md5_rejects_non_mnist(tiny_mnist_dir):
    with pytest.raises(MnistlabError, match="MD5 of the uncompressed file"):
        data.load_folder(tiny_mnist_dir, "mnist", verify=True)


def test_skip_md5_env(tiny_mnist_dir, monkeypatch):
    monkeypatch.setenv("MNISTLAB_SKIP_MD5", "1")
    assert len(data.load(data_dir=tiny_mnist_dir).x_train) == 600


def test_truncated_gzip_names_the_file(tmp_path):
    folder = write_idx_folder(tmp_path / "d", 30, 10)
    target = folder / "train-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(MnistlabError, match="train-labels-idx1-ubyte.gz is a damaged gzip"):
        data.load_folder(folder, verify=False)


def test_missing_file_and_missing_folder(tmp_path):
    folder = write_idx_folder(tmp_path / "d", 30, 10)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MnistlabError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        data.load_folder(folder, verify=False)
    with pytest.raises(MnistlabError, match="does not exist"):
        data.load_folder(tmp_path / "nope")


def test_label_out_of_range_and_count_mismatch(tmp_path):
    folder = write_idx_folder(tmp_path / "d", 30, 10)
    bad = np.full(30, 12, dtype=np.uint8)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data.idx_bytes(bad)))
    with pytest.raises(MnistlabError, match="label 12 is outside 0-9"):
        data.load_folder(folder, verify=False)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data.idx_bytes(bad[:20] % 10)))
    with pytest.raises(MnistlabError, match="30 train images but 20 labels"):
        data.load_folder(folder, verify=False)


def test_keras_style_npz(tmp_path):
    x, y = synthetic_digits(40)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    ds = data.load_folder(tmp_path, verify=False)
    np.testing.assert_array_equal(ds.y_train, y)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y)
    with pytest.raises(MnistlabError, match="lacks one of the arrays"):
        data.load_folder(tmp_path, verify=False)
    (tmp_path / "mnist.npz").write_bytes(b"not a zip")
    with pytest.raises(MnistlabError, match="not a readable npz"):
        data.load_folder(tmp_path, verify=False)


def test_npz_md5_is_checked_like_idx(tmp_path):
    """The MD5 of arrays from an npz is taken over the IDX bytes they would make."""
    x, y = synthetic_digits(40)
    digest = hashlib.md5(data.idx_bytes(x)).hexdigest()
    spec = data.DatasetSpec("tiny", md5={"x_train": digest}, mirrors=(), counts={"train": 40})
    data.check_array("x_train", x, "x", spec)
    x2 = x.copy()
    x2[0, 0, 0] ^= 1
    with pytest.raises(MnistlabError, match="MD5"):
        data.check_array("x_train", x2, "x", spec)
    with pytest.raises(MnistlabError, match="expected 60000 items"):
        data.check_array("x_train", x, "x", data.DATASETS["mnist"])


def test_stratified_seeded_split():
    x, y = synthetic_digits(1000)
    a = data.split_validation(x, y, 0.2, seed=3)
    b = data.split_validation(x, y, 0.2, seed=3)
    c = data.split_validation(x, y, 0.2, seed=4)
    assert len(a[3]) == 200 and len(a[1]) == 800
    np.testing.assert_array_equal(a[3], b[3])
    assert not np.array_equal(a[3], c[3])
    assert set(np.bincount(a[3], minlength=10)) == {20}  # every class equally represented
    with pytest.raises(MnistlabError, match="between 0 and 1"):
        data.split_validation(x, y, 1.5)


def test_unknown_dataset():
    with pytest.raises(MnistlabError, match="choose one of fashion_mnist, mnist"):
        data.load("kmnist")


def test_real_mnist_checks(mnist_dir):
    """The shared copy passes verification and matches the published statistics."""
    ds = data.load("mnist", data_dir=mnist_dir)
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert list(ds.y_train[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(np.bincount(ds.y_test)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(ds.x_train.mean() / 255 - 0.1307) < 1e-4
