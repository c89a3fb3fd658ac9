"""Small callbacks Keras does not ship. Everything else is Keras' own
(ModelCheckpoint, EarlyStopping, ReduceLROnPlateau, TerminateOnNaN, CSVLogger,
TensorBoard), wired together in `mnistlab.training`."""

from __future__ import annotations

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
