"""Prodigy and D-Adaptation Adam: Adam whose step size is an estimate d of the distance to the solution,
grown from d0 as training goes (see the package docstring for the references and their defaults)."""

from __future__ import annotations

import math

from keras import ops

from benchmarks.lr_tasks.lr_free.base import _AdaptiveD


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
