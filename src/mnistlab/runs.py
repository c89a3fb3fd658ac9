"""The run folder: what a training run writes, and how it is written safely.

    RUN_DIR/
      config.json          the TrainConfig, backend, versions, seed (enough to reproduce)
      best.keras           the model with the best validation accuracy
      last.keras           the model at the end of the last epoch
      state.npz            everything `train --resume` needs: weights, optimizer, random
                           and callback state, history (see mnistlab.training.checkpoints)
      history.csv          one row per epoch: loss, accuracy, val_*, learning_rate
      learning_curves.png  the history as a picture
      metrics.json         test_loss and test_accuracy of best.keras, timings
      tensorboard/         train/ and validation/ event files
      lr_find.{png,csv,json}  when the LR range test ran (--lr auto)

Every file is written to a temporary name in the same folder, flushed to disk
(fsync) and renamed into place, so a crash at any moment leaves the previous
good version readable and never a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from pathlib import Path

from mnistlab.errors import MnistlabError

CONFIG = "config.json"
METRICS = "metrics.json"
BEST = "best.keras"
LAST = "last.keras"
HISTORY = "history.csv"
STATE = "state.npz"
CURVES = "learning_curves.png"
TENSORBOARD = "tensorboard"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success fsync it and rename it onto `path`.

    The temporary name keeps `path`'s suffix (Keras insists on `.keras`). On an
    exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders can't be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)


def write_json(path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MnistlabError(f"{path} not found: is {path.parent} a mnistlab run folder?") from None
    except (OSError, ValueError) as e:
        raise MnistlabError(f"{path} is unreadable or not JSON ({e})") from None


def prepare_run_dir(run_dir) -> Path:
    """Create `run_dir` for a new run; refuse one that already holds a run or can't be written."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG).exists():
        raise MnistlabError(
            f"{run_dir} already holds a run (config.json): choose another --run-dir or remove it"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=run_dir, prefix=".probe", delete=True)
        probe.close()
    except OSError as e:
        raise MnistlabError(
            f"cannot write to run folder {run_dir} ({e.strerror}): choose a writable --run-dir"
        ) from None
    return run_dir


def discard_unstarted_run(run_dir: Path, created: bool) -> None:
    """Undo a new run that failed before it wrote anything but its config.json (a bad
    model option, say), so that the same --run-dir can be used again: remove the
    config.json, and the folder if this run created it. A run that wrote more (the
    LR range test's plot, which its error points at) is left as it is."""
    if any(p.name != CONFIG for p in run_dir.iterdir()):
        return
    with contextlib.suppress(FileNotFoundError):
        (run_dir / CONFIG).unlink()
    if created:
        with contextlib.suppress(OSError):
            run_dir.rmdir()


def environment() -> dict:
    """Versions and backend: what a config.json needs to reproduce a run."""
    import importlib.metadata as md

    import keras

    versions = {"python": platform.python_version()}
    for pkg in ("mnistlab", "keras", "tensorflow-cpu", "tensorflow", "jax", "jaxlib", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[pkg] = md.version(pkg)
    return {
        "backend": keras.backend.backend(),
        "versions": versions,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
