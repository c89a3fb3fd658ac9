"""Small callbacks Keras does not ship, and thin variants of Keras' own
(EarlyStopping and ReduceLROnPlateau that skip unvalidated epochs, CSVLogger,
TerminateOnNaN, TensorBoard). Wired together in `mnistlab.training.train`; each also
works in a plain `model.fit` on either backend, and none imports TensorFlow on
JAX (see `mnistlab.training.checkpoints.RunCheckpoint` and `mnistlab.lr_range.callback.LRFinder`
for the other two public callbacks)."""

from __future__ import annotations

import math
import time

import keras
import numpy as np


def current_lr(optimizer) -> float:
    """The optimizer's learning rate now, whether a variable or a schedule."""
    return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))


class LearningRateLogger(keras.callbacks.Callback):
    """Adds `learning_rate` to each epoch's logs, so CSVLogger and TensorBoard record it.

    Keras' ReduceLROnPlateau adds it only on the epochs it runs on; this one
    records it every epoch, for every schedule. Put it first in the list.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = current_lr(self.model.optimizer)


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch (`self.times`) and their sum."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


class _ValidatedEpochsOnly:
    """Acts at the end of validated epochs only (with `validation_freq` > 1, the
    others have no `val_` logs, and Keras' callbacks would warn every such epoch)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs and self.monitor in logs:
            super().on_epoch_end(epoch, logs)


class EarlyStopping(_ValidatedEpochsOnly, keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping; `patience` counts validated epochs. Args: as Keras'."""


class ReduceLROnPlateau(_ValidatedEpochsOnly, keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau; `patience` counts validated epochs. Args: as Keras'."""


class CSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger, with validation columns for the model's metrics only.

    Keras fixes the columns at the first epoch it logs; when that epoch was not
    validated (`validation_freq` > 1) it adds `val_` to every key, so the file
    got a `val_learning_rate` column that is never filled. Args: as Keras'.
    """

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None and not any(k.startswith("val_") for k in logs):
            self.keys = sorted(logs) + [f"val_{k}" for k in sorted(logs) if k != "learning_rate"]
        super().on_epoch_end(epoch, logs)


class EpochTensorBoard(keras.callbacks.Callback):
    """Per-epoch TensorBoard logs, the same as Keras' callback writes, without TensorFlow.

    Writes what `keras.callbacks.TensorBoard` writes with its defaults:
    `train/epoch_<metric>` (the learning rate included) each epoch and the model's
    conceptual graph; `validation/epoch_<metric>` and
    `validation/evaluation_<metric>_vs_iterations` after each validation.

    Why not Keras' callback: it needs TensorFlow on every backend (importing it is
    several seconds of a JAX run on 2 cores), its first write inside `fit` is
    slow, and even in epoch mode it calls `tf.summary.scalar` on every batch
    and, by having a batch-end hook, stops Keras running batch hooks in the
    background on JAX, so each step waits for the last (BENCHMARKS.md, "What made
    it fast": callbacks with no per-batch work). For batch-level summaries,
    weight histograms, profiling or TensorFlow's op graph, pass Keras' callback
    to `fit` yourself.

    Args:
        log_dir: the folder TensorBoard is pointed at (`train/` and
            `validation/` are made in it).
        write_graph: write the model's configuration for TensorBoard's Graphs tab.
    """

    def __init__(self, log_dir, write_graph: bool = True):
        super().__init__()
        self.log_dir = str(log_dir)
        self.write_graph = write_graph
        self._writers = {}

    def _writer(self, name: str):
        from mnistlab.summaries import EventWriter

        if name not in self._writers:
            self._writers[name] = EventWriter(f"{self.log_dir}/{name}")
        return self._writers[name]

    def on_train_begin(self, logs=None):
        if self.write_graph:
            from mnistlab.training.no_tensorflow import keras_without_tensorflow

            with keras_without_tensorflow():  # model.to_json imports TensorFlow on any backend
                self._writer("train").keras_model(self.model)

    def on_test_end(self, logs=None):
        optimizer = self.model.optimizer
        if not logs or optimizer is None:
            return
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        for name, value in logs.items():
            self._writer("validation").scalar(f"evaluation_{name}_vs_iterations", value, step)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.model.optimizer is not None and "learning_rate" not in logs:
            logs["learning_rate"] = current_lr(self.model.optimizer)
        for name, value in logs.items():
            if name.startswith("val_"):
                self._writer("validation").scalar(f"epoch_{name[4:]}", value, epoch)
            else:
                self._writer("train").scalar(f"epoch_{name}", value, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class TerminateOnNaN(keras.callbacks.Callback):
    """Stops training after a batch whose loss is NaN or infinite.

    Keras' TerminateOnNaN sets `model.stop_training` from `on_batch_end`. On
    JAX, Keras runs batch-end hooks in a background thread only when every
    callback allows it (`async_safe`), and Keras' own class does not; when we
    allowed it anyway, the model's weights were sometimes freed under the
    training loop ("Array has been deleted", Keras 3.15). Here the check runs in
    the background and the stop is made by the training loop's own thread: at
    the next batch on TensorFlow (hooks run in step), on JAX at the next batch
    the check has caught up with, at the latest the epoch's end. On JAX the
    steps then queue up instead of waiting for the hook (see `EpochTensorBoard`).
    """

    async_safe = True

    def on_train_begin(self, logs=None):
        # Every bad batch seen (list.append is atomic): Keras' callback thread pool may
        # run batch 4's hook before batch 3's, so the first one seen need not be the first.
        self.bad_batches = []

    def on_train_batch_end(self, batch, logs=None):  # on JAX: one of Keras' callback threads
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_batches.append(batch)

    def on_train_batch_begin(self, batch, logs=None):
        self._stop_if_bad()

    def on_epoch_end(self, epoch, logs=None):  # Keras has waited for the batch hooks by now
        self._stop_if_bad()

    def on_train_end(self, logs=None):  # every hook has run: the smallest index is the first bad batch
        if self.bad_batches:
            print(f"Batch {min(self.bad_batches)}: invalid loss, terminating training")

    def _stop_if_bad(self):
        if self.bad_batches:
            self.model.stop_training = True
