"""Schedule-free AdamW and the callback that evaluates its averaged weights (see the package docstring for the
reference and its defaults)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from benchmarks.lr_tasks.lr_free.base import _lerp, _check_common, _GlobalStepOptimizer


class _YBackup:
    """Holds the training point saved by `eval_weights` (a plain object: not tracked as state)."""

    def __init__(self, pairs):
        self.pairs = pairs  # per variable: (y, x as written), NumPy arrays, or None


class ScheduleFreeAdamW(_GlobalStepOptimizer):
    """Schedule-free AdamW (port of `schedulefree.AdamWScheduleFree`, same defaults).

    The model's variables hold the training point y, where gradients are
    taken. The point to evaluate and to keep is the average x; it is not
    stored but derived from y and the base sequence z:
    x = y + (1 - 1/beta_1) * (z - y). Call `eval_weights()` before evaluating
    or saving and `train_weights()` before training again (the reference's
    `optimizer.eval()` / `optimizer.train()`), or pass `ScheduleFreeEval()` to
    `model.fit`. `apply` refuses to step while in eval mode, like the
    reference; that check runs in Python, so under a compiled `fit` it only
    guards the first call (the callback keeps the modes right).
    """

    def __init__(self, learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0,
                 inner_momentum=0.0, name="schedulefree_adamw", **kwargs):
        _check_common(learning_rate, (beta_1, beta_2), epsilon)
        if not 0.0 < beta_1:
            raise ValueError("beta_1 must be > 0: x is recovered from y by dividing by it")
        super().__init__(learning_rate, weight_decay, name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.warmup_steps = int(warmup_steps)
        self.r = float(r)
        self.weight_lr_power = float(weight_lr_power)
        self.inner_momentum = float(inner_momentum)
        self._eval_mode = False
        self._backup = _YBackup(None)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.k = self._scalar("k", 0.0)
        self.lr_max = self._scalar("lr_max", -1.0)
        self.weight_sum = self._scalar("weight_sum", 0.0)
        # z starts as a copy of the variable, taken at the first step as in the reference.
        self._z, self._exp_avg_sq = self.add_optimizer_variables(var_list, ["z", "exp_avg_sq"])
        self._exp_avg = (self.add_optimizer_variables(var_list, "exp_avg")
                         if self.inner_momentum != 0 else [None] * len(var_list))

    @property
    def in_eval_mode(self) -> bool:
        return self._eval_mode

    def apply(self, grads, trainable_variables=None):
        if self._eval_mode:
            raise RuntimeError("ScheduleFreeAdamW is in eval mode (the model holds x): "
                               "call train_weights() before taking a step")
        return super().apply(grads, trainable_variables)

    def _global_update(self, grads, variables, learning_rate):
        beta1, beta2 = self.beta_1, self.beta_2
        k = ops.convert_to_tensor(self.k)
        if self.warmup_steps > 0:
            sched = ops.where(k < self.warmup_steps, (k + 1.0) / self.warmup_steps, 1.0)
        else:
            sched = 1.0
        bias_correction2 = 1.0 - ops.power(beta2, k + 1.0)
        if self.inner_momentum != 0:
            bias_correction1 = 1.0 - ops.power(self.inner_momentum, k + 1.0)
        lr = ops.cast(learning_rate, "float32") * sched
        lr_max = ops.maximum(lr, self._value(self.lr_max))
        weight = ops.power(k + 1.0, self.r) * ops.power(lr_max, self.weight_lr_power)
        weight_sum = self._value(self.weight_sum) + weight
        ckp1 = ops.where(weight_sum > 0, weight / ops.where(weight_sum > 0, weight_sum, 1.0), 0.0)
        self.assign(self.lr_max, lr_max)
        self.assign(self.weight_sum, weight_sum)
        self.assign(self.k, k + 1.0)
        first_step = ops.equal(self.iterations, 0)

        for grad, y in zip(grads, variables):
            z, exp_avg_sq, exp_avg = self._slots(y, self._z, self._exp_avg_sq, self._exp_avg)
            dtype = y.dtype
            grad = ops.cast(grad, dtype)
            y_value = self._value(y)
            z_value = ops.where(first_step, y_value, self._value(z))
            new_sq = self._value(exp_avg_sq) * beta2 + (1 - beta2) * grad * grad
            self.assign(exp_avg_sq, new_sq)
            denom = ops.sqrt(new_sq / ops.cast(bias_correction2, dtype)) + self.epsilon
            if exp_avg is not None:
                new_avg = (self._value(exp_avg) * self.inner_momentum
                           + (1 - self.inner_momentum) * grad)
                self.assign(exp_avg, new_avg)
                grad_normalized = new_avg / ops.cast(bias_correction1, dtype) / denom
            else:
                grad_normalized = grad / denom
            if self.decay != 0:
                grad_normalized = grad_normalized + self.decay * y_value  # decay taken at y
            c = ops.cast(ckp1, dtype)
            step = ops.cast(lr, dtype)
            # y moves toward z by ckp1 and along the gradient, so x need not be stored.
            new_y = _lerp(y_value, z_value, c)
            new_y = new_y + step * (beta1 * (1 - c) - 1) * grad_normalized
            self.assign(y, new_y)
            self.assign(z, z_value - step * grad_normalized)

    # Switching between the training point y and the average x.

    def _pairs(self):
        return [(var, self._z[i]) for i, var in enumerate(self._trainable_variables)]

    def _started(self) -> bool:
        # Before the first step z is not set yet; the reference's eval()/train()
        # then leave the weights alone.
        return self.built and float(ops.convert_to_numpy(self.k)) > 0

    def eval_weights(self, model=None):
        """Put the averaged weights x into the model (reference: `optimizer.eval()`).

        `model` is accepted for symmetry with callbacks and not needed: the
        optimizer holds the variables it was built on. No-op if already in
        eval mode.
        """
        if self._eval_mode:
            return
        pairs = None
        if self._started():
            pairs = []
            weight = 1.0 - 1.0 / self.beta_1
            for var, z in self._pairs():
                if z is None:
                    pairs.append(None)
                    continue
                y = ops.convert_to_numpy(var).copy()
                var.assign(_lerp(ops.convert_to_tensor(var), ops.convert_to_tensor(z),
                                 ops.cast(weight, var.dtype)))
                pairs.append((y, ops.convert_to_numpy(var).copy()))
        self._backup = _YBackup(pairs)
        self._eval_mode = True

    def train_weights(self, model=None):
        """Put the training point y back (reference: `optimizer.train()`).

        Restores y bit for bit from the copy `eval_weights` kept; a variable
        whose x was changed meanwhile (e.g. weights loaded) gets y recomputed
        from its new value as the reference does. No-op if in train mode.
        """
        if not self._eval_mode:
            return
        pairs = self._backup.pairs
        if pairs is not None:
            weight = 1.0 - self.beta_1
            for (var, z), saved in zip(self._pairs(), pairs):
                if saved is None:
                    continue
                y, x_written = saved
                if np.array_equal(ops.convert_to_numpy(var), x_written):
                    var.assign(y)
                else:
                    var.assign(_lerp(ops.convert_to_tensor(var), ops.convert_to_tensor(z),
                                     ops.cast(weight, var.dtype)))
        self._backup = _YBackup(None)
        self._eval_mode = False

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      warmup_steps=self.warmup_steps, r=self.r,
                      weight_lr_power=self.weight_lr_power, inner_momentum=self.inner_momentum)
        return config


def _schedule_free(optimizer):
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    return inner if isinstance(inner, ScheduleFreeAdamW) else None


class ScheduleFreeEval(keras.callbacks.Callback):
    """Evaluates a schedule-free model at its averaged weights x.

    Swaps x in for validation (and for `evaluate`/`predict` calls given this
    callback) and y back afterwards; with `swap_on_train_end` (default) the
    model keeps x when `fit` returns, which is the model to report or save.
    A later `fit` with this callback switches back to y first. Does nothing
    for other optimizers.
    """

    def __init__(self, swap_on_train_end: bool = True):
        super().__init__()
        self.swap_on_train_end = swap_on_train_end
        self._swapped = False

    def _optimizer(self):
        return _schedule_free(getattr(self.model, "optimizer", None))

    def _to_eval(self):
        opt = self._optimizer()
        if opt is not None and not opt.in_eval_mode:
            opt.eval_weights()
            self._swapped = True

    def _to_train(self):
        opt = self._optimizer()
        if opt is not None and self._swapped:
            opt.train_weights()
        self._swapped = False

    def on_train_begin(self, logs=None):
        opt = self._optimizer()
        if opt is not None and opt.in_eval_mode:
            opt.train_weights()
        self._swapped = False

    def on_test_begin(self, logs=None):
        self._to_eval()

    def on_test_end(self, logs=None):
        self._to_train()

    def on_predict_begin(self, logs=None):
        self._to_eval()

    def on_predict_end(self, logs=None):
        self._to_train()

    def on_train_end(self, logs=None):
        if self.swap_on_train_end:
            opt = self._optimizer()
            if opt is not None:
                opt.eval_weights()
            self._swapped = False
