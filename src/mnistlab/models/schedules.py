"""Learning-rate schedules Keras does not ship (one-cycle), and a schedule from a peak rate.

    >>> result = mnistlab.lr_range_test(model, x, y, batch_size=128)
    >>> schedule = result.schedule("onecycle", total_steps=epochs * steps_per_epoch)
    >>> model.compile(optimizer=keras.optimizers.Adam(schedule), loss=..., metrics=["accuracy"])

`peak_schedule(kind, peak_lr, total_steps)` is what `train()` uses for
`--schedule cosine|onecycle`, and what `LRRangeResult.schedule` calls with the
suggestion as the peak.
"""

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
            # float32: with backend ops, JAX would compile each of them on first use
            # (docs/performance.md, "Smaller measurements behind the code"); steps are traced.
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


SCHEDULE_KINDS = ("onecycle", "cosine")


def peak_schedule(kind: str, peak_lr: float, total_steps: int, **options):
    """A Keras `LearningRateSchedule` over `total_steps` optimizer steps whose highest rate is `peak_lr`.

    Args:
        kind: `onecycle` (`OneCycle`: linear warm-up from `peak_lr / div_factor`
            over the first `warmup` share of the steps, then cosine annealing to
            `peak_lr / final_div`) or `cosine` (`keras.optimizers.schedules.CosineDecay`:
            from `peak_lr` down to `peak_lr * alpha`).
        peak_lr: the highest rate, e.g. an LR range test's suggestion.
        total_steps: optimizer steps in the whole run (epochs x steps per epoch).
        **options: `warmup`, `div_factor`, `final_div` for `onecycle`; `alpha`
            (default 1e-3) for `cosine`.

    Raises:
        ValueError: an unknown kind, a rate that is not a positive number, fewer
            than one step, or an option the kind does not take.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}: choose one of {', '.join(SCHEDULE_KINDS)}")
    if isinstance(peak_lr, bool) or not isinstance(peak_lr, (int, float, np.floating)) or not (
            math.isfinite(peak_lr) and peak_lr > 0):
        raise ValueError(f"peak_lr must be a positive number, got {peak_lr!r}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise ValueError(f"total_steps must be a whole number >= 1 (epochs x steps per epoch), got {total_steps!r}")
    allowed = {"onecycle": ("warmup", "div_factor", "final_div"), "cosine": ("alpha",)}[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"the {kind} schedule takes {', '.join(allowed)}, not {', '.join(unknown)}")
    if kind == "onecycle":
        return OneCycle(max_lr=float(peak_lr), total_steps=int(total_steps), **options)
    return keras.optimizers.schedules.CosineDecay(float(peak_lr), decay_steps=int(total_steps),
                                                  alpha=options.get("alpha", 1e-3))


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
