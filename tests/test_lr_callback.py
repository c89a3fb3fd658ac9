"""LRFinder: the range test when fit begins, then training from the restored model at the suggestion."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnistlab import LRFinder
X = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
Y = np.argmax(X[:, :3], axis=1).astype("int32")


def model(lr=1e-3):
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.2),
                          keras.layers.Dense(3, activation="softmax")])
    m.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_fit_trains_from_the_restored_model_at_the_suggestion(tmp_path):
    finder = LRFinder(X, Y, batch_size=32, steps=60, save_dir=tmp_path)
    found = model()
    history = found.fit(X, Y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[finder])
    assert finder.result.suggestion is not None and finder.lr == finder.result.suggestion
    assert not np.isclose(finder.lr, 1e-3)
    assert (tmp_path / "lr_find.json").is_file()
    # the twin: the same model compiled at the suggested rate, no range test
    twin = model(lr=finder.lr)
    twin_history = twin.fit(X, Y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    assert history.history["loss"] == twin_history.history["loss"]
    for a, b in zip(found.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_no_suggestion_leaves_the_rate_and_says_why():
    finder = LRFinder(X, Y, batch_size=32, steps=5)  # too short a curve to read
    m = model()
    with pytest.warns(UserWarning, match=r"suggested no rate \(too short"):
        m.fit(X, Y, batch_size=32, epochs=1, verbose=0, callbacks=[finder])
    assert finder.lr is None and float(keras.ops.convert_to_numpy(m.optimizer.learning_rate)) == pytest.approx(1e-3)


def test_measure_only_and_bad_options():
    finder = LRFinder(X, Y, batch_size=32, steps=60, set_lr=False)
    m = model()
    m.fit(X, Y, batch_size=32, epochs=1, verbose=0, callbacks=[finder])
    assert finder.result.suggestion is not None and finder.lr is None
    assert float(keras.ops.convert_to_numpy(m.optimizer.learning_rate)) == pytest.approx(1e-3)
    with pytest.raises(TypeError, match="unknown options max_rate"):
        LRFinder(X, Y, max_rate=1.0)
