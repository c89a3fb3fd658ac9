"""Training a model into a run folder, with the whole toolkit.

    >>> from mnistlab.config import make_config
    >>> from mnistlab.training.train import train
    >>> result = train(make_config("mlp", epochs=5), run_dir="runs/mlp-5")
    >>> result.metrics["test_accuracy"]

What `train` does, top to bottom: validate the config, seed everything, load
and split the data (the test set is touched once, at the very end), optionally
run the LR range test on a copy of the model, build and compile a fresh model,
fit with the callbacks of `mnistlab.training.callbacks` (Keras' EarlyStopping with best
weights restored and ReduceLROnPlateau, or a schedule, in thin variants;
TerminateOnNaN, CSVLogger, EpochTensorBoard) and `RunCheckpoint` (atomic
best/last checkpoints and the full state for an exact resume), then evaluate `best.keras` on the test set and write
`metrics.json` and `learning_curves.png`. See `mnistlab.runs` for the folder.

`train(None, run_dir, resume=True)` continues an interrupted run from its
state.npz exactly as it would have gone on (see `mnistlab.training.checkpoints`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np

from mnistlab import runs
from mnistlab.training.batches import EpochBatches, even_batch_size, fit_inputs
from mnistlab.training.callbacks import (CSVLogger, EarlyStopping, EpochTensorBoard, EpochTimer, LearningRateLogger,
                                ReduceLROnPlateau, TerminateOnNaN, current_lr)
from mnistlab.training.checkpoints import RunCheckpoint, open_for_resume, truncate_history
from mnistlab.config import TrainConfig
from mnistlab.errors import MnistlabError
from mnistlab.models import build_model
from mnistlab.training.no_tensorflow import keras_without_tensorflow
from mnistlab.training.inputs import (Splits, as_dataset, check_callbacks, check_own_model,  # noqa: F401 (Splits: API)
                                 prepare_data)
from mnistlab.models.schedules import peak_schedule
from mnistlab.models.steps import build_training_state


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    config: TrainConfig
    metrics: dict
    history: dict
    model: keras.Model
    resumed_at_epoch: int | None = None  # the first epoch this call trained, when resuming
    already_finished: bool = False  # resume of a run that had finished: nothing was done


def execution_steps(config: TrainConfig, n_train: int) -> int:
    """Steps per call into the backend: `config.steps_per_execution`, at most one epoch's; 1 on torch.

    Keras' torch trainer runs one step per call and refuses `steps_per_execution > 1`
    (it has no compiled multi-step loop to put them in), so on torch a config's
    `steps_per_execution` only sets the epoch length (`steps_per_epoch`).
    """
    if keras.backend.backend() == "torch":
        return 1
    return configured_execution_steps(config, n_train)


def configured_execution_steps(config: TrainConfig, n_train: int) -> int:
    """`config.steps_per_execution`, at most one epoch's, whatever the backend runs per call."""
    return min(config.steps_per_execution, max(1, n_train // config.batch_size))


def steps_per_epoch(config: TrainConfig, n_train: int) -> int:
    """Full batches only (mnistlab.training.batches), a multiple of the configured steps per call.

    Keras runs every call for all of its steps, so an epoch that is not a
    multiple would take batches of the next one and break exact resume. The
    multiple is the config's (`configured_execution_steps`) on every backend, torch
    too where each call runs one step, so a config trains on the same batches,
    and a schedule spans the same steps, whichever backend runs it.
    """
    k = configured_execution_steps(config, n_train)
    return max(1, n_train // config.batch_size) // k * k


def learning_rate(config: TrainConfig, lr: float, n_train: int):
    """The optimizer's learning rate: a float, or a schedule object for cosine/onecycle."""
    if config.schedule in ("cosine", "onecycle"):
        return peak_schedule(config.schedule, lr, config.epochs * steps_per_epoch(config, n_train))
    return lr


def validation_epochs(config: TrainConfig) -> int | list[int]:
    """Keras' `validation_freq`: 1, or the 1-based epochs to validate (every Nth and the last)."""
    n = config.validation_freq
    return 1 if n == 1 else sorted({*range(n, config.epochs + 1, n), config.epochs})


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


def compile_model(model: keras.Model, config: TrainConfig, lr, steps_per_execution: int = 1) -> keras.Model:
    """Compile `model` with the config's optimizer, loss and accuracy metric.

    `lr` is a float or a Keras learning-rate schedule. `steps_per_execution`
    is Keras' (train() passes `execution_steps(config, n_train)`, which is 1 on
    torch; the LR range test needs 1, its callback acts on every batch).
    """
    if config.one_hot:  # validate() refuses label smoothing without one-hot labels
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=make_optimizer(config, lr), loss=loss, metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    return model


def targets(config: TrainConfig, y: np.ndarray) -> np.ndarray:
    """Labels in the form the loss wants: integers, or one-hot rows."""
    return np.eye(10, dtype="float32")[y] if config.one_hot else y


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and the backend (Keras' own helper does all three).

    `deterministic` also turns on TensorFlow's op determinism (JAX on CPU is
    deterministic already); see README, "Determinism", for what it costs.
    """
    with keras_without_tensorflow():  # Keras' helper seeds TensorFlow too, importing it on any backend
        keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def setup_backend(config: TrainConfig) -> None:
    """What every run does before it touches the backend: seed it (`seed_everything`).

    JAX's compilation cache is a process-wide setting left to the CLI and
    `mnistlab.configure()`."""
    seed_everything(config.seed, config.deterministic)


def make_callbacks(config: TrainConfig, run_dir: Path, timer=None, resume=None, verbose: int = 1,
                   extra=()) -> list:
    """Keras' callbacks and ours, in the order they must run at each epoch's end.

    `extra` (the user's own) come after ours and before `RunCheckpoint`, which
    must be last. `verbose=0` silences EarlyStopping and ReduceLROnPlateau.
    """
    early = EarlyStopping(
        monitor="val_accuracy", mode="max", patience=config.patience,
        restore_best_weights=True, verbose=1 if verbose else 0,
    )
    plateau = None
    if config.schedule == "plateau":
        plateau = ReduceLROnPlateau(
            monitor="val_loss", factor=config.lr_factor, patience=config.lr_patience,
            min_lr=config.min_lr, verbose=1 if verbose else 0,
        )
    cbs = [
        LearningRateLogger(),
        TerminateOnNaN(),
        early,
        CSVLogger(run_dir / runs.HISTORY, append=resume is not None),
        EpochTensorBoard(log_dir=str(run_dir / runs.TENSORBOARD)),
    ]
    if plateau is not None:
        cbs.append(plateau)
    cbs.extend(extra)
    # Last: it saves what the others did at the end of the epoch.
    hint = (f"Fix that and continue with `mnistlab train --resume {run_dir}` "
            f"(in Python: train(None, {str(run_dir)!r}, resume=True))")
    cbs.append(RunCheckpoint(run_dir, config.to_dict(), early_stopping=early, plateau=plateau,
                             timer=timer, resume=resume, skip_unmonitored=config.validation_freq > 1,
                             resume_hint=hint))
    return cbs


def validation_of(config: TrainConfig, splits: Splits):
    """The run's validation split for the range test's probes, or None (it then holds out
    a slice of the training data itself) when the run has none."""
    return (splits.x_val, targets(config, splits.y_val)) if len(splits.x_val) else None


def find_lr(config: TrainConfig, splits: Splits, run_dir: Path, verbose: int = 1, model=None):
    """Run the LR range test on a throw-away copy of the model (or on `model`, which the
    test restores exactly); returns its result."""
    from mnistlab.lr_range.finder import lr_range_test

    if model is None:
        model = compile_model(build_model(config.model, **config.model_options), config, 1e-3)
    result = lr_range_test(model, splits.x_train, targets(config, splits.y_train),
                           batch_size=config.batch_size, seed=config.seed, verbose=verbose,
                           validation_data=validation_of(config, splits))
    result.save(run_dir)
    if result.suggestion is None:
        raise MnistlabError(
            f"the LR range test found no learning rate ({result.reason}); "
            f"see {run_dir / 'lr_find.png'} and pass --lr yourself"
        )
    return result


def train(config: TrainConfig | None, run_dir, dataset=None, data_dir=None, verbose: int = 1,
          resume: bool = False, *, model: keras.Model | None = None, callbacks=None) -> TrainResult:
    """Train `config` into `run_dir`; see the module docstring for what happens.

    Args:
        config: the run's `TrainConfig` (`make_config(...)`). When resuming: None
            (use the run's), or a config that must equal the run's (a changed
            config is refused).
        run_dir: a new folder (an existing run there is refused), or with
            `resume=True` the folder of an interrupted run.
        dataset: the data, else loaded per `config.dataset`: a `mnistlab.load_dataset(...)`
            result, `((x_train, y_train), (x_test, y_test))` as
            `keras.datasets.mnist.load_data()` returns it, or `(x_train, y_train,
            x_test, y_test)`; images (N, 28, 28) in 0-255 (any shape with your
            own `model`), integer labels 0-9. The validation split is taken from
            the training part; the test part is scored once, at the end.
        data_dir: where to find the data when `dataset` is None.
        verbose: 0 silent, 1 progress bars, 2 one line per epoch.
        resume: continue the run in `run_dir` from its last checkpoint (pass the
            same `model=`, built and compiled as before, if the run had one).
        model: your own compiled Keras model (compiled with `metrics=["accuracy"]`)
            instead of the one `config.model` / `config.model_options` build. It
            trains with its own optimizer, learning rate and loss; of the config,
            `optimizer`, `label_smoothing` and `weight_decay` do not apply, a
            numeric `lr` neither (the compiled rate is used), `lr="auto"` runs
            the range test on the model itself (restored afterwards) and sets its
            rate to the suggestion, `schedule` must be `plateau` or `constant`.
            `one_hot` says whether the targets are one-hot rows. Afterwards it
            holds the best epoch's weights (`result.model` is the same object).
        callbacks: extra Keras callbacks, run after mnistlab's own and before
            `RunCheckpoint` (which stays last).

    Global effects: seeds Python's `random`, NumPy's global generator and the
    backend's (`keras.utils.set_random_seed(config.seed)`), so a run is
    reproducible; with `config.deterministic` on TensorFlow it also turns on
    `tf.config.experimental.enable_op_determinism()` for the rest of the
    process. Nothing else: no environment variables, and JAX's compilation
    cache only if you turned it on (`mnistlab.configure()`).

    Raises:
        MnistlabError: an invalid config, unusable data or run folder, a diverged run.
        TypeError, ValueError: a `dataset`, `model` or `callbacks` of the wrong kind
            or shape (the message says what to pass).
    """
    extra = check_callbacks(callbacks)
    with keras_without_tensorflow():  # on JAX, Keras would import TensorFlow to save checkpoints
        return _train(config, run_dir, dataset, data_dir, verbose, resume, model, extra)


def _train(config, run_dir, dataset, data_dir, verbose, resume, own_model, extra) -> TrainResult:
    started = time.perf_counter()
    state = None
    if resume:
        config, run_dir, saved, state = open_for_resume(config, run_dir, own_model)
        if (run_dir / runs.METRICS).exists():
            return _finished(config, run_dir, state, own_model)
    else:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"train() takes a TrainConfig (e.g. mnistlab.make_config('mlp')), got "
                            f"{type(config).__name__}")
        config.validate()
    if own_model is not None:
        check_own_model(own_model, config)
    if dataset is not None:
        dataset = as_dataset(dataset, config.dataset, own_model=own_model is not None)
    if not resume:
        created = not Path(run_dir).exists()
        run_dir = runs.prepare_run_dir(run_dir)
    try:
        setup_backend(config)
        splits = prepare_data(config, dataset, data_dir)  # bad data fails before the run folder is filled
        if not resume:
            saved = {"config": config.to_dict(), "seed": config.seed, **runs.environment()}
            if own_model is not None:
                saved["own_model"] = {"name": own_model.name, "class": type(own_model).__name__}
            runs.write_json(run_dir / runs.CONFIG, saved)

        lr = saved.get("lr_found", config.lr)
        if lr == "auto":
            finder = find_lr(config, splits, run_dir, verbose, model=own_model)
            lr = finder.suggestion
            saved["lr_found"] = lr
            runs.write_json(run_dir / runs.CONFIG, saved)
            seed_everything(config.seed)  # the fresh model starts as it would have without the finder

        n_train = len(splits.x_train)
        if own_model is None:
            model = build_model(config.model, **config.model_options)
            compile_model(model, config, learning_rate(config, lr, n_train), execution_steps(config, n_train))
        else:
            model = own_model
            if "lr_found" in saved:
                model.optimizer.learning_rate = float(lr)
            lr = current_lr(model.optimizer)
        build_training_state(model, splits.x_train[:config.batch_size], targets(config, splits.y_train[:config.batch_size]))
    except MnistlabError:  # nothing trained yet (a bad model option, say): leave no half-made run behind
        if not resume:
            runs.discard_unstarted_run(run_dir, created)
        raise
    first_epoch = 0
    if state is not None:
        state.restore_model(model)
        first_epoch = state.next_epoch
        truncate_history(run_dir / runs.HISTORY, first_epoch)
    timer = EpochTimer()
    callbacks = [timer, *make_callbacks(config, run_dir, timer=timer, resume=state, verbose=verbose, extra=extra)]
    checkpoint = callbacks[-1]
    fit_start = time.perf_counter()
    if state is None or not state.meta["done"]:
        batches = EpochBatches(splits.x_train, targets(config, splits.y_train), config.batch_size,
                               seed=config.seed, first_epoch=first_epoch,
                               steps=steps_per_epoch(config, n_train))
        train_data, val_data = fit_inputs(batches, splits.x_val, targets(config, splits.y_val))
        model.fit(
            train_data, steps_per_epoch=len(batches), initial_epoch=first_epoch, shuffle=False,
            validation_data=val_data, validation_freq=validation_epochs(config),
            validation_batch_size=even_batch_size(len(splits.x_val)),  # as fit_inputs batches it on TF
            epochs=config.epochs, callbacks=callbacks, verbose=verbose,
        )
    else:  # stopped after its last checkpoint, before the final evaluation
        checkpoint.on_train_begin()
    fit_seconds = time.perf_counter() - fit_start
    hist = _history_columns(checkpoint.history)
    losses = hist.get("loss", [])
    if checkpoint.diverged_epoch is not None or not losses:
        raise MnistlabError(
            f"training diverged in epoch {(checkpoint.diverged_epoch or 0) + 1} (the loss became NaN or infinite at "
            f"lr={lr:g}) and was stopped; "
            + (f"the last good checkpoint (epoch {len(losses)}) is kept in {run_dir}. " if losses else "")
            + "Lower --lr, or use --lr auto"
        )
    best = _load_best(run_dir, own_model)
    test_batch = even_batch_size(len(splits.x_test))
    y_test = targets(config, splits.y_test)
    build_training_state(best, splits.x_test[:test_batch], y_test[:test_batch])
    scores = best.evaluate(splits.x_test, y_test, batch_size=test_batch, verbose=0, return_dict=True)
    test_loss, test_acc = scores["loss"], scores["accuracy"]
    best_epoch = int(np.nanargmax(hist["val_accuracy"])) if hist.get("val_accuracy") else None
    metrics = {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_acc),
        "best_epoch": None if best_epoch is None else best_epoch + 1,
        "best_val_accuracy": None if best_epoch is None else float(hist["val_accuracy"][best_epoch]),
        "epochs_run": len(losses),
        "learning_rate": float(lr),
        "fit_seconds": round(float(np.sum(timer.times)), 3),
        "epoch_seconds": [round(t, 3) for t in timer.times],
        # This call's whole model.fit, per-epoch checkpoints and logs included.
        "fit_wall_seconds": round(fit_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "n_train": int(len(splits.x_train)),
        "n_val": int(len(splits.x_val)),
        "n_test": int(len(splits.x_test)),
        "backend": keras.backend.backend(),
    }
    if state is not None:
        metrics["resumed_at_epoch"] = first_epoch + 1
    runs.write_json(run_dir / runs.METRICS, metrics)
    from mnistlab.training.plots import plot_learning_curves

    plot_learning_curves(hist, run_dir / runs.CURVES)
    return TrainResult(run_dir=run_dir, config=config, metrics=metrics, history=hist, model=best,
                       resumed_at_epoch=None if state is None else first_epoch + 1)


def _load_best(run_dir: Path, own_model=None) -> keras.Model:
    """best.keras: loaded as a new model, or into the user's own model (whose class Keras may not know)."""
    if own_model is None:
        return keras.saving.load_model(run_dir / runs.BEST)
    own_model.load_weights(run_dir / runs.BEST)
    return own_model


def _history_columns(rows: list[dict]) -> dict:
    """Per-epoch rows as Keras' History.history: {name: [value per epoch]}."""
    names = list(dict.fromkeys(k for row in rows for k in row if k != "epoch"))  # validation may skip epochs
    return {k: [row.get(k, float("nan")) for row in rows] for k in names}


def _finished(config, run_dir, state, own_model=None) -> TrainResult:
    metrics = runs.read_json(run_dir / runs.METRICS)
    hist = _history_columns(state.meta["history"]) if state is not None else {}
    model = _load_best(run_dir, own_model)
    return TrainResult(run_dir=run_dir, config=config, metrics=metrics, history=hist, model=model,
                       already_finished=True)
