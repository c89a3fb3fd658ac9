"""Training steps where Keras' public API is slower than it needs to be.

Two places, both measured (BENCHMARKS.md, "What made it fast"), both reaching into Keras' private
trainer API, kept here so there is one file to check when Keras changes. Each
falls back to Keras' public behaviour when that API is missing:

- `build_training_state`: create a compiled model's metric and optimizer
  variables before its first step, so TensorFlow traces the step once.
- `BatchStepper`: train one batch at a time at a given learning rate and read
  that batch's own loss (the LR range test's loop). On JAX it keeps the
  model's state as arrays between steps, as `fit` does, instead of
  `train_on_batch`'s gathering and writing back of every variable each step;
  on TensorFlow and torch each step is a `train_on_batch`.
"""

from __future__ import annotations

import keras
import numpy as np


def build_training_state(model: keras.Model, x, y) -> None:
    """Create a compiled model's metric and optimizer variables before its first step.

    On TensorFlow without a distribution strategy, Keras creates them inside the
    first traced training (or test) step, and TensorFlow traces a function that
    creates variables twice, which made the fast CNN's first call markedly slower
    than when they exist beforehand (BENCHMARKS.md, "What made it fast": one trace
    of the training step on TensorFlow).
    Keras' own build, which its JAX trainer and its distributed TensorFlow trainer
    always run first, does it from the shapes of a batch (`x`, `y`); elsewhere,
    or if a Keras version lacks it, nothing happens and Keras builds them as before.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    if keras.backend.backend() == "tensorflow" and symbolic_build is not None:
        symbolic_build(data_batch=(x, y))


class BatchStepper:
    """Train a compiled model one batch at a time, each at its own learning rate.

    `step(batch, lr)` returns the logs of exactly that batch (the metrics are
    reset before each step, as `train_on_batch` does), so `logs["loss"]` is the
    batch's own loss. Use it as a context manager, or call `close()`: the model's
    variables hold the trained state only after that.

    Why not `train_on_batch` alone: on JAX each call gathers every variable
    into the step's state and assigns every one back afterwards, a measurable part
    of the default MLP's step (BENCHMARKS.md, "What made it fast": the LR range
    test's stepper, and its log). After a first `train_on_batch`, which builds and compiles everything
    the Keras way, this keeps the state returned by the model's compiled
    `train_function` and feeds it to the next step, as Keras' own `fit` does,
    with the learning rate and fresh metric variables put into it. The losses
    and weights are bit for bit those of `train_on_batch` (tests/test_steps.py).
    Elsewhere (TensorFlow, torch, a distribution, a Keras without these methods, an
    optimizer whose rate is not one of its variables) every step is a
    `train_on_batch`. On torch there is no state to keep: the model's variables
    are torch tensors that the step updates in place, and Keras' torch
    `train_on_batch` is its one-step train function plus a metric reset, a small
    part of the step (docs/performance.md, "PyTorch").

    Args:
        model: a compiled Keras 3 model.
        keep_state: on JAX, keep the state between steps (the fast path);
            False makes every step a `train_on_batch`.
    """

    def __init__(self, model: keras.Model, keep_state: bool = True):
        self.model = model
        self.optimizer = model.optimizer
        self.keep_state = keep_state and keras.backend.backend() == "jax"
        self.state = None  # the JAX state once the fast path runs
        self.steps = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def step(self, batch, lr: float) -> dict:
        """Train on `batch` (`(x, y, sample_weight)`) at learning rate `lr`; that batch's logs."""
        self.steps += 1
        if self.state is None:
            if self.steps == 1 and keras.backend.backend() == "tensorflow":
                build_training_state(self.model, batch[0], batch[1])
            self.optimizer.learning_rate = float(lr)
            logs = self.model.train_on_batch(*batch, return_dict=True)
            if self.keep_state:
                self._start_state()
            return logs
        return self._state_step(batch, lr)

    def close(self) -> None:
        """Write the kept state back into the model's variables (nothing to do otherwise)."""
        if self.state is None:
            return
        model, state, self.state = self.model, self.state, None
        groups = (model.trainable_variables, model.non_trainable_variables, self.optimizer.variables,
                  model.metrics_variables)
        for variables, values in zip(groups, state):
            for variable, value in zip(variables, values):
                variable.assign(value)

    # ---------------------------------------------------------------- JAX

    def _start_state(self):
        """After a first `train_on_batch`: take the model's state, if every piece is there."""
        from keras import distribution

        model = self.model
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)  # LossScaleOptimizer
        rate = getattr(inner, "_learning_rate", None)
        at = [i for i, v in enumerate(self.optimizer.variables) if v is rate]
        if (not at or distribution.distribution() is not None or getattr(model, "train_function", None) is None
                or not hasattr(model, "_get_jax_state")):
            self.keep_state = False
            return
        self.rate_at, self.rate_dtype = at[0], rate.dtype
        model.reset_metrics()
        # The metric variables each step starts from, as `train_on_batch` resets them.
        self.fresh_metrics = [np.array(v.numpy(), copy=True) for v in model.metrics_variables]
        self.state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                          optimizer_variables=True, metrics_variables=True)

    def _state_step(self, batch, lr):
        import jax

        trainable, non_trainable, optimizer_vars, _ = self.state
        optimizer_vars = list(optimizer_vars)
        optimizer_vars[self.rate_at] = jax.numpy.asarray(lr, dtype=self.rate_dtype)
        # New arrays every step: the compiled step donates (frees) its input state.
        metrics = [jax.numpy.asarray(a) for a in self.fresh_metrics]
        data = keras.tree.map_structure(lambda a: None if a is None else jax.device_put(a), tuple(batch))
        state = (trainable, non_trainable, optimizer_vars, metrics)
        self.state = None  # donated: if the step fails, the model keeps what `close` cannot give back
        logs, self.state = self.model.train_function(state, iter([data]))
        return logs
