"""mnistlab.models.steps: one batch at a time, as train_on_batch would, only faster on JAX."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnistlab.models.steps import BatchStepper

D = 12


def model_with_everything(optimizer, **compile_options):
    """BatchNorm (non-trainable state), dropout (seed state), two metrics."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((D,)), keras.layers.Dense(16), keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"), keras.layers.Dropout(0.3), keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  **compile_options)
    return model


def batches(n=12, size=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n * size, D)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    return [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size], None) for i in range(n)]


def run(model, keep_state):
    logs_seen, lrs = [], np.geomspace(1e-4, 1.0, len(batches()))
    with BatchStepper(model, keep_state=keep_state) as stepper:
        for batch, lr in zip(batches(), lrs):
            logs = stepper.step(batch, lr)
            logs_seen.append({k: float(np.asarray(v)) for k, v in logs.items()})
    state = [np.array(v.numpy()) for v in [*model.variables, *model.optimizer.variables]]
    return logs_seen, state, stepper


@pytest.mark.parametrize("make_optimizer", [
    lambda: keras.optimizers.Adam(1e-3),
    lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3)),
], ids=["adam", "sgd-momentum", "loss-scale"])
def test_the_same_losses_and_weights_as_train_on_batch(make_optimizer):
    expected_logs, expected_state, _ = run(model_with_everything(make_optimizer()), keep_state=False)
    logs, state, stepper = run(model_with_everything(make_optimizer()), keep_state=True)
    # each step's own loss and accuracy (metrics reset every step), bit for bit
    assert logs == expected_logs
    assert len(state) == len(expected_state)
    for got, want in zip(state, expected_state):
        np.testing.assert_array_equal(got, want)
    # the rate of the last step is what the optimizer holds afterwards
    inner = getattr(stepper.optimizer, "inner_optimizer", stepper.optimizer)
    assert float(inner.learning_rate.numpy()) == np.float32(1.0)
    # losses differ from step to step: the rate and the batches did reach the steps
    assert len({entry["loss"] for entry in logs}) == len(logs)


def test_jax_keeps_the_state_between_steps():
    """On JAX only the first step is a train_on_batch; elsewhere every step is."""
    model = model_with_everything(keras.optimizers.Adam(1e-3))
    calls = []
    train_on_batch = model.train_on_batch
    model.train_on_batch = lambda *a, **k: (calls.append(1), train_on_batch(*a, **k))[1]
    logs, _, stepper = run(model, keep_state=True)
    jax = keras.backend.backend() == "jax"
    assert len(calls) == (1 if jax else len(logs))
    assert stepper.state is None  # closed: the variables hold the trained state again
    iterations = int(model.optimizer.iterations.numpy())
    assert iterations == len(logs)




@pytest.mark.parametrize("options", [
    pytest.param(dict(steps_per_execution=3), marks=pytest.mark.skipif(
        keras.backend.backend() == "torch", reason="Keras' torch trainer refuses steps_per_execution > 1 "
        "(test_lr_finder.py checks the range test says so)")),
    dict(run_eagerly=True)], ids=["steps_per_execution", "run_eagerly"])
def test_compile_options_give_the_same_steps(options):
    expected_logs, expected_state, _ = run(model_with_everything(keras.optimizers.Adam(1e-3), **options), False)
    logs, state, _ = run(model_with_everything(keras.optimizers.Adam(1e-3), **options), True)
    assert logs == expected_logs
    for got, want in zip(state, expected_state):
        np.testing.assert_array_equal(got, want)


def custom_train_step_model():
    """A model with its own train_step, in the current backend's style (Keras' guides)."""
    keras.utils.set_random_seed(3)
    tracker = keras.metrics.Mean(name="loss")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if keras.backend.backend() == "jax":
        import jax

        class Custom(keras.Model):
            def compute_loss_and_updates(self, trainable, non_trainable, x, y):
                y_pred, non_trainable = self.stateless_call(trainable, non_trainable, x, training=True)
                return loss_fn(y, y_pred), non_trainable

            def train_step(self, state, data):
                trainable, non_trainable, optimizer_vars, metrics_vars = state
                x, y = data[0], data[1]
                (loss, non_trainable), grads = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)(
                    trainable, non_trainable, x, y)
                trainable, optimizer_vars = self.optimizer.stateless_apply(optimizer_vars, grads, trainable)
                metrics_vars = tracker.stateless_update_state(metrics_vars, loss)
                return {"loss": tracker.stateless_result(metrics_vars)}, (
                    trainable, non_trainable, optimizer_vars, metrics_vars)

            @property
            def metrics(self):
                return [tracker]
    elif keras.backend.backend() == "torch":
        import torch

        class Custom(keras.Model):
            def train_step(self, data):
                x, y = data[0], data[1]
                loss = loss_fn(y, self(x, training=True))
                self.zero_grad()
                loss.backward()
                weights = self.trainable_weights[:]
                with torch.no_grad():
                    self.optimizer.apply([v.value.grad for v in weights], weights)
                tracker.update_state(loss)
                return {"loss": tracker.result()}

            @property
            def metrics(self):
                return [tracker]
    else:
        import tensorflow as tf

        class Custom(keras.Model):
            def train_step(self, data):
                x, y = data[0], data[1]
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, self(x, training=True))
                grads = tape.gradient(loss, self.trainable_variables)
                self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
                tracker.update_state(loss)
                return {"loss": tracker.result()}

            @property
            def metrics(self):
                return [tracker]

    inputs = keras.Input((D,))
    outputs = keras.layers.Dense(3)(keras.layers.Dropout(0.2)(keras.layers.Dense(16, activation="relu")(inputs)))
    model = Custom(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))  # no loss: the train_step has its own
    return model


def test_a_custom_train_step_gives_the_same_steps():
    expected_logs, expected_state, _ = run(custom_train_step_model(), keep_state=False)
    logs, state, _ = run(custom_train_step_model(), keep_state=True)
    assert logs == expected_logs and len({entry["loss"] for entry in logs}) == len(logs)
    for got, want in zip(state, expected_state):
        np.testing.assert_array_equal(got, want)
