"""What `train()` is given, checked and put in shape: the data set, a user's own model and callbacks.

Every check raises an error that names the value at fault and what to pass
instead: `TypeError` for the wrong kind of object, `ValueError` for arrays of
the wrong shape or content (API misuse), `MnistlabError` for a configuration
that cannot run (a batch larger than the training set, say).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from mnistlab import data as data_lib
from mnistlab.config import TrainConfig
from mnistlab.errors import MnistlabError

DATASET_FORMS = ("a mnistlab.load_dataset(...) result, ((x_train, y_train), (x_test, y_test)) as "
                 "keras.datasets.mnist.load_data() returns it, or (x_train, y_train, x_test, y_test)")


@dataclasses.dataclass
class Splits:
    """The arrays one run uses: train and validation from the training set, and the test set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def as_dataset(dataset, name: str = "arrays", own_model: bool = False) -> data_lib.Dataset:
    """`dataset` as a `mnistlab.data.Dataset`, checked; see `DATASET_FORMS` for what it may be.

    Images must be (N, 28, 28) raw pixels in 0-255 for the built-in models
    (`own_model=False`: they scale the pixels themselves); labels integer
    classes 0-9 of shape (N,).
    """
    if isinstance(dataset, data_lib.Dataset):
        return dataset
    if all(hasattr(dataset, a) for a in ("x_train", "y_train", "x_test", "y_test")):
        parts = (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    elif isinstance(dataset, (tuple, list)) and len(dataset) == 2 and all(
            isinstance(p, (tuple, list)) and len(p) == 2 for p in dataset):
        (x_tr, y_tr), (x_te, y_te) = dataset
        parts = (x_tr, y_tr, x_te, y_te)
    elif isinstance(dataset, (tuple, list)) and len(dataset) == 4:
        parts = tuple(dataset)
    elif isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        raise TypeError(f"train(dataset=(x, y)) has no test set (train() ends by scoring the test set): "
                        f"pass {DATASET_FORMS}")
    else:
        raise TypeError(f"train(dataset=...) got a {type(dataset).__name__}: pass {DATASET_FORMS}")
    names = ("x_train", "y_train", "x_test", "y_test")
    arrays = {}
    for key, value in zip(names, parts):
        try:
            arrays[key] = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"train(dataset=...): {key} is not an array ({type(value).__name__}: {e})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_pair(split, x, y, own_model)
    return data_lib.Dataset(name=name, source="arrays passed to train()", class_names=tuple(map(str, range(10))),
                            **arrays)


def _check_pair(split, x, y, own_model):
    if len(x) != len(y):
        raise ValueError(f"x_{split} has {len(x)} examples but y_{split} has {len(y)}: pass one label per image")
    if len(x) == 0:
        raise ValueError(f"x_{split} is empty: pass at least one example")
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.array_equal(y, np.round(y))):
        raise ValueError(
            f"y_{split} must be integer class labels of shape (N,), got dtype {y.dtype} shape {y.shape}: "
            "for one-hot rows pass np.argmax(y, axis=1) (train() makes one-hot targets itself with one_hot=True)"
        )
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"y_{split} holds labels from {y.min()} to {y.max()}: pass classes 0-9")
    if own_model:
        return
    if x.shape[1:] != (28, 28):
        raise ValueError(
            f"x_{split} has shape {x.shape}: the built-in models take (N, 28, 28) images; "
            "reshape with x.reshape(-1, 28, 28), or pass your own model= to train()"
        )
    if np.issubdtype(x.dtype, np.floating) and float(np.max(x)) <= 1.0:
        raise ValueError(
            f"x_{split} looks scaled to [0, 1] (its largest value is {float(np.max(x)):g}): the built-in "
            "models scale raw 0-255 pixels themselves; pass the unscaled images"
        )


def prepare_data(config: TrainConfig, dataset=None, data_dir=None, own_model: bool = False) -> Splits:
    """Load (unless `dataset` is given, see `as_dataset`) and split the data as `config` says."""
    if dataset is None:
        ds = data_lib.load(config.dataset, data_dir=data_dir)
    else:
        ds = as_dataset(dataset, config.dataset, own_model)
    x, y = ds.x_train, ds.y_train
    x_tr, y_tr, x_val, y_val = data_lib.split_validation(x, y, config.val_fraction, config.seed)
    if config.train_limit is not None:
        x_tr, y_tr = x_tr[: config.train_limit], y_tr[: config.train_limit]
    if config.offline_augment:
        x_tr, y_tr = data_lib.shift_augment(x_tr, y_tr)
    if config.batch_size > len(x_tr):
        raise MnistlabError(f"batch_size={config.batch_size} is more than the {len(x_tr)} training examples: "
                            f"lower --batch-size to at most {len(x_tr)}")
    as_float = lambda a: np.asarray(a, dtype="float32")  # noqa: E731
    return Splits(as_float(x_tr), y_tr.astype("int32"), as_float(x_val), y_val.astype("int32"),
                  as_float(ds.x_test), ds.y_test.astype("int32"))


def check_own_model(model, config: TrainConfig) -> keras.Model:
    """A user's model for `train(model=...)`: compiled, with accuracy, fit for the config's schedule."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"train(model=...) takes a compiled keras.Model, got {type(model).__name__}")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            f"train(model=...): model {model.name!r} is not compiled: call model.compile(optimizer=..., "
            "loss=..., metrics=['accuracy']) first"
        )
    metrics = (model.get_compile_config() or {}).get("metrics") or []
    names = {m if isinstance(m, str) else getattr(m, "name", None) for m in keras.tree.flatten(metrics)}
    if "accuracy" not in names:
        raise ValueError(
            f"train(model=...): model {model.name!r} is compiled without metrics=['accuracy']: train() keeps "
            "the epoch of best validation accuracy and reports the test accuracy; compile with metrics=['accuracy']"
        )
    if config.schedule in ("cosine", "onecycle"):
        raise ValueError(
            f"train(model=...) trains with your model's optimizer as compiled, so schedule={config.schedule!r} "
            "cannot be applied: compile the optimizer with the schedule (e.g. "
            f"mnistlab.peak_schedule({config.schedule!r}, peak_lr, total_steps)) and pass schedule='constant'"
        )
    rate = getattr(getattr(model.optimizer, "inner_optimizer", model.optimizer), "_learning_rate", None)
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) and (
            config.schedule == "plateau" or config.lr == "auto"):
        what = "lr='auto'" if config.lr == "auto" else "schedule='plateau' (ReduceLROnPlateau)"
        raise ValueError(
            f"train(model=...): {what} sets the learning rate, but model {model.name!r}'s optimizer uses the "
            f"schedule {type(rate).__name__}: pass schedule='constant' and a numeric lr"
        )
    if keras.backend.backend() == "torch":
        # Keras' torch trainer runs one step per call; the config's steps_per_execution then only
        # sets the epoch length (mnistlab.training.train.execution_steps).
        if model.steps_per_execution != 1:
            raise ValueError(
                f"train(model=...): model {model.name!r} was compiled with steps_per_execution="
                f"{model.steps_per_execution}, but Keras' torch backend runs one step per call: compile it "
                "with steps_per_execution=1"
            )
    elif model.steps_per_execution != config.steps_per_execution:
        raise ValueError(
            f"train(model=...): the config has steps_per_execution={config.steps_per_execution} but the model "
            f"was compiled with {model.steps_per_execution}: make them equal"
        )
    return model


def check_callbacks(callbacks) -> list:
    """Extra callbacks for `train(callbacks=...)`: a list of keras.callbacks.Callback."""
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, keras.callbacks.Callback):
            raise TypeError(f"train(callbacks=...) takes keras.callbacks.Callback objects, got "
                            f"{type(cb).__name__}")
    return callbacks
