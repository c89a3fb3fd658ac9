"""Checkpoints that survive a crash, and resuming a run exactly where it stopped.

Keras' ModelCheckpoint writes `best.keras` in place (a kill during the write
leaves a broken file) and BackupAndRestore keeps weights, optimizer and epoch
only: early-stopping and plateau state and the random state are lost, so a
resumed run is not the run you would have had. `RunCheckpoint` writes, after
every epoch and each atomically (temporary file, fsync, rename):

    best.keras   when the monitored value (validation accuracy) improved
    last.keras   the model now
    state.npz    every model variable (incl. batch-norm statistics and the
                 dropout/augmentation random-generator states, which .keras
                 files leave out), every optimizer variable (step, moments,
                 learning rate), EarlyStopping's best weights, and as JSON:
                 the config, the epoch, the history, and the EarlyStopping,
                 ReduceLROnPlateau and best-checkpoint counters

The data order is a pure function of (seed, epoch) (`mnistlab.batches`), so
with this state a resumed run continues bit for bit as the uninterrupted one.
`state.npz` is the single source of truth for resuming: if a kill lands
between writing last.keras and state.npz, the resumed run simply redoes that
epoch, with identical results.
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np

from mnistlab import runs
from mnistlab.errors import MnistlabError

FORMAT = 1
ES_FIELDS = ("wait", "stopped_epoch", "best", "best_epoch")
PLATEAU_FIELDS = ("wait", "cooldown_counter", "best")


def _plain(value):
    """JSON-safe Python scalars from NumPy/backend scalars (None and inf survive as such)."""
    if value is None:
        return None
    value = float(np.asarray(value))
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _unplain(value):
    return float(value) if isinstance(value, str) else value


def _write(path: Path, write) -> None:
    """`write(tmp)` then rename onto `path`; a failed write names the file and keeps the old one."""
    try:
        with runs.atomic_path(path) as tmp:
            write(tmp)
    except OSError as e:
        raise MnistlabError(
            f"cannot write checkpoint {path} ({e.strerror or e}): is the disk full or the folder "
            f"read-only? The previous checkpoint is kept; fix that and continue with "
            f"`mnistlab train --resume {path.parent}`"
        ) from None


class RunCheckpoint(keras.callbacks.Callback):
    """Atomic best/last checkpoints and the full training state after every epoch
    that was validated (every epoch, unless `validation_freq` > 1) and the last.

    Put it last in the callback list, after EarlyStopping and ReduceLROnPlateau,
    so the state it saves includes what they did at the end of the epoch. An
    epoch whose loss or weights are not finite (a diverging run) is not saved:
    the previous good checkpoint stays.

    Args:
        run_dir: the run folder.
        config: the run's config as a dict (saved, and checked on resume).
        early_stopping: the run's `keras.callbacks.EarlyStopping`, or None.
        plateau: the run's `keras.callbacks.ReduceLROnPlateau`, or None.
        timer: a `mnistlab.callbacks.EpochTimer` whose times are kept, or None.
        monitor: the logged value that decides `best.keras` (higher is better).
        resume: a `ResumeState` to restore when training begins, or None.
    """

    def __init__(self, run_dir, config: dict, early_stopping=None, plateau=None, timer=None,
                 monitor: str = "val_accuracy", resume: "ResumeState | None" = None):
        super().__init__()
        self.run_dir, self.config = Path(run_dir), config
        self.early_stopping, self.plateau, self.timer = early_stopping, plateau, timer
        self.monitor, self.resume = monitor, resume
        self.best = None
        self.history: list[dict] = []
        self.diverged_epoch = None  # the epoch whose loss or weights went non-finite

    # -------------------------------------------------------------- restore
    def on_train_begin(self, logs=None):
        # Keras' callbacks reset their counters in their own on_train_begin, which ran before this one.
        if self.resume is None:
            return
        meta = self.resume.meta
        self.best = _unplain(meta["best"])
        self.history = [dict(row) for row in meta["history"]]
        if self.timer is not None:
            self.timer.times = list(meta.get("epoch_seconds", []))
        if self.early_stopping is not None and meta.get("early_stopping"):
            es = self.early_stopping
            for name in ES_FIELDS:
                setattr(es, name, _unplain(meta["early_stopping"][name]))
            es.best_weights = self.resume.arrays("es_best") or None
        if self.plateau is not None and meta.get("plateau"):
            for name in PLATEAU_FIELDS:
                setattr(self.plateau, name, _unplain(meta["plateau"][name]))

    # -------------------------------------------------------------- save
    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        loss = logs.get("loss")
        if (loss is None or not math.isfinite(float(loss))
                or not all(np.isfinite(w).all() for w in self.model.get_weights())):
            self.diverged_epoch = int(epoch)
            return  # keep the last good checkpoint
        self.history.append({"epoch": int(epoch), **{k: float(v) for k, v in logs.items()}})
        if self.monitor not in logs and epoch + 1 < self.config["epochs"]:
            return  # not validated (validation_freq > 1): checkpointed with the next validated epoch
        value = logs.get(self.monitor)
        if value is not None and (self.best is None or float(value) > self.best):
            self.best = float(value)
            _write(self.run_dir / runs.BEST, self.model.save)
            # The same model: a byte copy costs 6-13 ms, Keras' save 65-80 ms (BENCHMARKS.md).
            _write(self.run_dir / runs.LAST, lambda tmp: shutil.copyfile(self.run_dir / runs.BEST, tmp))
        else:
            _write(self.run_dir / runs.LAST, self.model.save)
        self.save_state(epoch)

    def save_state(self, epoch: int) -> None:
        model = self.model
        meta = {
            "format": FORMAT,
            "config": self.config,
            "epoch": int(epoch),  # the last completed epoch (0-based)
            "done": bool(model.stop_training) or epoch + 1 >= self.config["epochs"],
            "best": _plain(self.best),
            "history": self.history,
            "epoch_seconds": list(self.timer.times) if self.timer is not None else [],
            "model_variables": [[v.path, list(v.shape)] for v in model.variables],
        }
        arrays = {f"model/{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
        arrays.update({f"optimizer/{i}": keras.ops.convert_to_numpy(v)
                       for i, v in enumerate(model.optimizer.variables)})
        es = self.early_stopping
        if es is not None:
            meta["early_stopping"] = {name: _plain(getattr(es, name)) for name in ES_FIELDS}
            for i, w in enumerate(es.best_weights or []):
                arrays[f"es_best/{i}"] = np.asarray(w)
        if self.plateau is not None:
            meta["plateau"] = {name: _plain(getattr(self.plateau, name)) for name in PLATEAU_FIELDS}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        _write(self.run_dir / runs.STATE, write)


class ResumeState:
    """A run's state.npz, read and checked. `meta` is the JSON part; `arrays(prefix)` the rest."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                self._arrays = {name: npz[name] for name in npz.files}
            self.meta = json.loads(self._arrays.pop("meta").tobytes().decode())
        except FileNotFoundError:
            raise MnistlabError(f"{self.path} not found: the run has no checkpoint to resume from") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            raise MnistlabError(
                f"checkpoint {self.path} is corrupt or unreadable ({type(e).__name__}: {str(e)[:120]}); "
                "it cannot be resumed. best.keras and last.keras are untouched: evaluate them, "
                "or start a new run"
            ) from None
        if self.meta.get("format") != FORMAT:
            raise MnistlabError(f"checkpoint {self.path} has format {self.meta.get('format')!r}, "
                                f"this mnistlab reads {FORMAT}")

    def arrays(self, prefix: str) -> list[np.ndarray]:
        n = sum(1 for name in self._arrays if name.startswith(prefix + "/"))
        return [self._arrays[f"{prefix}/{i}"] for i in range(n)]

    @property
    def next_epoch(self) -> int:
        return self.meta["epoch"] + 1

    def restore_model(self, model) -> None:
        """Assign the saved model and optimizer variables to a freshly built, compiled `model`."""
        values = self.arrays("model")
        saved = self.meta["model_variables"]
        current = [[v.path, list(v.shape)] for v in model.variables]
        if len(values) != len(model.variables) or [s for _, s in saved] != [s for _, s in current]:
            raise MnistlabError(
                f"checkpoint {self.path} holds {len(values)} model variables that do not fit the "
                f"model built from the run's config ({len(model.variables)}): was the code or config changed?"
            )
        for var, value in zip(model.variables, values):
            var.assign(value)
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        opt_values = self.arrays("optimizer")
        if len(opt_values) != len(optimizer.variables):
            raise MnistlabError(f"checkpoint {self.path}: optimizer state does not fit the optimizer")
        for var, value in zip(optimizer.variables, opt_values):
            var.assign(value)
