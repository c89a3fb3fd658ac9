"""What the learning-rate-free optimizers share: torch's lerp, argument checks, a step over all gradients at once,
and the distance estimate d of the D-Adaptation family (see the package docstring for the references)."""

from __future__ import annotations

import keras
from keras import ops


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
