"""Training a model into a run folder, with the whole toolkit.

    >>> from mnistlab.config import make_config
    >>> from mnistlab.training import train
    >>> result = train(make_config("mlp", epochs=5), run_dir="runs/mlp-5")
    >>> result.metrics["test_accuracy"]

What `train` does, top to bottom: validate the config, seed everything, load
and split the data (the test set is touched once, at the very end), optionally
run the LR range test on a copy of the model, build and compile a fresh model,
fit with Keras' callbacks (best and last checkpoints, early stopping with best
weights restored, ReduceLROnPlateau or a schedule, TerminateOnNaN, CSV and
TensorBoard logs), then evaluate `best.keras` on the test set and write
`metrics.json` and `learning_curves.png`. See `mnistlab.runs` for the folder.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np

from mnistlab import data as data_lib
from mnistlab import runs
from mnistlab.callbacks import EpochTimer, LearningRateLogger
from mnistlab.config import TrainConfig
from mnistlab.errors import MnistlabError
from mnistlab.models import build_model
from mnistlab.schedules import OneCycle


@dataclasses.dataclass
class Splits:
    """The arrays one run uses: train and validation from the training set, and the test set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    config: TrainConfig
    metrics: dict
    history: dict
    model: keras.Model


def prepare_data(config: TrainConfig, dataset=None, data_dir=None) -> Splits:
    """Load (unless `dataset` is given) and split the data as `config` says."""
    ds = dataset if dataset is not None else data_lib.load(config.dataset, data_dir=data_dir)
    x, y = ds.x_train, ds.y_train
    x_tr, y_tr, x_val, y_val = data_lib.split_validation(x, y, config.val_fraction, config.seed)
    if config.train_limit is not None:
        x_tr, y_tr = x_tr[: config.train_limit], y_tr[: config.train_limit]
    if config.offline_augment:
        x_tr, y_tr = data_lib.shift_augment(x_tr, y_tr)
    as_float = lambda a: np.asarray(a, dtype="float32")  # noqa: E731
    return Splits(as_float(x_tr), y_tr.astype("int32"), as_float(x_val), y_val.astype("int32"),
                  as_float(ds.x_test), ds.y_test.astype("int32"))


def steps_per_epoch(config: TrainConfig, n_train: int) -> int:
    return math.ceil(n_train / config.batch_size)


def learning_rate(config: TrainConfig, lr: float, n_train: int):
    """The optimizer's learning rate: a float, or a schedule object for cosine/onecycle."""
    total = config.epochs * steps_per_epoch(config, n_train)
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=1e-3)
    if config.schedule == "onecycle":
        return OneCycle(max_lr=lr, total_steps=total)
    return lr


def make_optimizer(config: TrainConfig, lr) -> keras.optimizers.Optimizer:
    name = config.optimizer
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(lr)
    if name == "nesterov":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return keras.optimizers.RMSprop(lr)


def compile_model(model: keras.Model, config: TrainConfig, lr) -> keras.Model:
    """Compile `model` with the config's optimizer, loss and accuracy metric.

    `lr` is a float or a Keras learning-rate schedule.
    """
    if config.one_hot:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    elif config.label_smoothing:
        raise MnistlabError("label_smoothing needs one-hot labels: add --one-hot")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=make_optimizer(config, lr), loss=loss, metrics=["accuracy"])
    return model


def targets(config: TrainConfig, y: np.ndarray) -> np.ndarray:
    """Labels in the form the loss wants: integers, or one-hot rows."""
    return np.eye(10, dtype="float32")[y] if config.one_hot else y


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend (Keras' own helper does all three)."""
    keras.utils.set_random_seed(seed)


def make_callbacks(config: TrainConfig, run_dir: Path) -> list:
    cbs = [
        LearningRateLogger(),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(
            run_dir / runs.BEST, monitor="val_accuracy", mode="max", save_best_only=True
        ),
        keras.callbacks.ModelCheckpoint(run_dir / runs.LAST, save_best_only=False),
        keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.patience,
            restore_best_weights=True, verbose=1,
        ),
        keras.callbacks.CSVLogger(run_dir / runs.HISTORY),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / runs.TENSORBOARD)),
    ]
    if config.schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=config.lr_factor, patience=config.lr_patience,
            min_lr=config.min_lr, verbose=1,
        ))
    return cbs


def find_lr(config: TrainConfig, splits: Splits, run_dir: Path, verbose: int = 1):
    """Run the LR range test on a throw-away copy of the model; returns its result."""
    from mnistlab.lr_finder import lr_range_test

    model = compile_model(build_model(config.model, **config.model_options), config, 1e-3)
    result = lr_range_test(model, splits.x_train, targets(config, splits.y_train),
                           batch_size=config.batch_size, seed=config.seed, verbose=verbose)
    result.save(run_dir)
    if result.suggestion is None:
        raise MnistlabError(
            f"the LR range test found no learning rate ({result.reason}); "
            f"see {run_dir / 'lr_find.png'} and pass --lr yourself"
        )
    return result


def train(config: TrainConfig, run_dir, dataset=None, data_dir=None, verbose: int = 1) -> TrainResult:
    """Train `config` into `run_dir`; see the module docstring for what happens.

    Args:
        config: the run's `TrainConfig`.
        run_dir: a new folder (an existing run there is refused).
        dataset: a `mnistlab.data.Dataset` already loaded (else loaded per config).
        data_dir: where to find the data when `dataset` is None.
        verbose: 0 silent, 1 progress bars, 2 one line per epoch.
    """
    config.validate()
    run_dir = runs.prepare_run_dir(run_dir)
    started = time.perf_counter()
    seed_everything(config.seed)
    splits = prepare_data(config, dataset, data_dir)
    saved = {"config": config.to_dict(), "seed": config.seed, **runs.environment()}
    runs.write_json(run_dir / runs.CONFIG, saved)

    lr = config.lr
    if lr == "auto":
        finder = find_lr(config, splits, run_dir, verbose)
        lr = finder.suggestion
        saved["lr_found"] = lr
        runs.write_json(run_dir / runs.CONFIG, saved)
        seed_everything(config.seed)  # the fresh model starts as it would have without the finder

    model = build_model(config.model, **config.model_options)
    compile_model(model, config, learning_rate(config, lr, len(splits.x_train)))
    timer = EpochTimer()
    fit_start = time.perf_counter()
    history = model.fit(
        splits.x_train, targets(config, splits.y_train),
        validation_data=(splits.x_val, targets(config, splits.y_val)),
        epochs=config.epochs, batch_size=config.batch_size, shuffle=True,
        callbacks=[timer, *make_callbacks(config, run_dir)], verbose=verbose,
    )
    fit_seconds = time.perf_counter() - fit_start
    losses = history.history.get("loss", [])
    if not losses or not np.all(np.isfinite(losses)):
        raise MnistlabError(
            f"training diverged in epoch {len(losses)} (the loss became NaN or infinite at "
            f"lr={lr:g}) and was stopped; checkpoints from earlier epochs, if any, are in "
            f"{run_dir}. Lower --lr, or use --lr auto"
        )
    best = keras.saving.load_model(run_dir / runs.BEST)
    test_loss, test_acc = best.evaluate(
        splits.x_test, targets(config, splits.y_test), batch_size=1024, verbose=0
    )
    hist = history.history
    best_epoch = int(np.nanargmax(hist["val_accuracy"])) if hist.get("val_accuracy") else None
    metrics = {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_acc),
        "best_epoch": None if best_epoch is None else best_epoch + 1,
        "best_val_accuracy": None if best_epoch is None else float(hist["val_accuracy"][best_epoch]),
        "epochs_run": len(hist.get("loss", [])),
        "learning_rate": float(lr),
        "fit_seconds": round(fit_seconds, 3),
        "epoch_seconds": [round(t, 3) for t in timer.times],
        "total_seconds": round(time.perf_counter() - started, 3),
        "n_train": int(len(splits.x_train)),
        "n_val": int(len(splits.x_val)),
        "n_test": int(len(splits.x_test)),
        "backend": keras.backend.backend(),
    }
    runs.write_json(run_dir / runs.METRICS, metrics)
    from mnistlab.plots import plot_learning_curves

    plot_learning_curves(hist, run_dir / runs.CURVES)
    return TrainResult(run_dir=run_dir, config=config, metrics=metrics, history=hist, model=best)
