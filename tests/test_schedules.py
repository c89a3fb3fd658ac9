"""OneCycle: the rate a callback reads between steps is the rate the traced step uses."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from mnistlab.models.schedules import OneCycle


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


# ------------------------------------------------------------------ a schedule from a suggestion


def onecycle_formula(peak, total, step, warmup=0.25, div=25.0, final_div=1e4):
    warm = max(1.0, warmup * total)
    start, end = peak / div, peak / final_div
    if step < warm:
        return start + (peak - start) * min(step / warm, 1.0)
    progress = min(max((step - warm) / max(1.0, total - warm), 0.0), 1.0)
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))


def cosine_formula(peak, total, step, alpha=1e-3):
    return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)) + alpha)


def rates(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(np.int64(s)))) for s in steps]


def fake_result(suggestion):
    from mnistlab.lr_range.finder import LRRangeResult

    return LRRangeResult(lrs=np.array([1e-3, 1e-2]), losses=np.array([1.0, 0.5]), smoothed=np.array([1.0, 0.5]),
                         suggestions={"steepest": suggestion}, reasons={} if suggestion else {"steepest": "flat: x"},
                         default_rule="steepest", stop_reason="completed")


@pytest.mark.parametrize("kind,formula", [("onecycle", onecycle_formula), ("cosine", cosine_formula)])
def test_schedule_from_the_suggestion_peaks_at_it(kind, formula):
    from mnistlab.models.schedules import peak_schedule

    steps = [0, 1, 10, 24, 25, 26, 50, 99, 100, 150]
    schedule = fake_result(3e-3).schedule(kind, total_steps=100)
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    np.testing.assert_allclose(rates(schedule, steps), [formula(3e-3, 100, s) for s in steps], rtol=1e-5,
                               atol=1e-5 * 3e-3)  # float32 near the floor
    assert max(rates(schedule, range(101))) == pytest.approx(3e-3, rel=1e-6)
    assert rates(peak_schedule(kind, 3e-3, 100), steps) == rates(schedule, steps)  # the same function


def test_schedule_options_and_errors():
    from mnistlab.errors import MnistlabError
    from mnistlab.models.schedules import peak_schedule

    short = peak_schedule("onecycle", 1e-2, 40, warmup=0.5, div_factor=10.0, final_div=100.0)
    np.testing.assert_allclose(rates(short, [0, 10, 20, 40]),
                               [onecycle_formula(1e-2, 40, s, 0.5, 10.0, 100.0) for s in (0, 10, 20, 40)], rtol=1e-5)
    assert rates(peak_schedule("cosine", 1e-2, 40, alpha=0.1), [40]) == pytest.approx([1e-3])
    for args, match in [(("linear", 1e-2, 10), "unknown schedule kind 'linear'"),
                        (("cosine", 0.0, 10), "peak_lr must be a positive number"),
                        (("cosine", 1e-2, 0), "total_steps must be a whole number >= 1"),
                        (("cosine", 1e-2, 10.5), "total_steps")]:
        with pytest.raises(ValueError, match=match):
            peak_schedule(*args)
    with pytest.raises(ValueError, match="takes alpha, not warmup"):
        peak_schedule("cosine", 1e-2, 10, warmup=0.1)
    with pytest.raises(MnistlabError, match="suggested no rate \\(flat: x\\)"):
        fake_result(None).schedule("onecycle", 100)
