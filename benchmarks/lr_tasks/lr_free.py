"""Learning-rate-free optimizers for Keras 3 (issue 29): Prodigy, D-Adapt Adam, schedule-free AdamW.

Issue 29 compares the LR range test's suggestion with what people now pick
instead of a finder: an optimizer that needs no learning rate. This module
ports three of them to Keras 3, at the reference implementations' default
settings, written with `keras.ops` only so they run on jax, tensorflow and
torch, eagerly and compiled (jax.jit, tf.function with or without XLA, and
torch.compile, where the graph breaks come from Keras' torch trainer, not
from these optimizers).

References read for this port (the PyTorch packages the papers point to):

* Prodigy (Mishchenko & Defazio 2023, arXiv:2306.06101): `prodigyopt`,
  github.com/konstmish/prodigy, `prodigyopt/prodigy.py` class `Prodigy`
  (commit 3efb213, Jan 2025). Defaults: lr=1.0, betas=(0.9, 0.999),
  beta3=None (= sqrt(beta2)), eps=1e-8, weight_decay=0 (decoupled), d0=1e-6,
  d_coef=1.0, growth_rate=inf, use_bias_correction=False,
  safeguard_warmup=False, slice_p=1.
* D-Adaptation Adam (Defazio & Mishchenko 2023, arXiv:2301.07733):
  `dadaptation`, github.com/facebookresearch/dadaptation,
  `dadaptation/dadapt_adam.py` class `DAdaptAdam` (commit c984980, Jan 2025).
  Defaults: lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0 (coupled,
  i.e. L2 added to the gradient), d0=1e-6, growth_rate=inf,
  use_bias_correction=False, layer_scale=1.
* Schedule-free AdamW (Defazio et al. 2024, arXiv:2405.15682): `schedulefree`,
  github.com/facebookresearch/schedule_free,
  `schedulefree/adamw_schedulefree.py` class `AdamWScheduleFree` (commit
  70785b5). Defaults: lr=0.0025, betas=(0.9, 0.999), eps=1e-8,
  weight_decay=0, warmup_steps=0, r=0, weight_lr_power=2, inner_momentum=0.
  That version divides the second moment by its bias correction inside the
  square root (older releases multiplied the learning rate by
  sqrt(1 - beta2^t) instead); this port follows the current one.

Is there a maintained Keras 3 version? (checked when this was written)

* Schedule-free AdamW: yes, `keras.optimizers.ScheduleFreeAdamW` (added by
  keras-team/keras PR #22113, Feb 2026; present in keras 3.15). mnistlab
  allows keras>=3.8, which lacks it, and it has no way to switch the model to
  the averaged weights x for evaluation (Keras has no `optimizer.eval()`), so
  it is ported here too. At the defaults (no warmup, no weight decay) the two
  compute the same iterates up to rounding on jax (the tests check it when the
  installed keras has it). On tensorflow and torch the keras 3.15.1 built-in
  does not follow the reference: it saves `momentum.value` before updating
  the momentum in place, and on those backends that is the variable itself,
  so it recovers x from the new z instead of the old one (copying the value
  first makes it match). With warmup or weight decay they differ: Keras
  weights the average by 1/t and decays at y with AdamW's decoupled rule,
  the reference weights by lr_max^2 and adds decay * y to the normalised
  gradient; this port follows the reference.
* Prodigy and D-Adapt Adam: no. Neither keras, keras-hub nor keras-cv ships
  them; the Keras ports found (e.g. the personal repository NoteDance/optimizers)
  call TensorFlow directly, so they do not run on jax or torch.

How the global step is done. Prodigy and D-Adaptation share one step size d
across all variables, and d at step k needs sums over every variable (an inner
product and an l1 norm) before any variable may move. Keras' per-variable
`update_step` cannot express that, so these optimizers override
`_backend_update_step(grads, variables, learning_rate)`, which the base
`apply` calls once per step with all gradients (after clipping, gradient
accumulation and loss-scale handling): a first pass updates the moment
estimates and accumulates the sums, the new d is computed, a second pass
moves the variables. Every branch of the reference that depends on a value
(`d == d0`, "no gradient at all, skip the step") is written with `ops.where`,
so the same code traces under jax.jit and tf.function and runs eagerly on
torch. On tensorflow this bypasses the tf.distribute merge of the built-in
optimizers: the port is meant for one replica (no MirroredStrategy, no FSDP).

Deliberate differences from the references, none of which changes the
iterates at the defaults:

* Scalars the reference keeps as Python floats (double precision), such as d
  and the d numerator, are float32 optimizer variables here (jax runs in
  float32), so results agree with the reference to float32 rounding.
* `slice_p` (Prodigy) and `layer_scale` (D-Adapt) are not ported: their
  defaults (1) are the only values used.
* Weight decay (0 by default) follows each reference and applies to every
  variable: Keras' `exclude_from_weight_decay` does not affect it.
* Learning-rate schedules are accepted, but a learning rate of exactly 0 is
  not special-cased as in the references (which then freeze d).
* Schedule-free's `eval()`/`train()` computes x from y and z and back, which
  is exact only up to rounding. Here `eval_weights()` stores the training
  point y and `train_weights()` restores it bit for bit, unless the weights
  were changed while in eval mode, in which case y is recomputed from x as
  the reference does. The reference raises if a step is taken in eval mode;
  here that check is Python, so under a compiled `fit` it only runs while
  the step is traced: use `ScheduleFreeEval`, which restores y before
  training.

Use: `make("prodigy")`, `make("dadapt_adam")`, `make("schedulefree_adamw")`
give the optimizers at their defaults. For schedule-free, pass
`ScheduleFreeEval()` to `model.fit` so validation runs on x and the model
ends training holding x, or call `optimizer.eval_weights()` /
`optimizer.train_weights()` around your own evaluation.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

NAMES = ("prodigy", "dadapt_adam", "schedulefree_adamw")


def _lerp(start, end, weight):
    """torch.lerp: start + weight * (end - start), in the form torch uses for each half.

    torch computes weights >= 0.5 from the `end` side so a weight of 1 gives
    `end` exactly; copying that keeps schedule-free's first step (weight 1)
    identical to the reference.
    """
    diff = end - start
    return ops.where(weight < 0.5, start + weight * diff, end - diff * (1.0 - weight))


def _check_common(lr, betas, eps, d0=None):
    if d0 is not None and not d0 > 0.0:
        raise ValueError(f"Invalid d0 value: {d0}")
    if isinstance(lr, (int, float)) and not lr > 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not eps > 0.0:
        raise ValueError(f"Invalid epsilon value: {eps}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


class _GlobalStepOptimizer(keras.optimizers.Optimizer):
    """Base for optimizers whose step needs all gradients at once.

    Subclasses implement `_global_update(grads, variables, learning_rate)`;
    the `weight_decay` of the base optimizer is not used (each algorithm
    applies its own decay as its reference does), so it is passed as None.
    The other base options (clipping, gradient accumulation, EMA, loss
    scaling) act around the update as for any Keras optimizer.
    """

    def __init__(self, learning_rate, weight_decay, name, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        self.decay = float(weight_decay or 0.0)

    def _scalar(self, name, value):
        return self.add_variable(
            shape=(), initializer=keras.initializers.Constant(value), dtype="float32", name=name
        )

    def _slots(self, variable, *slot_lists):
        index = self._get_variable_index(variable)
        return [slots[index] for slots in slot_lists]

    @staticmethod
    def _value(variable):
        # The current value as a tensor: jax's where/arithmetic refuse Variables
        # inside a trace, and under jax's stateless apply this reads the scope's value.
        return None if variable is None else ops.convert_to_tensor(variable)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Dense gradients: on TensorFlow an Embedding's gradient arrives as IndexedSlices, which
        # the reductions over all variables cannot add (the references densify them too).
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        self._global_update(grads, list(trainable_variables), learning_rate)

    def _global_update(self, grads, variables, learning_rate):
        raise NotImplementedError(f"{type(self).__name__} must implement _global_update (one step over all variables)")

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.decay
        return config


class _AdaptiveD(_GlobalStepOptimizer):
    """What Prodigy and D-Adapt Adam share: Adam's settings and a step size D estimated from `d0`."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, weight_decay, decouple,
                 use_bias_correction, d0, growth_rate, name, **kwargs):
        _check_common(learning_rate, (beta_1, beta_2), epsilon, d0)
        super().__init__(learning_rate, weight_decay, name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.decouple = bool(decouple)
        self.use_bias_correction = bool(use_bias_correction)
        self.d0 = float(d0)
        self.growth_rate = float(growth_rate)

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      decouple=self.decouple, use_bias_correction=self.use_bias_correction,
                      d0=self.d0, growth_rate=self.growth_rate)
        return config


class Prodigy(_AdaptiveD):
    """Adam with Prodigy's step size D (port of `prodigyopt.Prodigy`, same defaults).

    Leave `learning_rate` at 1.0: it multiplies the adapted step size. The
    current estimate is `optimizer.d` (starts at `d0`); the effective Adam
    learning rate is d * learning_rate.
    """

    def __init__(self, learning_rate=1.0, beta_1=0.9, beta_2=0.999, beta_3=None, epsilon=1e-8,
                 weight_decay=0.0, decouple=True, use_bias_correction=False,
                 safeguard_warmup=False, d0=1e-6, d_coef=1.0, growth_rate=float("inf"),
                 name="prodigy", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, decouple,
                         use_bias_correction, d0, growth_rate, name, **kwargs)
        self.beta_3 = None if beta_3 is None else float(beta_3)
        self.safeguard_warmup = bool(safeguard_warmup)
        self.d_coef = float(d_coef)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Shared state: the reference keeps these in its param group.
        self.d = self._scalar("d", self.d0)
        self.d_max = self._scalar("d_max", self.d0)
        self.d_numerator = self._scalar("d_numerator", 0.0)
        self.k = self._scalar("k", 0.0)  # steps actually taken (bias correction)
        # Per-variable state: s, p0 (the starting point, set at the first step),
        # and Adam's moments (no first moment when beta_1 == 0, as in the reference).
        self._s = self.add_optimizer_variables(var_list, "s")
        self._p0 = self.add_optimizer_variables(var_list, "p0")
        self._exp_avg = (self.add_optimizer_variables(var_list, "exp_avg")
                         if self.beta_1 > 0 else [None] * len(var_list))
        self._exp_avg_sq = self.add_optimizer_variables(var_list, "exp_avg_sq")

    def _global_update(self, grads, variables, learning_rate):
        beta1, beta2 = self.beta_1, self.beta_2
        beta3 = math.sqrt(beta2) if self.beta_3 is None else self.beta_3
        lr = ops.cast(learning_rate, "float32")
        d = ops.convert_to_tensor(self.d)
        d_max = ops.convert_to_tensor(self.d_max)
        k = ops.convert_to_tensor(self.k)
        d0 = self.d0
        if self.use_bias_correction:
            bias_correction = ops.sqrt(1.0 - ops.power(beta2, k + 1.0)) / (1.0 - ops.power(beta1, k + 1.0))
        else:
            bias_correction = 1.0
        dlr = d * lr * bias_correction
        first_step = ops.equal(self.iterations, 0)

        d_numerator = ops.convert_to_tensor(self.d_numerator) * beta3
        delta_numerator = ops.zeros((), "float32")
        d_denom = ops.zeros((), "float32")
        # First pass: moments, s, and the two global sums that define d. The
        # new values are kept for the second pass rather than read back.
        moments = []
        for grad, var in zip(grads, variables):
            s, p0, exp_avg, exp_avg_sq = self._slots(var, self._s, self._p0, self._exp_avg,
                                                     self._exp_avg_sq)
            dtype = var.dtype
            value = self._value(var)
            grad = ops.cast(grad, dtype)
            if self.decay != 0 and not self.decouple:
                grad = grad + self.decay * value
            # The reference copies p0 when it first sees the variable.
            p0_value = ops.where(first_step, value, self._value(p0))
            self.assign(p0, p0_value)
            scale = (d / d0) * dlr
            delta_numerator = delta_numerator + scale * ops.cast(
                ops.sum(grad * (p0_value - value)), "float32")
            new_avg = None
            if exp_avg is not None:
                new_avg = self._value(exp_avg) * beta1 + ops.cast(d * (1 - beta1), dtype) * grad
                self.assign(exp_avg, new_avg)
            new_sq = (self._value(exp_avg_sq) * beta2
                      + ops.cast(d * d * (1 - beta2), dtype) * grad * grad)
            self.assign(exp_avg_sq, new_sq)
            s_scale = (d / d0) * d if self.safeguard_warmup else scale
            new_s = self._value(s) * beta3 + ops.cast(s_scale, dtype) * grad
            self.assign(s, new_s)
            d_denom = d_denom + ops.cast(ops.sum(ops.abs(new_s)), "float32")
            moments.append((grad, value, new_avg, new_sq))

        # The reference returns before moving anything when every s is zero
        # (no gradient yet); `stepped` carries that branch.
        stepped = d_denom > 0
        global_numerator = d_numerator + delta_numerator
        d_hat = self.d_coef * global_numerator / ops.where(stepped, d_denom, 1.0)
        new_d = ops.where(ops.equal(d, ops.cast(d0, "float32")), ops.maximum(d, d_hat), d)
        new_d_max = ops.maximum(d_max, d_hat)
        new_d = ops.minimum(new_d_max, new_d * self.growth_rate)

        self.assign(self.d_numerator,
                    ops.where(stepped, global_numerator, self._value(self.d_numerator)))
        self.assign(self.d, ops.where(stepped, new_d, d))
        self.assign(self.d_max, ops.where(stepped, new_d_max, d_max))
        self.assign(self.k, ops.where(stepped, k + 1.0, k))

        # Second pass: the Adam step with the old d in dlr and the new d in eps.
        for var, (grad, value, new_avg, new_sq) in zip(variables, moments):
            dtype = var.dtype
            denom = ops.sqrt(new_sq) + ops.cast(new_d * self.epsilon, dtype)
            step_lr = ops.cast(dlr, dtype)
            new_var = value
            if self.decay != 0 and self.decouple:
                new_var = new_var - (self.decay * step_lr) * new_var
            if new_avg is not None:
                new_var = new_var - step_lr * (new_avg / denom)
            else:
                new_var = new_var - ops.cast(dlr * new_d, dtype) * (grad / denom)
            self.assign(var, ops.where(stepped, new_var, value))

    def get_config(self):
        config = super().get_config()
        config.update(beta_3=self.beta_3, safeguard_warmup=self.safeguard_warmup, d_coef=self.d_coef)
        return config


class DAdaptAdam(_AdaptiveD):
    """Adam with D-Adaptation's step size (port of `dadaptation.DAdaptAdam`, same defaults).

    Leave `learning_rate` at 1.0. `optimizer.d` is the current estimate of
    the distance to the solution; the step is d * learning_rate.
    """

    def __init__(self, learning_rate=1.0, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, decouple=False, use_bias_correction=False, d0=1e-6,
                 growth_rate=float("inf"), name="dadapt_adam", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, decouple,
                         use_bias_correction, d0, growth_rate, name, **kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.d = self._scalar("d", self.d0)
        self.numerator_weighted = self._scalar("numerator_weighted", 0.0)
        self.k = self._scalar("k", 0.0)
        self._s, self._exp_avg, self._exp_avg_sq = self.add_optimizer_variables(
            var_list, ["s", "exp_avg", "exp_avg_sq"])

    def _global_update(self, grads, variables, learning_rate):
        beta1, beta2 = self.beta_1, self.beta_2
        sqrt_beta2 = math.sqrt(beta2)
        lr = ops.cast(learning_rate, "float32")
        d = ops.convert_to_tensor(self.d)
        k = ops.convert_to_tensor(self.k)
        if self.use_bias_correction:
            bias_correction = ops.sqrt(1.0 - ops.power(beta2, k + 1.0)) / (1.0 - ops.power(beta1, k + 1.0))
        else:
            bias_correction = 1.0
        dlr = d * lr * bias_correction

        numerator_acum = ops.zeros((), "float32")
        sk_l1 = ops.zeros((), "float32")
        # First pass: the inner product with the old s, then moments and s.
        moments = []
        for grad, var in zip(grads, variables):
            s, exp_avg, exp_avg_sq = self._slots(var, self._s, self._exp_avg, self._exp_avg_sq)
            dtype = var.dtype
            value = self._value(var)
            grad = ops.cast(grad, dtype)
            if self.decay != 0 and not self.decouple:
                grad = grad + self.decay * value
            old_s, old_sq = self._value(s), self._value(exp_avg_sq)
            denom = ops.sqrt(old_sq) + self.epsilon
            numerator_acum = numerator_acum + dlr * ops.cast(ops.sum(grad * (old_s / denom)),
                                                             "float32")
            new_avg = self._value(exp_avg) * beta1 + ops.cast(dlr * (1 - beta1), dtype) * grad
            new_sq = old_sq * beta2 + (1 - beta2) * grad * grad
            new_s = old_s * sqrt_beta2 + ops.cast(dlr * (1 - sqrt_beta2), dtype) * grad
            self.assign(exp_avg, new_avg)
            self.assign(exp_avg_sq, new_sq)
            self.assign(s, new_s)
            sk_l1 = sk_l1 + ops.cast(ops.sum(ops.abs(new_s)), "float32")
            moments.append((value, new_avg, new_sq))

        stepped = sk_l1 > 0  # the reference returns early when it is 0
        old_numerator = self._value(self.numerator_weighted)
        numerator_weighted = sqrt_beta2 * old_numerator + (1 - sqrt_beta2) * numerator_acum
        d_hat = numerator_weighted / ((1 - sqrt_beta2) * ops.where(stepped, sk_l1, 1.0))
        new_d = ops.maximum(d, ops.minimum(d_hat, d * self.growth_rate))

        self.assign(self.numerator_weighted, ops.where(stepped, numerator_weighted, old_numerator))
        self.assign(self.d, ops.where(stepped, new_d, d))
        self.assign(self.k, ops.where(stepped, k + 1.0, k))

        # Second pass: the step. dlr (the old d) is already inside exp_avg.
        for var, (value, new_avg, new_sq) in zip(variables, moments):
            dtype = var.dtype
            denom = ops.sqrt(new_sq) + self.epsilon
            new_var = value
            if self.decay != 0 and self.decouple:
                new_var = new_var - ops.cast(self.decay * dlr, dtype) * new_var
            new_var = new_var - new_avg / denom
            self.assign(var, ops.where(stepped, new_var, value))


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


def make(name: str) -> keras.optimizers.Optimizer:
    """A new optimizer `name` (one of NAMES) at its reference defaults."""
    factories = {"prodigy": Prodigy, "dadapt_adam": DAdaptAdam,
                 "schedulefree_adamw": ScheduleFreeAdamW}
    if name not in factories:
        raise ValueError(f"unknown learning-rate-free optimizer {name!r}; choose from {NAMES}")
    return factories[name]()
