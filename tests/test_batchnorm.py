"""mnistlab's BatchNormalization computes what Keras' layer computes (fused on TensorFlow)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnistlab.models.batchnorm import BatchNormalization


def twin_models(shape):
    """Keras' BN and ours after the same conv/dense layer, with the same weights."""
    def build(bn):
        keras.utils.set_random_seed(0)
        inputs = keras.Input(shape)
        x = keras.layers.Conv2D(6, 3, padding="same")(inputs) if len(shape) == 3 else keras.layers.Dense(6)(inputs)
        x = bn(momentum=0.9, name="bn")(x)
        return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    ours, theirs = build(BatchNormalization), build(keras.layers.BatchNormalization)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("shape", [(7, 7, 2), (5,)], ids=["conv", "dense"])
def test_training_step_matches_keras(shape):
    ours, theirs = twin_models(shape)
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(16, *shape)).astype("float32")
    y = np.random.default_rng(2).normal(size=(16, 3)).astype("float32")
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        for _ in range(3):
            model.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):  # gamma, beta, moving stats, kernels
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    moving_var = ours.get_layer("bn").moving_variance.numpy()
    assert not np.allclose(moving_var, 1.0)  # the statistics did move
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_training_output_is_normalised():
    layer = BatchNormalization()
    x = np.random.default_rng(0).normal(5.0, 2.0, size=(64, 4, 4, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert layer._can_fuse(x, True, None) == (keras.backend.backend() == "tensorflow")  # the fast path is taken
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-2)


def test_saves_and_loads(tmp_path):
    ours, _ = twin_models((7, 7, 2))
    path = tmp_path / "m.keras"
    ours.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("bn")) is BatchNormalization
    x = np.ones((2, 7, 7, 2), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-6)
