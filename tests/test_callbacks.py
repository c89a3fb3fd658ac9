"""The public callbacks in a plain `model.fit`, RunCheckpoint's monitor and mode,
EpochTensorBoard, and the callback list `train()` uses."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import mnistlab
from mnistlab.training.callbacks import EpochTensorBoard, TerminateOnNaN
from mnistlab.training.checkpoints import RunCheckpoint
from mnistlab.config import make_config
from mnistlab.errors import MnistlabError
from mnistlab.training.train import make_callbacks


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(callback, epochs=2):
    x = np.random.default_rng(0).random((40, 4), dtype="float32")
    y = np.arange(40) % 3
    tiny_model().fit(x, y, batch_size=8, epochs=epochs, validation_data=(x, y), callbacks=[callback], verbose=0)


def events(folder):
    """(run folder, tag, step, value) of every summary in the event files under `folder`."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    return sorted((p.parent.name, v.tag, e.step, tensor_util.make_ndarray(v.tensor).item())
                  for p in folder.rglob("events.out.tfevents*") for e in EventFileLoader(str(p)).Load()
                  for v in e.summary.value)


def test_writes_epoch_summaries_and_has_no_batch_hooks(tmp_path):
    cb = EpochTensorBoard(log_dir=str(tmp_path))
    fit(cb)
    base = keras.callbacks.Callback
    assert all(getattr(EpochTensorBoard, hook) is getattr(base, hook)  # nothing runs per batch
               for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_end"))
    written = events(tmp_path)
    steps = {(run, tag): [] for run, tag, _, _ in written}
    for run, tag, step, _ in written:
        steps[run, tag].append(step)
    assert steps[("train", "epoch_loss")] == steps[("validation", "epoch_accuracy")] == [0, 1]
    assert steps[("train", "epoch_learning_rate")] == [0, 1]
    assert steps[("validation", "evaluation_loss_vs_iterations")] == [5, 10]  # 5 batches an epoch
    lr = [v for run, tag, _, v in written if tag == "epoch_learning_rate"]
    assert lr == pytest.approx([0.01, 0.01])  # SGD's default
    graph = [v for run, tag, _, v in written if tag == "keras"]
    assert len(graph) == 1 and b'"class_name": "Sequential"' in graph[0]


def test_same_event_files_as_keras_tensorboard(tmp_path):
    tf = pytest.importorskip("tensorflow")

    def tags(folder):
        return sorted((p.parent.name, v.tag, e.step) for p in folder.rglob("events*")
                      for e in tf.compat.v1.train.summary_iterator(str(p)) for v in e.summary.value)

    fit(keras.callbacks.TensorBoard(log_dir=str(tmp_path / "keras")))
    fit(EpochTensorBoard(log_dir=str(tmp_path / "ours")))
    assert tags(tmp_path / "ours") == tags(tmp_path / "keras") != []


def blocks_async_dispatch(cb) -> bool:
    """What Keras' CallbackList checks (on JAX) before it runs batch-end hooks in a thread."""
    from keras.src.utils import is_default

    return not getattr(cb, "async_safe", False) and not (is_default(cb.on_batch_end)
                                                          and is_default(cb.on_train_batch_end))


def test_train_callbacks_let_keras_dispatch_batch_hooks_in_the_background(tmp_path):
    # Keras runs batch callbacks in a thread (JAX) only when each one is async-safe or
    # has no batch-end hook; one that blocks makes every step wait for the last.
    config = make_config("mlp", epochs=1)
    callbacks = make_callbacks(config, tmp_path, extra=[mnistlab.LRFinder(np.zeros((8, 4)), np.zeros(8))])
    assert [type(cb).__name__ for cb in callbacks if blocks_async_dispatch(cb)] == []
    assert blocks_async_dispatch(keras.callbacks.TerminateOnNaN())  # Keras' own does block: the check can fail
    listed = keras.callbacks.CallbackList(callbacks, model=tiny_model())
    assert listed._async_train == keras.src.backend.IS_THREAD_SAFE  # what Keras decides from the same rule


# ------------------------------------------------------------------ each public callback in a plain fit

X = np.random.default_rng(0).random((40, 4), dtype="float32")
Y = np.arange(40) % 3


def public_callbacks(folder):
    """name -> (callback, check(callback, history)) for every callback mnistlab exports."""
    if folder is None:  # the names only
        return dict.fromkeys(PUBLIC_CALLBACKS)
    def lr_logged(cb, h):
        assert h.history["learning_rate"] == pytest.approx([0.01, 0.01])

    return {
        "RunCheckpoint": (RunCheckpoint(folder / "new" / "ck", monitor="val_loss"),
                          lambda cb, h: cb.best == pytest.approx(min(h.history["val_loss"]))
                          and (folder / "new" / "ck" / "best.keras").is_file()),
        "EpochTensorBoard": (mnistlab.EpochTensorBoard(folder / "tb"),
                             lambda cb, h: len(list((folder / "tb").rglob("events.out.tfevents*"))) == 2),
        "TerminateOnNaN": (mnistlab.TerminateOnNaN(), lambda cb, h: cb.bad_batches == []),
        "EarlyStopping": (mnistlab.EarlyStopping(monitor="val_loss", patience=5), lambda cb, h: cb.wait == 0),
        "ReduceLROnPlateau": (mnistlab.ReduceLROnPlateau(monitor="val_loss"), lambda cb, h: cb.wait == 0),
        "CSVLogger": (mnistlab.CSVLogger(folder / "h.csv"),
                      lambda cb, h: len((folder / "h.csv").read_text().splitlines()) == 3),
        "LearningRateLogger": (mnistlab.LearningRateLogger(), lr_logged),
        "EpochTimer": (mnistlab.EpochTimer(), lambda cb, h: len(cb.times) == 2 and min(cb.times) > 0),
        "LRFinder": (mnistlab.LRFinder(X, Y, batch_size=8, steps=30, min_lr=1e-3, max_lr=10.0),
                     lambda cb, h: cb.result is not None and len(cb.result.lrs) > 0),
    }


PUBLIC_CALLBACKS = ["RunCheckpoint", "EpochTensorBoard", "TerminateOnNaN", "EarlyStopping", "ReduceLROnPlateau",
                    "CSVLogger", "LearningRateLogger", "EpochTimer", "LRFinder"]


@pytest.mark.parametrize("name", PUBLIC_CALLBACKS)
def test_public_callback_works_in_a_plain_fit(name, tmp_path):
    callback, check = public_callbacks(tmp_path)[name]
    assert getattr(mnistlab, name) is type(callback)
    extra = [] if name == "LearningRateLogger" else [mnistlab.LearningRateLogger()]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing to warn about in an ordinary fit
        warnings.filterwarnings("ignore", message=".*LRFinder: the range test suggested no rate")
        history = tiny_model().fit(X, Y, batch_size=8, epochs=2, validation_data=(X, Y), verbose=0,
                                   callbacks=[*extra, callback])
    assert check(callback, history) is not False


def test_public_callbacks_are_exactly_those_tested():
    exported = {n for n in mnistlab.__all__ if isinstance(getattr(mnistlab, n), type)
                and issubclass(getattr(mnistlab, n), keras.callbacks.Callback)}
    assert exported == set(PUBLIC_CALLBACKS) == set(public_callbacks(None))


CHILD = r"""
import json, sys, tempfile
import numpy as np, keras, mnistlab
d = tempfile.mkdtemp()
x = np.random.default_rng(0).random((40, 4), dtype="float32"); y = np.arange(40) % 3
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
cbs = [mnistlab.LRFinder(x, y, batch_size=8, steps=20), mnistlab.LearningRateLogger(), mnistlab.EpochTimer(),
       mnistlab.TerminateOnNaN(), mnistlab.EarlyStopping(monitor="val_loss"), mnistlab.ReduceLROnPlateau(),
       mnistlab.CSVLogger(d + "/h.csv"), mnistlab.EpochTensorBoard(d + "/tb"), mnistlab.RunCheckpoint(d + "/ck")]
m.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), callbacks=cbs, verbose=0)
print(json.dumps({"tensorflow_imported": "tensorflow" in sys.modules}))
"""


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="a JAX process of its own; run in the JAX pass")
def test_no_public_callback_imports_tensorflow_on_jax():
    from conftest import cli_env

    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300,
                          env=cli_env(KERAS_BACKEND="jax"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"tensorflow_imported": False}


# ------------------------------------------------------------------ RunCheckpoint in any fit


def fit_checkpoint(folder, *args, epochs=4, validation=True, **kw):
    model = tiny_model()
    model.optimizer.learning_rate = 0.5  # val_loss falls fast, so the best and worst epochs differ
    cb = RunCheckpoint(folder, *args, **kw)
    history = model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, callbacks=[cb],
                        validation_data=(X, Y) if validation else None)
    return cb, history.history


def best_val_loss(folder):
    best = keras.saving.load_model(folder / "best.keras")
    return best.evaluate(X, Y, batch_size=40, verbose=0, return_dict=True)["loss"]


@pytest.mark.parametrize("mode,pick", [("auto", min), ("min", min), ("max", max)])
def test_best_keras_follows_monitor_and_mode(tmp_path, mode, pick):
    cb, hist = fit_checkpoint(tmp_path / "a" / "b", monitor="val_loss", mode=mode)  # folders made as needed
    assert min(hist["val_loss"]) < max(hist["val_loss"])
    assert cb.best == pytest.approx(pick(hist["val_loss"]))
    assert best_val_loss(tmp_path / "a" / "b") == pytest.approx(pick(hist["val_loss"]), rel=1e-4)
    assert {p.name for p in (tmp_path / "a" / "b").iterdir()} == {"best.keras", "last.keras", "state.npz"}


def test_auto_mode_takes_the_metric_direction_and_refuses_unknown_names(tmp_path):
    cb, hist = fit_checkpoint(tmp_path / "acc", {}, monitor="val_accuracy")  # a config of {} is fine too
    assert cb.best == pytest.approx(max(hist["val_accuracy"]))
    def spread(y_true, y_pred):  # a metric whose better direction nobody can guess
        return keras.ops.max(y_pred, axis=-1)

    model = tiny_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[spread])
    with pytest.raises(ValueError, match="monitor='val_spread'.*pass mode='max' or mode='min'"):
        model.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y),
                  callbacks=[RunCheckpoint(tmp_path / "x", monitor="val_spread")])
    model.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y),
              callbacks=[RunCheckpoint(tmp_path / "y", monitor="val_spread", mode="max")])
    assert (tmp_path / "y" / "best.keras").is_file()
    with pytest.raises(ValueError, match="mode='best'"):
        RunCheckpoint(tmp_path, mode="best")
    with pytest.raises(TypeError, match="takes a dict"):
        RunCheckpoint(tmp_path, ["epochs"])


def test_without_validation_it_warns_once_and_keeps_last_and_state(tmp_path):
    with pytest.warns(UserWarning) as caught:
        cb, hist = fit_checkpoint(tmp_path, epochs=3, validation=False, monitor="val_loss")
    ours = [w for w in caught if "RunCheckpoint" in str(w.message)]
    assert len(ours) == 1 and "'val_loss' is not in the epoch's logs" in str(ours[0].message)
    assert "validation_data" in str(ours[0].message)
    assert not (tmp_path / "best.keras").exists() and cb.best is None
    assert (tmp_path / "last.keras").is_file() and (tmp_path / "state.npz").is_file()
    from mnistlab.training.checkpoints import ResumeState

    assert ResumeState(tmp_path / "state.npz").meta["epoch"] == 2  # every epoch checkpointed, the last one too
    cb, hist = fit_checkpoint(tmp_path / "loss", epochs=2, validation=False, monitor="loss")  # nothing to warn
    assert cb.best == pytest.approx(min(hist["loss"])) and (tmp_path / "loss" / "best.keras").is_file()


def test_write_errors_name_the_real_problem(tmp_path):
    from mnistlab.training.checkpoints import _cause

    (tmp_path / "file").write_text("x")
    with pytest.raises(MnistlabError, match="cannot create the checkpoint folder .*file/ck") as e:
        fit_checkpoint(tmp_path / "file" / "ck")
    assert "--resume" not in str(e.value)

    class RemoveFolder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            import shutil

            shutil.rmtree(tmp_path / "gone")

    model = tiny_model()
    with pytest.raises(MnistlabError, match=r"the folder .*gone does not exist") as e:
        model.fit(X, Y, epochs=2, verbose=0, validation_data=(X, Y),
                  callbacks=[RemoveFolder(), RunCheckpoint(tmp_path / "gone")])
    assert "mnistlab train" not in str(e.value)  # no CLI advice in a plain fit
    assert "disk is full" in _cause(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert "not writable" in _cause(OSError(errno.EROFS, "Read-only file system"), tmp_path)


def test_terminate_on_nan_stops_in_the_epoch_of_the_first_bad_batch(capsys):
    x = np.random.default_rng(0).random((80, 4), dtype="float32")
    x[24:32] = np.nan  # batch 3 of 10
    y = np.arange(80) % 3

    class Count(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            Count.steps += 1

    history = tiny_model().fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                               callbacks=[TerminateOnNaN(), Count()])
    # TensorFlow runs batch hooks in step; JAX in a thread that may lag behind the loop
    assert len(history.epoch) == 1 and Count.steps >= 4, Count.steps
    if keras.backend.backend() == "tensorflow":
        assert Count.steps <= 5, Count.steps
    assert "Batch 3: invalid loss, terminating training" in capsys.readouterr().out
