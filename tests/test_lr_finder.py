"""The LR range test: suggestions, stopping, exact restore, inputs, files, CLI.

Most tests use least-squares regression with plain SGD, whose good rates are
known: the loss is a quadratic with Hessian 2*I, so SGD converges for rates
below 1 (fastest at 0.5) and diverges above it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import cli_env

from mnistlab.errors import MnistlabError
from mnistlab.lr_range.finder import ALL_RULES, CURVE_RULE, DEFAULT_RULE, LRRangeResult, lr_range_test
from mnistlab.lr_range.rules import diverged, smooth, valley_index

D = 8


def regression_data(n=2048, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype("float32")
    w = rng.normal(size=(D, 1)).astype("float32")
    y = (x @ w + noise * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def linear_model(lr=0.1):
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def state(model):
    """Every variable of the model, its optimizer and its metrics (the loss tracker too), as numpy arrays."""
    return [np.array(v.numpy()) for v in [*model.variables, *model.optimizer.variables, *model.metrics_variables]]


def torch_rng_state():
    """torch's global generator state as a numpy array on torch; None on other backends."""
    if keras.backend.backend() != "torch":
        return None
    import torch

    return torch.get_rng_state().numpy().copy()


def assert_same_state(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


# ------------------------------------------------------------------ the curve and the rules


def test_known_good_range_gets_a_default_suggestion_inside_it():
    x, y = regression_data(n=4096)
    result = lr_range_test(linear_model(), x, y, min_lr=1e-4, max_lr=10.0, steps=100,
                           batch_size=128, verbose=0)
    assert result.default_rule == DEFAULT_RULE
    assert result.suggestion is not None, result.reasons
    assert 0.01 <= result.suggestion < 1.0, result.suggestions
    # SGD diverges above lr 1: the test must have seen it and stopped.
    assert result.stop_reason.startswith(("diverged", "non-finite")), result.stop_reason
    for rule in ("steepest", "valley", "min_div10", "middle"):
        assert result.suggestions[rule] is not None and 1e-3 <= result.suggestions[rule] < 1.0, rule
    assert set(result.suggestions) == set(ALL_RULES)
    assert result.reason is None
    low, high = result.lr_range
    assert low <= result.suggestion <= high < 1.0  # SGD diverges above 1 on this problem


def test_rates_grow_exponentially_and_the_curve_is_the_lag_free_smoothing():
    x, y = regression_data()
    result = lr_range_test(linear_model(), x, y, min_lr=1e-5, max_lr=1e-1, steps=30, verbose=0)
    assert len(result.lrs) == 30 and result.stop_reason.startswith("completed")
    np.testing.assert_allclose(result.lrs, np.logspace(-5, -1, 30), rtol=1e-6)
    np.testing.assert_allclose(result.smoothed, smooth(result.losses), rtol=1e-12)


def test_divergence_stops_the_test_with_a_reason():
    x, y = regression_data()
    result = lr_range_test(linear_model(), x, y, min_lr=1e-3, max_lr=1e3, steps=100, verbose=0)
    assert result.stop_reason.startswith(("diverged", "non-finite")), result.stop_reason
    assert len(result.lrs) < 100
    # stopped the step the batch losses (median of the last 3) passed 4x the lowest loss, not later
    if np.isfinite(result.losses[-1]):
        assert diverged(result.losses, 4.0) and not diverged(result.losses[:-1], 4.0)
    assert result.lrs[-1] > 1.0  # SGD on this problem is stable below 1


def test_nan_loss_stops_the_test_and_nothing_breaks(tmp_path):
    x, y = regression_data(n=640)

    def batches():
        for i in range(20):
            yb = y[32 * i: 32 * (i + 1)].copy()
            if i == 15:
                yb[3] = np.nan
            yield x[32 * i: 32 * (i + 1)], yb

    model = linear_model()
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)
    before = state(model)
    result = lr_range_test(model, batches(), steps=20, verbose=0)
    assert result.stop_reason.startswith("non-finite"), result.stop_reason
    assert len(result.lrs) == 16 and math.isnan(result.losses[-1])
    assert np.isfinite(result.losses[:-1]).all()
    assert_same_state(before, state(model))  # no NaN left in the weights
    result.save(tmp_path, tensorboard=False)
    data = json.loads((tmp_path / "lr_find.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert data["curve"]["loss"][-1] is None


def test_valley_matches_fastais_double_loop():
    def fastai_valley(losses):  # fastai.callback.schedule.valley, verbatim logic
        n = len(losses)
        max_start, max_end = 0, 0
        lds = [1] * n
        for i in range(1, n):
            for j in range(0, i):
                if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                    lds[i] = lds[j] + 1
                if lds[max_end] < lds[i]:
                    max_end = i
                    max_start = max_end - lds[max_end]
        sections = (max_end - max_start) / 3
        return max_start + int(sections) + int(sections / 2)

    rng = np.random.default_rng(1)
    for trial in range(30):
        curve = np.cumsum(rng.normal(-0.05, 0.3, size=rng.integers(5, 80)))
        assert valley_index(curve) == max(0, fastai_valley(list(curve))), trial


def test_flat_and_short_curves_give_none_with_reasons(tmp_path):
    x, y = regression_data()
    flat = lr_range_test(linear_model(), x, y, min_lr=1e-9, max_lr=1e-8, steps=40, verbose=0)
    assert flat.suggestion is None and all(v is None for v in flat.suggestions.values())
    assert "flat" in flat.reason and set(flat.reasons) == set(ALL_RULES)
    short = lr_range_test(linear_model(), x, y, steps=5, verbose=0)
    assert short.suggestion is None and "too short" in short.reason
    short.save(tmp_path, tensorboard=False)  # saving and plotting a useless curve still works
    assert json.loads((tmp_path / "lr_find.json").read_text())["suggestion"] is None


def test_per_batch_losses_are_the_true_batch_losses():
    """Simulate SGD in float64 numpy; a running mean (Keras' logs["loss"]) would not match."""
    x, y = regression_data(n=16, noise=0.3)
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                     bias_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    result = lr_range_test(model, x, y, batch_size=16, min_lr=1e-3, max_lr=0.3, steps=25, verbose=0)
    assert len(result.losses) == 25
    w, b = np.ones((D, 1)), 0.0
    x64, y64 = x.astype("float64"), y.astype("float64")
    expected = []
    for lr in result.lrs:
        err = x64 @ w + b - y64
        expected.append(np.mean(err**2))
        w, b = w - lr * 2 * x64.T @ err / 16, b - lr * 2 * err.mean()
    np.testing.assert_allclose(result.losses, expected, rtol=2e-5)
    running = np.cumsum(expected) / np.arange(1, 26)
    assert not np.allclose(result.losses, running, rtol=1e-2)


# ------------------------------------------------------------------ models and exact restore


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(16)
        self.bn = keras.layers.BatchNormalization()
        self.drop = keras.layers.Dropout(0.3)
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.drop(keras.activations.relu(self.bn(self.dense(x), training=training)),
                                  training=training))


def make_model(kind):
    if kind == "subclassed":
        return Subclassed()
    layers = [keras.layers.Dense(16), keras.layers.BatchNormalization(), keras.layers.Activation("relu"),
              keras.layers.Dropout(0.3), keras.layers.Dense(3, activation="softmax")]
    if kind == "sequential":
        return keras.Sequential([keras.Input((D,)), *layers])
    inputs = keras.Input((D,))
    h = inputs
    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, h)


def classification_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype("float32")
    y = (np.argmax(x[:, :3], axis=1)).astype("int32")
    return x, y


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_any_model_is_restored_bit_for_bit(kind):
    x, y = classification_data()
    model = make_model(kind)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # moments, iterations, BN stats all non-trivial
    before = state(model)
    metric_values = [np.array(v.numpy()) for v in model.metrics_variables]  # the epoch's sums and counts
    assert len(metric_values) == 4 and all(v.any() for v in metric_values)
    iterations = int(model.optimizer.iterations.numpy())
    assert iterations == 8
    torch_rng = torch_rng_state()
    result = lr_range_test(model, x, y, batch_size=32, steps=40, verbose=0)
    assert len(result.lrs) >= 10 and np.isfinite(result.losses[:5]).all()
    assert_same_state(before, state(model))
    if torch_rng is not None:  # on torch an unseeded Dropout draws from the global generator: restored too
        assert np.array_equal(torch_rng, torch_rng_state())
    assert int(model.optimizer.iterations.numpy()) == iterations
    assert float(model.optimizer.learning_rate.numpy()) == np.float32(2e-3)
    # seed generators (dropout) are part of model.variables and so restored too
    assert any("seed_generator" in v.path for v in model.variables)


def test_fresh_model_keeps_its_initial_weights_and_zero_optimizer_state():
    x, y = classification_data()
    model = Subclassed()  # not even built
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    result = lr_range_test(model, x, y, steps=20, verbose=0)
    assert len(result.lrs) == 20
    assert int(model.optimizer.iterations.numpy()) == 0
    moments = [v.numpy() for v in model.optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    assert moments and all(not m.any() for m in moments)
    assert model.metrics_variables and all(not v.numpy().any() for v in model.metrics_variables)
    bn = model.bn
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(bn.moving_variance.numpy(), 1.0)


def test_model_is_restored_when_the_data_fails_midway():
    x, y = regression_data(n=256)
    model = linear_model()
    model.fit(x, y, batch_size=32, verbose=0)
    before = state(model)
    assert all(v.numpy().any() for v in model.metrics_variables)  # the loss tracker's sum and count

    def batches():
        for i in range(5):
            yield x[32 * i: 32 * (i + 1)], y[32 * i: 32 * (i + 1)]
        yield "not a batch"

    with pytest.raises(MnistlabError, match="tuple"):
        lr_range_test(model, batches(), steps=20, verbose=0)
    assert_same_state(before, state(model))


def test_steps_per_execution_above_one_runs_or_on_torch_is_refused_with_what_to_do():
    x, y = regression_data(n=256)
    model = linear_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=3)
    if keras.backend.backend() != "torch":
        assert len(lr_range_test(model, x, y, steps=10, validate=False, verbose=0).lrs) == 10
        return
    with pytest.raises(MnistlabError, match="compile it with steps_per_execution=1"):
        lr_range_test(model, x, y, steps=10, verbose=0)  # Keras' torch trainer refuses it; fit would too


def test_schedule_compiled_model_is_refused():
    model = linear_model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    x, y = regression_data(n=64)
    with pytest.raises(MnistlabError, match="schedule ExponentialDecay"):
        lr_range_test(model, x, y, verbose=0)


def test_uncompiled_model_and_bad_settings_are_refused():
    x, y = regression_data(n=64)
    bare = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1)])
    with pytest.raises(MnistlabError, match="not compiled"):
        lr_range_test(bare, x, y, verbose=0)
    for bad, match in [(dict(min_lr=0), "min_lr"), (dict(min_lr=1e-2, max_lr=1e-3), "max_lr"),
                       (dict(steps=1), "steps"), (dict(smoothing=-1), "smoothing"),

                       (dict(diverge_factor=1), "diverge_factor"), (dict(batch_size=0), "batch_size")]:
        with pytest.raises(MnistlabError, match=match):
            lr_range_test(linear_model(), x, y, verbose=0, **bad)
    with pytest.raises(MnistlabError, match="y is None"):
        lr_range_test(linear_model(), x, verbose=0)


# ------------------------------------------------------------------ inputs


def test_tf_data_pydataset_and_generators():
    import tensorflow as tf

    x, y = regression_data(n=256)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    result = lr_range_test(linear_model(), ds, min_lr=1e-4, max_lr=1.0, steps=20, verbose=0)
    assert len(result.lrs) == 20  # 8 batches per pass, cycled

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[32 * i: 32 * (i + 1)], y[32 * i: 32 * (i + 1)]

    assert len(lr_range_test(linear_model(), Batches(), min_lr=1e-4, max_lr=1.0, steps=10,
                             verbose=0).lrs) == 10
    listed = [(x[32 * i: 32 * (i + 1)], y[32 * i: 32 * (i + 1)]) for i in range(3)]
    assert len(lr_range_test(linear_model(), listed, steps=10, verbose=0).lrs) == 10  # cycled
    one_pass = ((x[32 * i: 32 * (i + 1)], y[32 * i: 32 * (i + 1)]) for i in range(6))
    result = lr_range_test(linear_model(), one_pass, steps=20, verbose=0)
    assert result.stop_reason.startswith("data exhausted") and len(result.lrs) == 6


# ------------------------------------------------------------------ files and CLI


def test_save_writes_png_csv_json_and_tensorboard(tmp_path):
    x, y = regression_data()
    result = lr_range_test(linear_model(), x, y, min_lr=1e-4, max_lr=10.0, steps=60, verbose=0)
    result.save(tmp_path)
    data = json.loads((tmp_path / "lr_find.json").read_text())
    for key in ("suggestion", "default_rule", "suggestions", "reasons", "stop_reason", "settings", "curve", "probes"):
        assert key in data
    assert [p["lr"] for p in data["probes"]] == list(result.probes) and result.probes
    assert data["suggestion"] == result.suggestion and data["default_rule"] == DEFAULT_RULE
    rows = (tmp_path / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "step,lr,loss,smoothed" and len(rows) == len(result.lrs) + 1
    assert float(rows[1].split(",")[2]) == result.losses[0]
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "tensorboard" / "lr_find").glob("events.out.tfevents.*"))
    fig = result.plot()
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log"
    assert isinstance(result, LRRangeResult) and "LRRangeResult(" in repr(result)


def test_cli_lr_find(tiny_mnist_dir, tmp_path):
    run_dir = tmp_path / "lrf"
    cmd = [sys.executable, "-m", "mnistlab", "lr-find", "--model", "mlp", "--data-dir", str(tiny_mnist_dir),
           "--run-dir", str(run_dir), "--steps", "30", "--batch-size", "32", "--train-limit", "400",
           "--verbose", "0", "--backend", keras.backend.backend()]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(MNISTLAB_SKIP_MD5=1), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for rule in ALL_RULES:
        assert rule in out
    assert "stopped:" in out
    for name in ("lr_find.png", "lr_find.csv", "lr_find.json"):
        assert (run_dir / name).is_file()
    data = json.loads((run_dir / "lr_find.json").read_text())
    # the synthetic digits are learnable: the default rule reads a rate, and the table prints it
    assert data["suggestion"] is not None and 1e-6 < data["suggestion"] < 10, data["reasons"]
    default_line = next(line for line in out.splitlines() if line.endswith("<- default"))
    assert default_line.split()[:2] == [DEFAULT_RULE, f"{data['suggestion']:.3g}"]
    assert f"--lr {data['suggestion']:.3g}" in out
    assert data["settings"]["steps"] == 30 and data["settings"]["batch_size"] == 32
    assert data["settings"]["backend"] == keras.backend.backend()


def test_cli_lr_find_refuses_bad_settings(tmp_path, capsys):
    from mnistlab.cli.main import main

    code = main(["lr-find", "--max-lr", "-1", "--run-dir", str(tmp_path / "x"),
                 "--backend", keras.backend.backend()])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mnistlab lr-find: error: max_lr"), err
    assert not (tmp_path / "x").exists()


def test_cli_lr_find_takes_fast_probes_or_no_validate_but_not_both(tmp_path, capsys):
    from mnistlab.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["lr-find", "--fast-probes", "--no-validate", "--run-dir", str(tmp_path / "x"),
              "--backend", keras.backend.backend()])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
