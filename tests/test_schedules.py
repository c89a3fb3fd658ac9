"""OneCycle: the rate a callback reads between steps is the rate the traced step uses."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from mnistlab.schedules import OneCycle


def traced(fn):
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    import tensorflow as tf

    return tf.function(fn, autograph=False)


def test_eager_rate_matches_the_traced_rate_without_backend_ops():
    schedule = OneCycle(max_lr=4e-3, total_steps=420)
    in_step = traced(lambda t: schedule(t))
    steps = [0, 1, 50, 104, 105, 106, 200, 419, 420, 500]
    eager = [schedule(keras.Variable(s, dtype="int32")) for s in steps]  # as optimizer.learning_rate asks
    assert all(type(r) is np.float32 for r in eager)  # NumPy: nothing for JAX to compile
    np.testing.assert_allclose(eager, [float(in_step(np.int32(s))) for s in steps], rtol=1e-6)
    assert eager[0] == pytest.approx(4e-3 / 25) and max(eager) == pytest.approx(4e-3)
    assert eager[-1] == pytest.approx(4e-3 / 1e4)


def test_a_compiled_optimizer_reports_its_schedule():
    optimizer = keras.optimizers.Adam(OneCycle(max_lr=1e-2, total_steps=10))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=2, epochs=1, verbose=0)  # 4 steps
    # step 4 of 10: past the 2.5-step warm-up, 20% into the cosine
    end = 1e-2 / 1e4
    expected = end + (1e-2 - end) * 0.5 * (1 + math.cos(math.pi * 0.2))
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(expected, rel=1e-6)
