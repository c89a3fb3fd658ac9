"""Downloads, for real, from HTTP servers on 127.0.0.1: mirrors, fallback, corruption."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading

import pytest

from mnistlab import data
from mnistlab.data.download import download_dataset
from mnistlab.errors import MnistlabError

from conftest import cli_env, write_idx_folder


@pytest.fixture
def http_root(tmp_path):
    """A static HTTP server on 127.0.0.1 serving `root`; yields (root, base_url)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def tiny_spec(folder):
    """A DatasetSpec whose canonical MD5s are those of the synthetic files in `folder`."""
    md5 = {}
    for role, (stem, _) in data.ROLES.items():
        md5[role] = hashlib.md5(data.read_file_bytes(folder / (stem + ".gz"))).hexdigest()
    return data.DatasetSpec(name="tiny", md5=md5, mirrors=(), counts={"train": 40, "test": 10})


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_falls_back_after_404(http_root, tmp_path):
    root, url = http_root
    good = write_idx_folder(root / "mirror2", 40, 10)
    (root / "mirror1").mkdir()  # empty: every file is a 404
    cache = tmp_path / "cache"
    download_dataset(tiny_spec(good), cache, mirrors=[f"{url}/mirror1/", f"{url}/mirror2/"])
    assert cache_files(cache) == sorted(p.name for p in good.iterdir())
    ds = data.load_folder(cache, verify=False)
    assert ds.x_train.shape == (40, 28, 28)


def test_corrupt_body_rejected_and_nothing_left(http_root, tmp_path):
    root, url = http_root
    good = write_idx_folder(root / "good", 40, 10)
    spec = tiny_spec(good)
    bad = root / "bad"
    shutil.copytree(good, bad)
    victim = bad / "train-images-idx3-ubyte.gz"
    blob = bytearray(data.read_file_bytes(victim))
    blob[1000] ^= 0xFF  # one flipped byte: valid gzip, valid IDX, wrong MD5
    import gzip

    victim.write_bytes(gzip.compress(bytes(blob)))
    cache = tmp_path / "cache"
    with pytest.raises(MnistlabError, match="could not download train-images-idx3-ubyte.gz") as e:
        download_dataset(spec, cache, mirrors=[f"{url}/bad/"])
    assert "MD5" in str(e.value) and "--data-dir" in str(e.value)
    assert "train-images-idx3-ubyte.gz" not in cache_files(cache)
    assert not [n for n in cache_files(cache) if n.endswith(".part")]


def test_truncated_body_rejected(http_root, tmp_path):
    root, url = http_root
    good = write_idx_folder(root / "good", 40, 10)
    spec = tiny_spec(good)
    (good / "train-labels-idx1-ubyte.gz").write_bytes((good / "train-labels-idx1-ubyte.gz").read_bytes()[:30])
    with pytest.raises(MnistlabError, match="damaged gzip|truncated"):
        download_dataset(spec, tmp_path / "cache", mirrors=[f"{url}/good/"])


def test_unreachable_mirror_reports_every_attempt(tmp_path):
    spec = data.DatasetSpec(name="tiny", md5=dict.fromkeys(data.ROLES, "0" * 32), mirrors=())
    with pytest.raises(MnistlabError) as e:
        download_dataset(spec, tmp_path / "c", mirrors=["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"],
                         timeout=2)
    assert "127.0.0.1:9/a/" in str(e.value) and "127.0.0.1:9/b/" in str(e.value)


def test_cli_downloads_real_mnist_into_cache(http_root, tmp_path, mnist_dir):
    """The real files, served locally, pass the canonical MD5 check through the CLI path."""
    root, url = http_root
    shutil.copytree(mnist_dir, root / "mnist")
    cache = tmp_path / "usercache"
    code = ("from mnistlab import data; ds = data.load('mnist'); "
            "print(ds.source, len(ds.x_train))")
    env = cli_env(MNISTLAB_CACHE_DIR=cache, MNISTLAB_MIRRORS=f"{url}/missing/ {url}/mnist/")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(cache / "mnist"), "60000"]
    assert len(cache_files(cache / "mnist")) == 4
    # second load: from the cache, no download
    (root / "mnist").rename(root / "gone")  # nothing left to download: only the cache can serve it
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(cache / "mnist"), "60000"]
    assert "downloading" not in proc.stderr
