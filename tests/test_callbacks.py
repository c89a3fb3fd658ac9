"""mnistlab.callbacks.EpochTensorBoard and the callback list `train()` uses."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnistlab.callbacks import EpochTensorBoard, TerminateOnNaN
from mnistlab.config import make_config
from mnistlab.training import make_callbacks


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(callback, epochs=2):
    x = np.random.default_rng(0).random((40, 4), dtype="float32")
    y = np.arange(40) % 3
    tiny_model().fit(x, y, batch_size=8, epochs=epochs, validation_data=(x, y), callbacks=[callback], verbose=0)


def events(folder):
    """(run folder, tag, step, value) of every summary in the event files under `folder`."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    return sorted((p.parent.name, v.tag, e.step, tensor_util.make_ndarray(v.tensor).item())
                  for p in folder.rglob("events.out.tfevents*") for e in EventFileLoader(str(p)).Load()
                  for v in e.summary.value)


def test_writes_epoch_summaries_and_has_no_batch_hooks(tmp_path):
    cb = EpochTensorBoard(log_dir=str(tmp_path))
    fit(cb)
    base = keras.callbacks.Callback
    assert all(getattr(EpochTensorBoard, hook) is getattr(base, hook)  # nothing runs per batch
               for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_end"))
    written = events(tmp_path)
    steps = {(run, tag): [] for run, tag, _, _ in written}
    for run, tag, step, _ in written:
        steps[run, tag].append(step)
    assert steps[("train", "epoch_loss")] == steps[("validation", "epoch_accuracy")] == [0, 1]
    assert steps[("train", "epoch_learning_rate")] == [0, 1]
    assert steps[("validation", "evaluation_loss_vs_iterations")] == [5, 10]  # 5 batches an epoch
    lr = [v for run, tag, _, v in written if tag == "epoch_learning_rate"]
    assert lr == pytest.approx([0.01, 0.01])  # SGD's default
    graph = [v for run, tag, _, v in written if tag == "keras"]
    assert len(graph) == 1 and b'"class_name": "Sequential"' in graph[0]


def test_same_event_files_as_keras_tensorboard(tmp_path):
    tf = pytest.importorskip("tensorflow")

    def tags(folder):
        return sorted((p.parent.name, v.tag, e.step) for p in folder.rglob("events*")
                      for e in tf.compat.v1.train.summary_iterator(str(p)) for v in e.summary.value)

    fit(keras.callbacks.TensorBoard(log_dir=str(tmp_path / "keras")))
    fit(EpochTensorBoard(log_dir=str(tmp_path / "ours")))
    assert tags(tmp_path / "ours") == tags(tmp_path / "keras") != []


def test_train_callbacks_let_keras_dispatch_batch_hooks_in_the_background(tmp_path):
    # Keras runs batch callbacks in a thread (JAX) only when each one is async-safe or
    # has no batch-end hook; one that blocks makes every step wait for the last.
    config = make_config("mlp", epochs=1)
    callbacks = keras.callbacks.CallbackList(make_callbacks(config, tmp_path), model=tiny_model())
    assert callbacks._async_train == keras.src.backend.IS_THREAD_SAFE


def test_terminate_on_nan_stops_in_the_epoch_of_the_first_bad_batch(capsys):
    x = np.random.default_rng(0).random((80, 4), dtype="float32")
    x[24:32] = np.nan  # batch 3 of 10
    y = np.arange(80) % 3

    class Count(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            Count.steps += 1

    history = tiny_model().fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                               callbacks=[TerminateOnNaN(), Count()])
    # TensorFlow runs batch hooks in step; JAX in a thread that may lag behind the loop
    assert len(history.epoch) == 1 and Count.steps >= 4, Count.steps
    if keras.backend.backend() == "tensorflow":
        assert Count.steps <= 5, Count.steps
    assert "Batch 3: invalid loss, terminating training" in capsys.readouterr().out
