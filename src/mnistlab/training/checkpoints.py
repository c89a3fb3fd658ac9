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
                 files leave out; on torch also torch's global generator, see
                 `mnistlab.models.random_state`), every optimizer variable
                 (step, moments, learning rate), EarlyStopping's best weights, and as JSON:
                 the config, the epoch, the history, and the EarlyStopping,
                 ReduceLROnPlateau and best-checkpoint counters

The data order is a pure function of (seed, epoch) (`mnistlab.training.batches`), so
with this state a resumed run continues bit for bit as the uninterrupted one.
`state.npz` is the single source of truth for resuming: if a kill lands
between writing last.keras and state.npz, the resumed run simply redoes that
epoch, with identical results.
"""

from __future__ import annotations

import errno
import json
import math
import shutil
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np

from mnistlab import runs
from mnistlab.config import TrainConfig
from mnistlab.errors import MnistlabError
from mnistlab.models.random_state import set_torch_generator_state, torch_generator_state
from mnistlab.training.no_tensorflow import keras_without_tensorflow

FORMAT = 1
# state.npz's arrays of torch's global generators (torch runs only; mnistlab.models.random_state)
TORCH_RNG = "rng/torch"
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


def _write(path: Path, write, hint: str | None = None) -> None:
    """`write(tmp)` then rename onto `path`; a failed write names the file, the cause, and keeps the old one."""
    try:
        with runs.atomic_path(path) as tmp, keras_without_tensorflow():  # model.save imports TF on any backend
            write(tmp)
    except OSError as e:
        raise MnistlabError(
            f"cannot write checkpoint {path}: {_cause(e, path.parent)}; the previous checkpoint is kept"
            + (f". {hint}" if hint else "")
        ) from None


def _cause(error: OSError, folder: Path) -> str:
    """What an OSError while writing into `folder` means, in words."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full ({error.strerror})"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder {folder} is not writable ({error.strerror})"
    if error.errno == errno.ENOENT or not folder.is_dir():
        return f"the folder {folder} does not exist (was it removed during training?)"
    return error.strerror or str(error)


class RunCheckpoint(keras.callbacks.Callback):
    """Atomic best/last checkpoints and the full training state after every epoch.

    Works in any `model.fit`, like Keras' ModelCheckpoint, and writes into
    `run_dir` (created if missing): `best.keras` when the monitored value
    improved, `last.keras`, and `state.npz` (see the module docstring):

        model.fit(x, y, validation_split=0.1, epochs=10,
                  callbacks=[RunCheckpoint("checkpoints", monitor="val_loss")])

    Put it last in the callback list, after EarlyStopping and ReduceLROnPlateau,
    so the state it saves includes what they did at the end of the epoch. An
    epoch whose loss or weights are not finite (a diverging run) is not saved:
    the previous good checkpoint stays. When an epoch's logs lack `monitor`
    (no validation data, or a misspelt name), it warns once and writes
    `last.keras` and the state only. On JAX it does not import TensorFlow.

    Args:
        run_dir: the folder to write into (created, with its parents, if missing).
        config: a dict saved into state.npz and checked on resume (`mnistlab.train`
            passes its `TrainConfig.to_dict()`); None or {} in plain `fit`.
        early_stopping: the run's `keras.callbacks.EarlyStopping`, or None.
        plateau: the run's `keras.callbacks.ReduceLROnPlateau`, or None.
        timer: a `mnistlab.training.callbacks.EpochTimer` whose times are kept, or None.
        monitor: the logged value that decides `best.keras` (default `val_accuracy`).
        resume: a `ResumeState` to restore when training begins, or None.
        mode: `auto`, `min` or `max`, as Keras' ModelCheckpoint: whether a lower or
            a higher value is better. `auto` takes the direction of the model's
            metric of that name when it has one (accuracy: higher), else reads
            names ending in `loss` as lower-is-better and names with `acc` as
            higher-is-better; anything else needs `min` or `max`.
        skip_unmonitored: skip (do not checkpoint, and do not warn about) epochs
            without `monitor` in their logs, except the last: `fit(...,
            validation_freq=N)` validates every Nth epoch only (what `train` does).
        resume_hint: a sentence added to write errors, saying how to continue.
    """

    def __init__(self, run_dir, config: dict | None = None, early_stopping=None, plateau=None, timer=None,
                 monitor: str = "val_accuracy", resume: "ResumeState | None" = None, *, mode: str = "auto",
                 skip_unmonitored: bool = False, resume_hint: str | None = None):
        super().__init__()
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"RunCheckpoint(config=...) takes a dict (e.g. TrainConfig.to_dict()) or None, "
                            f"got {type(config).__name__}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"RunCheckpoint(mode={mode!r}): pass 'auto', 'min' (lower is better) or 'max'")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"RunCheckpoint(monitor={monitor!r}): pass the name of a logged value, "
                             "e.g. 'val_loss' or 'val_accuracy'")
        self.run_dir, self.config = Path(run_dir), dict(config or {})
        self.early_stopping, self.plateau, self.timer = early_stopping, plateau, timer
        self.monitor, self.resume, self.mode = monitor, resume, mode
        self.skip_unmonitored, self.resume_hint = skip_unmonitored, resume_hint
        self.best = None
        self.history: list[dict] = []
        self.diverged_epoch = None  # the epoch whose loss or weights went non-finite
        self._higher_is_better = None  # decided at the first monitored epoch (mode "auto")
        self._seen_monitor = self._warned = False
        self._torch_rng = None  # torch's generator state to restore when resuming (torch only)

    # -------------------------------------------------------------- restore
    def on_train_begin(self, logs=None):
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MnistlabError(f"cannot create the checkpoint folder {self.run_dir} ({e.strerror}): "
                                "pass RunCheckpoint a folder you can write to") from None
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
        self._torch_rng = self.resume.named(TORCH_RNG) or None  # put back at the first step

    def on_train_batch_begin(self, batch, logs=None):
        # torch's generator goes back just before the first resumed step, not with the variables:
        # fit draws from it when its data iterator starts (the torch data loader's seed), which the
        # uninterrupted run did before its first epoch, not between two epochs.
        if self._torch_rng is not None:
            set_torch_generator_state(self._torch_rng)
            self._torch_rng = None

    # -------------------------------------------------------------- save
    @property
    def epochs(self) -> int | None:
        """The run's number of epochs: the config's, else `fit`'s."""
        return self.config.get("epochs") or (self.params or {}).get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        loss = logs.get("loss")
        if (loss is None or not math.isfinite(float(loss))
                or not all(np.isfinite(w).all() for w in self.model.get_weights())):
            self.diverged_epoch = int(epoch)
            return  # keep the last good checkpoint
        self.history.append({"epoch": int(epoch), **{k: float(v) for k, v in logs.items()}})
        value = logs.get(self.monitor)
        if value is None:
            last = self.epochs is None or epoch + 1 >= self.epochs
            if self.skip_unmonitored and not last:
                return  # not validated (validation_freq > 1): checkpointed with the next validated epoch
            if not self.skip_unmonitored:
                self._warn_unmonitored(logs)
        else:
            self._seen_monitor = True
        if value is not None and self._improved(float(value)):
            self.best = float(value)
            self._write(runs.BEST, self.model.save)
            # The same model: a byte copy is several times cheaper than a second Keras save
            # (lab notes benchmarks/log/time-to-accuracy-2026-11-26-whole-fit-timed.md and
            # gpu-2026-11-26-preset-gpu.md, linked from BENCHMARKS.md).
            self._write(runs.LAST, lambda tmp: shutil.copyfile(self.run_dir / runs.BEST, tmp))
        else:
            self._write(runs.LAST, self.model.save)
        self.save_state(epoch)

    def on_train_end(self, logs=None):
        if not self._seen_monitor and self.history:
            self._warn_unmonitored(self.history[-1])

    def _warn_unmonitored(self, logs):
        if self._warned:
            return
        self._warned = True
        names = ", ".join(sorted(k for k in logs if k != "epoch")) or "none"
        warnings.warn(
            f"RunCheckpoint: {self.monitor!r} is not in the epoch's logs (they have: {names}), so "
            f"{self.run_dir / runs.BEST} is not written, only last.keras and state.npz. Pass validation "
            "data to fit (validation_data= or validation_split=) or monitor one of the logged names",
            stacklevel=2,
        )

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self._higher_is_better is None:
            self._higher_is_better = self._direction()
        if self.best is None:
            return True
        return value > self.best if self._higher_is_better else value < self.best

    def _direction(self) -> bool:
        """True when higher is better, from `mode` (see the class docstring)."""
        if self.mode != "auto":
            return self.mode == "max"
        name = self.monitor.removeprefix("val_")
        for metric in _metrics(self.model):
            if metric.name == name and getattr(metric, "_direction", None) in ("up", "down"):
                return metric._direction == "up"
        if name == "loss" or name.endswith("loss"):
            return False
        if "acc" in name:
            return True
        raise ValueError(
            f"RunCheckpoint(monitor={self.monitor!r}): cannot tell whether higher or lower is better; "
            "pass mode='max' or mode='min'"
        )

    def _write(self, name: str, write) -> None:
        _write(self.run_dir / name, write, self.resume_hint)

    def save_state(self, epoch: int) -> None:
        model = self.model
        meta = {
            "format": FORMAT,
            "config": self.config,
            "epoch": int(epoch),  # the last completed epoch (0-based)
            "done": bool(model.stop_training) or (self.epochs is not None and epoch + 1 >= self.epochs),
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
        arrays.update({f"{TORCH_RNG}/{name}": value for name, value in (torch_generator_state() or {}).items()})
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        self._write(runs.STATE, write)


def _metrics(model) -> list:
    """The model's metric objects, the compiled ones unpacked (as Keras' own callbacks read them)."""
    found = []
    for metric in getattr(model, "metrics", []):
        found.extend(getattr(metric, "metrics", None) or [metric])
    return found


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

    def named(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays saved under `prefix/NAME`, as {NAME: array} (empty when there are none)."""
        return {name[len(prefix) + 1:]: a for name, a in self._arrays.items() if name.startswith(prefix + "/")}

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


# ------------------------------------------------------------------ resuming a train() run


def truncate_history(path: Path, first_epoch: int) -> None:
    """Drop history.csv rows of epochs after the checkpoint (they are trained again)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < first_epoch]
    with runs.atomic_path(path) as tmp:
        tmp.write_text("".join(kept))


def open_for_resume(config, run_dir, own_model=None):
    """The run's config, folder, config.json contents and ResumeState (None: no epoch finished)."""
    run_dir = Path(run_dir)
    if not (run_dir / runs.CONFIG).is_file():
        raise MnistlabError(
            f"cannot resume {run_dir}: no config.json there, so it is not a mnistlab run folder"
        )
    saved = runs.read_json(run_dir / runs.CONFIG)
    if "own_model" in saved and own_model is None:
        raise MnistlabError(f"{run_dir} trained your own model ({saved['own_model']['name']}): resume it in "
                            "Python with train(None, run_dir, resume=True, model=...), built and compiled as before")
    if "own_model" not in saved and own_model is not None:
        raise ValueError(f"{run_dir} trained the model its config builds: resume it without model=")
    saved_config = TrainConfig.from_dict(saved["config"]).validate()
    if config is not None:
        changed = {k: (v, getattr(config, k)) for k, v in saved_config.to_dict().items()
                   if getattr(config, k) != v}
        if changed:
            listing = ", ".join(f"{k}: run has {a!r}, asked {b!r}" for k, (a, b) in changed.items())
            raise MnistlabError(
                f"cannot resume {run_dir} with a changed config ({listing}); resume with the run's "
                "own config (no training flags), or start a new run"
            )
    if not (run_dir / runs.STATE).exists():
        return saved_config, run_dir, saved, None  # stopped before the first epoch ended: start over
    state = ResumeState(run_dir / runs.STATE)
    if TrainConfig.from_dict(state.meta["config"]).to_dict() != saved_config.to_dict():  # older runs: defaults filled
        raise MnistlabError(
            f"{run_dir / runs.CONFIG} does not match the config its checkpoint was made with "
            f"({run_dir / runs.STATE}); was config.json edited? Restore it, or start a new run"
        )
    return saved_config, run_dir, saved, state
