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


def scalar_names(callback, monkeypatch):
    """Record the tag of every tf.summary.scalar call the callback makes."""
    names = []
    real = callback.summary.scalar

    def spy(name, *args, **kwargs):
        names.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(callback.summary, "scalar", spy)
    return names


def fit(callback, epochs=2):
    x = np.random.default_rng(0).random((40, 4), dtype="float32")
    y = np.arange(40) % 3
    tiny_model().fit(x, y, batch_size=8, epochs=epochs, validation_data=(x, y), callbacks=[callback], verbose=0)


def test_epoch_mode_writes_epoch_summaries_and_nothing_per_batch(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    cb = EpochTensorBoard(log_dir=str(tmp_path))
    names = scalar_names(cb, monkeypatch)
    fit(cb)
    assert cb.async_safe
    assert not [n for n in names if n.startswith("batch_")], names  # Keras' own class: 10 per metric
    assert names.count("epoch_loss") == 4 and names.count("epoch_accuracy") == 4  # train + validation, 2 epochs
    assert {p.parent.name for p in tmp_path.rglob("events.out.tfevents*")} == {"train", "validation"}


def test_batch_mode_is_keras_behaviour(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    cb = EpochTensorBoard(log_dir=str(tmp_path), update_freq=1)
    names = scalar_names(cb, monkeypatch)
    fit(cb)
    assert not cb.async_safe
    assert names.count("batch_loss") == 10  # 5 batches x 2 epochs


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
