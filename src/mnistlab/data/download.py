"""Downloading a data set into the cache: mirrors in order, verify, then move.

Each file is streamed to a temporary file beside its final place, checked
(gzip intact, IDX header, counts, canonical MD5), and only then renamed into
place, so the cache never holds a half-written or unverified file. A mirror
that fails (HTTP error, network error, bad body) is skipped for the next one.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from mnistlab.data.idx import ROLES, read_idx
from mnistlab.data.sources import DatasetSpec
from mnistlab.errors import MnistlabError

_CHUNK = 1 << 16


def _fetch(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def download_dataset(ds_spec: DatasetSpec, folder, mirrors=None, timeout: float = 60.0) -> Path:
    """Download the four files of `ds_spec` into `folder`; returns the folder.

    Args:
        ds_spec: the data set (its mirrors and MD5s).
        folder: where the verified files go (created if needed).
        mirrors: base URLs to use instead of `ds_spec.mirrors`; the
            environment variable `MNISTLAB_MIRRORS` (space-separated) also
            overrides them.
        timeout: seconds to wait on a silent connection.
    """
    folder = Path(folder)
    if mirrors is None and os.environ.get("MNISTLAB_MIRRORS"):
        mirrors = os.environ["MNISTLAB_MIRRORS"].split()
    mirrors = list(mirrors or ds_spec.mirrors)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistlabError(
            f"cannot create the cache folder {folder} ({e.strerror}): set MNISTLAB_CACHE_DIR "
            "to a writable folder, or pass --data-dir"
        ) from None
    for role, (stem, _) in ROLES.items():
        final = folder / (stem + ".gz")
        if final.is_file():
            continue
        failures = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + stem + ".gz"
            fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=folder)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                print(f"downloading {url}", file=sys.stderr)
                _fetch(url, tmp, timeout)
                read_idx(tmp, role, ds_spec)
                os.replace(tmp, final)
                break
            except (urllib.error.URLError, OSError, MnistlabError) as e:
                reason = getattr(e, "reason", None) or e
                failures.append(f"{url}: {reason}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise MnistlabError(
                f"could not download {stem}.gz for {ds_spec.name}:\n  "
                + "\n  ".join(failures)
                + "\nIf you are offline, put the four IDX files in a folder and pass "
                "--data-dir FOLDER (or set MNISTLAB_DATA_DIR)."
            )
    return folder
