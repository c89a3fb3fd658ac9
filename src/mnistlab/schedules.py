"""Learning-rate schedules Keras does not ship: one-cycle."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="mnistlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Smith's one-cycle policy: linear warm-up to `max_lr`, then cosine annealing.

    Args:
        max_lr: the peak rate (e.g. the LR range test's suggestion).
        total_steps: optimizer steps in the whole run.
        warmup: share of the steps spent warming up.
        div_factor: the rate starts at `max_lr / div_factor`.
        final_div: the rate ends at `max_lr / final_div`.
    """

    def __init__(self, max_lr, total_steps, warmup=0.25, div_factor=25.0, final_div=1e4):
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.warmup = float(warmup)
        self.div_factor = float(div_factor)
        self.final_div = float(final_div)

    def __call__(self, step):
        concrete = _concrete(step)
        if concrete is not None:
            # A callback asking for the rate between steps: the same formula in NumPy
            # float32. With backend ops, JAX compiles each of them on first use (~20 ms
            # apiece, ~0.2 s in all on a first run, BENCHMARKS.md); steps are traced.
            return self._rate(np.float32(concrete), np.cos, np.minimum, np.clip, np.where)[()]
        return self._rate(ops.cast(step, "float32"), ops.cos, ops.minimum, ops.clip, ops.where)

    def _rate(self, step, cos, minimum, clip, where):
        warm = max(1.0, self.warmup * self.total_steps)
        start, end = self.max_lr / self.div_factor, self.max_lr / self.final_div
        up = start + (self.max_lr - start) * minimum(step / warm, 1.0)
        progress = clip((step - warm) / max(1.0, self.total_steps - warm), 0.0, 1.0)
        down = end + (self.max_lr - end) * 0.5 * (1.0 + cos(math.pi * progress))
        return where(step < warm, up, down)

    def get_config(self):
        return dict(max_lr=self.max_lr, total_steps=self.total_steps, warmup=self.warmup,
                    div_factor=self.div_factor, final_div=self.final_div)


def _concrete(step) -> float | None:
    """`step` as a Python number when it has a value now (eager), None while a step is traced."""
    value = step.value if isinstance(step, keras.Variable) else step
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if isinstance(value, jax.core.Tracer):
            return None
    elif backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly() or (isinstance(value, tf.Tensor) and not hasattr(value, "numpy")):
            return None
    else:
        return None
    return float(ops.convert_to_numpy(value))
