"""Training end to end on small synthetic data: the run folder, determinism, errors."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from mnistlab import data
from mnistlab.config import BACKENDS, make_config
from mnistlab.errors import MnistlabError
from mnistlab.training.train import train

SMALL = {"depth": 2, "width": 32}


@pytest.fixture(scope="module")
def tiny(tiny_mnist_dir):
    return data.load_folder(tiny_mnist_dir, verify=False)


def quick(**kw):
    return make_config("mlp", **{"epochs": 3, "batch_size": 32, "model_options": SMALL, **kw})


def test_run_folder_contents(tiny, tmp_path):
    result = train(quick(), tmp_path / "run", dataset=tiny, verbose=0)
    run = tmp_path / "run"
    for name in ("config.json", "best.keras", "last.keras", "history.csv",
                 "learning_curves.png", "metrics.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["model_options"] == SMALL and cfg["seed"] == 0
    assert cfg["backend"] in BACKENDS and "keras" in cfg["versions"]
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert len(rows) == 3 and {"loss", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.metrics["test_accuracy"]
    assert metrics["n_train"] == 540 and metrics["n_val"] == 60 and metrics["n_test"] == 100
    # the synthetic classes are easy: three epochs learn them
    assert metrics["test_accuracy"] > 0.8, metrics
    # TensorBoard: train and validation event files, learning rate recorded
    events = {p.parent.name for p in (run / "tensorboard").rglob("events.out.tfevents*")}
    assert {"train", "validation"} <= events
    train_events = b"".join(p.read_bytes() for p in (run / "tensorboard" / "train").glob("events*"))
    assert b"epoch_learning_rate" in train_events and b"epoch_loss" in train_events
    # metrics are those of best.keras, evaluated afresh
    import keras

    best = keras.saving.load_model(run / "best.keras")
    loss, acc = best.evaluate(tiny.x_test.astype("float32"), tiny.y_test.astype("int32"), verbose=0)
    assert acc == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_same_seed_same_numbers(tiny, tmp_path):
    a = train(quick(seed=7), tmp_path / "a", dataset=tiny, verbose=0)
    b = train(quick(seed=7), tmp_path / "b", dataset=tiny, verbose=0)
    c = train(quick(seed=8), tmp_path / "c", dataset=tiny, verbose=0)
    assert a.history == b.history
    assert a.metrics["test_loss"] == b.metrics["test_loss"]
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.history["loss"] != c.history["loss"]


def test_plateau_reduces_lr(tiny, tmp_path):
    # zero patience: the first epoch whose val_loss does not improve cuts the rate
    cfg = quick(epochs=10, patience=10, lr_patience=0, lr_factor=0.1, lr=0.03)
    result = train(cfg, tmp_path / "r", dataset=tiny, verbose=0)
    lrs = result.history["learning_rate"]
    assert lrs[0] == pytest.approx(0.03) and min(lrs) < 0.003 + 1e-9, lrs


def test_early_stopping_keeps_best(tiny, tmp_path, capsys):
    result = train(quick(epochs=40, patience=1), tmp_path / "r", dataset=tiny, verbose=0)
    assert capsys.readouterr().out == ""  # verbose=0: not even "Restoring model weights ..."
    val = result.history["val_accuracy"]
    assert result.metrics["epochs_run"] < 40
    assert result.metrics["best_val_accuracy"] == max(val)
    assert result.metrics["best_epoch"] == val.index(max(val)) + 1


def test_schedules_follow_their_formulas(tiny, tmp_path):
    from test_schedules import cosine_formula, onecycle_formula

    formulas = {"cosine": cosine_formula, "onecycle": onecycle_formula, "constant": lambda lr, total, step: lr}
    for schedule, formula in formulas.items():
        result = train(quick(schedule=schedule, epochs=2, lr=2e-3), tmp_path / schedule, dataset=tiny, verbose=0)
        # 540 examples at batch 32: 16 steps an epoch, 32 in all; the rate is logged after each epoch
        expected = [formula(2e-3, 32, 16 * (epoch + 1)) for epoch in range(2)]
        assert result.history["learning_rate"] == pytest.approx(expected, rel=1e-5), schedule


def test_divergence_is_reported(tiny, tmp_path):
    with pytest.raises(MnistlabError, match="diverged|lower --lr"):
        train(quick(optimizer="sgd", lr=1e30, model_options={**SMALL, "batch_norm": False}),
              tmp_path / "nan", dataset=tiny, verbose=0)


def test_existing_and_unwritable_run_dirs(tiny, tmp_path):
    train(quick(epochs=1), tmp_path / "r", dataset=tiny, verbose=0)
    with pytest.raises(MnistlabError, match="already holds a run"):
        train(quick(epochs=1), tmp_path / "r", dataset=tiny, verbose=0)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(MnistlabError, match="cannot write to run folder"):
        train(quick(epochs=1), tmp_path / "afile" / "run", dataset=tiny, verbose=0)


@pytest.mark.parametrize("field,value,message", [
    ("lr", -0.1, "positive number"), ("batch_size", 0, ">= 1"), ("epochs", 0, ">= 1"),
    ("val_fraction", 1.0, "between 0 and 1"), ("optimizer", "lbfgs", "choose one of"),
    ("model_options", {"filters": [8]}, "not an option of the mlp"),
    ("steps_per_execution", 0, "whole number >= 1"),
])
def test_bad_config_values(field, value, message):
    with pytest.raises(MnistlabError, match=message):
        make_config("mlp", **{field: value})


def test_lr_auto_trains_fresh_model_at_the_suggestion(tiny, tmp_path):
    result = train(quick(lr="auto", epochs=2), tmp_path / "auto", dataset=tiny, verbose=0)
    found = json.loads((tmp_path / "auto" / "lr_find.json").read_text())
    cfg = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert found["suggestion"] > 0 and (tmp_path / "auto" / "lr_find.png").is_file()
    assert cfg["lr_found"] == found["suggestion"] == result.metrics["learning_rate"]
    assert result.history["learning_rate"][0] == pytest.approx(found["suggestion"], rel=1e-6)
    # Fresh: the same run as one started at that rate, from the same initial weights and
    # random state; a model left trained (or reseeded differently) by the test would differ.
    twin = train(quick(lr=found["suggestion"], epochs=2), tmp_path / "fixed", dataset=tiny, verbose=0)
    assert result.history == twin.history
    for a, b in zip(result.model.get_weights(), twin.model.get_weights()):
        np.testing.assert_array_equal(a, b)


TINY_CNN = {"filters": [8, 16], "dense": 32}


def test_short_cnn_run(tiny, tmp_path):
    result = train(make_config("cnn", epochs=2, batch_size=32, model_options=TINY_CNN),
                   tmp_path / "cnn", dataset=tiny, verbose=0)
    m = result.metrics
    assert m["epochs_run"] == 2 and m["n_train"] == 540
    assert m["test_accuracy"] > 0.5, m  # the synthetic bars are easy for convolutions too
    import keras

    best = keras.saving.load_model(tmp_path / "cnn" / "best.keras")
    assert [layer.filters for layer in best.layers if layer.name.startswith("conv_")] == [8, 8, 16, 16]
    assert best.get_layer("augment").rotation == 10.0  # the CNN default trains with augmentation


def test_seed_preset_follows_the_seed(tiny, tmp_path):
    config = make_config("cnn", "seed", epochs=1, batch_size=32, model_options=TINY_CNN)
    assert (config.val_fraction, config.one_hot, config.lr, config.patience, config.schedule) == (
        0.2, True, "auto", 10, "plateau")
    assert config.model_options["batch_norm"] is False and config.model_options["rotation"] == 0
    result = train(config, tmp_path / "seed", dataset=tiny, verbose=0)
    saved = json.loads((tmp_path / "seed" / "config.json").read_text())
    assert result.metrics["n_train"] == 480 and result.metrics["n_val"] == 120  # 80/20
    assert saved["lr_found"] == pytest.approx(result.metrics["learning_rate"])
    assert (tmp_path / "seed" / "lr_find.png").is_file()
    assert result.model.loss.__class__.__name__ == "CategoricalCrossentropy"


def test_offline_augment_gives_five_times_the_training_data(tiny, tmp_path):
    result = train(quick(epochs=1, offline_augment=True), tmp_path / "off", dataset=tiny, verbose=0)
    assert result.metrics["n_train"] == 5 * 540 and result.metrics["n_val"] == 60


def test_steps_per_execution_keeps_epochs_whole(tiny, tmp_path):
    # 540 training images at batch 32: 16 full batches; 5 steps per call -> 15 per epoch
    from mnistlab.training.train import execution_steps, steps_per_epoch

    # Keras' torch trainer runs one step per call: there the config only sets the epoch length
    torch = keras.backend.backend() == "torch"
    config = quick(epochs=2, steps_per_execution=5)
    assert (execution_steps(config, 540), steps_per_epoch(config, 540)) == (1 if torch else 5, 15)
    many = quick(steps_per_execution=50)  # more than an epoch: one call per epoch
    assert (execution_steps(many, 540), steps_per_epoch(many, 540)) == (1 if torch else 16, 16)
    assert steps_per_epoch(quick(), 540) == 16
    train(config, tmp_path / "r", dataset=tiny, verbose=0)
    model = keras.saving.load_model(tmp_path / "r" / "last.keras")
    assert model.steps_per_execution == (1 if torch else 5)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * 15  # no batch of epoch 3 taken


def test_epoch_batches_with_fewer_steps_take_the_start_of_each_epochs_order():
    from mnistlab.training.batches import EpochBatches, epoch_permutation

    x = np.arange(100, dtype="float32")[:, None]
    b = EpochBatches(x, np.arange(100), batch_size=10, seed=1, steps=7)
    assert len(b) == 7
    epoch1 = np.concatenate([b[i][1] for i in range(7, 14)])  # batch 7 starts epoch 1
    assert sorted(epoch1) == sorted(epoch_permutation(1, 1, 100)[:70])
    with pytest.raises(ValueError, match=r"steps must be in \[1, 10\], got 11"):
        EpochBatches(x, np.arange(100), batch_size=10, seed=1, steps=11)


def test_fit_inputs_feed_the_same_batches_in_the_same_order():
    from mnistlab.training.batches import EpochBatches, fit_inputs

    x, y = np.arange(400, dtype="float32").reshape(100, 2, 2), np.arange(100)
    b = EpochBatches(x, y, batch_size=10, seed=1, steps=7)
    x_val, y_val = np.zeros((2500, 2, 2), "float32"), np.arange(2500)
    train_data, val_data = fit_inputs(b, x_val, y_val)
    if keras.backend.backend() != "tensorflow":  # handed to fit as they are
        assert train_data is b and val_data[0] is x_val and val_data[1] is y_val
        return
    got = [(xb.numpy(), yb.numpy()) for xb, yb in train_data.take(21)]  # three epochs of 7 batches
    assert all(np.array_equal(xb, b[i][0]) and np.array_equal(yb, b[i][1]) for i, (xb, yb) in enumerate(got))
    # every validation example, in order, in equal batches (one shape: no retracing)
    assert [len(yb) for _, yb in val_data] == [625] * 4
    assert np.array_equal(np.concatenate([yb.numpy() for _, yb in val_data]), y_val)
    assert train_data.options().autotune.enabled is False and val_data.options().autotune.enabled is False


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="on_device is JAX's")
def test_batches_on_device_are_the_same_batches():
    import jax

    from mnistlab.training.batches import EpochBatches, fit_inputs

    x, y = np.arange(400, dtype="float32").reshape(100, 2, 2), np.arange(100)
    b = EpochBatches(x, y, batch_size=10, seed=1, steps=7)
    on_device, _ = fit_inputs(b, x[:25], y[:25], on_device=True)
    assert on_device is not b and isinstance(on_device.x, jax.Array) and isinstance(b.x, np.ndarray)
    for i in range(21):  # three epochs
        xb, yb = on_device[i]
        assert isinstance(xb, jax.Array)
        assert np.array_equal(np.asarray(xb), b[i][0]) and np.array_equal(np.asarray(yb), b[i][1])


@pytest.mark.parametrize("n,largest,expected", [
    (6000, 1024, 1000), (10000, 1024, 1000), (600, 1024, 600), (60, 1024, 60),
    (1031 * 2, 1024, 1024),  # 1031 is prime: no equal split at >= 512, so a ragged last batch
    (900, 256, 225), (0, 1024, 1),
])
def test_even_batch_size(n, largest, expected):
    from mnistlab.training.batches import even_batch_size

    size = even_batch_size(n, largest)
    assert size == expected and size <= max(largest, 1)


@pytest.mark.parametrize("prebuilt", [True, False])
@pytest.mark.skipif(keras.backend.backend() == "torch", reason="torch runs the step eagerly: nothing is traced")
def test_the_training_step_is_traced_once_when_its_state_is_built_first(prebuilt):
    from mnistlab.models import build_model
    from mnistlab.models.steps import build_training_state
    from mnistlab.training.train import compile_model

    config = quick(steps_per_execution=2)
    model = compile_model(build_model("mlp", **SMALL), config, 1e-3, 2)
    traces = []
    step = model.train_step
    model.train_step = lambda *args: (traces.append(1), step(*args))[1]  # runs once per trace
    x = np.random.default_rng(0).uniform(0, 255, (128, 28, 28)).astype("float32")
    y = np.arange(128) % 10
    if prebuilt:
        build_training_state(model, x[:32], y[:32])
        assert model.optimizer.built == (keras.backend.backend() == "tensorflow")  # JAX's fit builds it
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    # TensorFlow traces a step that creates variables twice; JAX's trainer builds them first anyway
    assert len(traces) == (1 if prebuilt or keras.backend.backend() != "tensorflow" else 2)


def test_a_bad_model_option_leaves_no_run_behind(tiny, tmp_path):
    for run, existed in ((tmp_path / "new", False), (tmp_path / "mine", True)):
        if existed:
            run.mkdir()
        with pytest.raises(MnistlabError, match="dropout must be in"):
            train(quick(model_options={**SMALL, "dropout": 1.5}), run, dataset=tiny, verbose=0)
        assert run.exists() == existed and not (run / "config.json").exists()
    train(quick(epochs=1), tmp_path / "mine", dataset=tiny, verbose=0)  # the folder can be used again
    assert (tmp_path / "mine" / "metrics.json").is_file()


# ------------------------------------------------------------------ the Python API


def test_train_config_and_make_config_are_one_route():
    from mnistlab.config import TrainConfig

    for model in ("mlp", "cnn"):
        assert TrainConfig(model=model) == make_config(model), model
    assert (TrainConfig(model="cnn").epochs, TrainConfig(model="cnn").schedule) == (20, "cosine")
    assert TrainConfig(model="cnn", epochs=3) == make_config("cnn", epochs=3)
    with pytest.raises(MnistlabError, match=r"width: a model option, pass model_options=\{'width': 64\}"):
        make_config("mlp", width=64)


def arrays(ds):
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)


def test_train_takes_your_own_model_callbacks_and_arrays(tiny, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")],
                             name="mine")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    class Epochs(keras.callbacks.Callback):
        seen = []

        def on_epoch_end(self, epoch, logs=None):
            Epochs.seen.append((epoch, sorted(logs)))

    result = train(quick(schedule="constant"), tmp_path / "own", dataset=arrays(tiny), verbose=0, model=model,
                   callbacks=[Epochs()])
    assert result.model is model and [e for e, _ in Epochs.seen] == [0, 1, 2]
    assert "val_accuracy" in Epochs.seen[0][1]
    assert result.history["learning_rate"] == pytest.approx([2e-3] * 3)  # the model's own rate
    assert result.metrics["learning_rate"] == pytest.approx(2e-3)
    scores = model.evaluate(tiny.x_test.astype("float32"), tiny.y_test, verbose=0, return_dict=True)
    assert result.metrics["test_accuracy"] == pytest.approx(scores["accuracy"]) and scores["accuracy"] > 0.8
    saved = json.loads((tmp_path / "own" / "config.json").read_text())
    assert saved["own_model"] == {"name": "mine", "class": "Sequential"}
    with pytest.raises(MnistlabError, match="trained your own model"):
        train(None, tmp_path / "own", resume=True)
    assert train(None, tmp_path / "own", resume=True, model=model).already_finished


def test_train_errors_say_what_to_pass(tiny, tmp_path):
    bare = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])
    x, y = tiny.x_train, tiny.y_train
    cases = [
        (dict(dataset=(x, y)), TypeError, r"no test set .*\(\(x_train, y_train\), \(x_test, y_test\)\)"),
        (dict(dataset="mnist"), TypeError, "got a str: pass a mnistlab.load_dataset"),
        (dict(dataset=((x, np.eye(10)[y]), (x, y))), ValueError, "y_train must be integer class labels"),
        (dict(dataset=((x / 255.0, y), (x, y))), ValueError, "looks scaled to \\[0, 1\\]"),
        (dict(dataset=((x.reshape(-1, 784), y), (x, y))), ValueError, "x_train has shape \\(600, 784\\)"),
        (dict(model=bare), ValueError, "not compiled: call model.compile"),
        (dict(model="mlp"), TypeError, "takes a compiled keras.Model, got str"),
        (dict(callbacks=[print]), TypeError, "takes keras.callbacks.Callback objects"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            train(quick(), tmp_path / "bad", **{"dataset": tiny, **kwargs}, verbose=0)
    bare.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="metrics=\\['accuracy'\\]"):
        train(quick(), tmp_path / "bad", dataset=tiny, model=bare)
    bare.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="schedule='cosine' cannot be applied"):
        train(quick(schedule="cosine"), tmp_path / "bad", dataset=tiny, model=bare)
    with pytest.raises(TypeError, match="takes a TrainConfig"):
        train({"model": "mlp"}, tmp_path / "bad", dataset=tiny)
    assert not (tmp_path / "bad").exists()  # refused before the run folder is made


def test_own_models_steps_per_execution_must_be_the_configs_or_on_torch_one():
    from mnistlab.models import build_model
    from mnistlab.training.inputs import check_own_model
    from mnistlab.training.train import compile_model

    config = quick(steps_per_execution=5)
    torch = keras.backend.backend() == "torch"  # Keras' torch trainer runs one step per call
    check_own_model(compile_model(build_model("mlp", **SMALL), config, 1e-3, 1 if torch else 5), config)
    wrong = compile_model(build_model("mlp", **SMALL), config, 1e-3, 3)
    with pytest.raises(ValueError, match="compile it with steps_per_execution=1" if torch else "make them equal"):
        check_own_model(wrong, config)
