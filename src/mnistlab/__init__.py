"""mnistlab: the classic MNIST exercise done properly, on Keras 3.

Five lines in a notebook:

    >>> import mnistlab
    >>> ds = mnistlab.load_dataset("mnist")
    >>> result = mnistlab.train(mnistlab.make_config("mlp"), run_dir="runs/mlp", dataset=ds)
    >>> result.metrics["test_accuracy"]

Keras is imported lazily, so the backend can still be chosen (`KERAS_BACKEND`)
after `import mnistlab`. Importing mnistlab changes nothing global: no
environment variable, seed or backend setting. `mnistlab.configure()` applies
the command line's process-wide settings (TensorFlow's oneDNN kernels, JAX's
compilation cache) when you ask for them; see docs/api.md for the public API
and what each call changes.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": ("mnistlab.data", "load"),
    "split_validation": ("mnistlab.data", "split_validation"),
    "build_mlp": ("mnistlab.models", "build_mlp"),
    "build_cnn": ("mnistlab.models", "build_cnn"),
    "build_model": ("mnistlab.models", "build_model"),
    "TrainConfig": ("mnistlab.config", "TrainConfig"),
    "make_config": ("mnistlab.config", "make_config"),
    "train": ("mnistlab.training.train", "train"),
    "TrainResult": ("mnistlab.training.train", "TrainResult"),
    "tune": ("mnistlab.tuning", "tune"),
    "lr_range_test": ("mnistlab.lr_range.finder", "lr_range_test"),
    "LRRangeResult": ("mnistlab.lr_range.finder", "LRRangeResult"),
    "LRFinder": ("mnistlab.lr_range.callback", "LRFinder"),
    "OneCycle": ("mnistlab.models.schedules", "OneCycle"),
    "peak_schedule": ("mnistlab.models.schedules", "peak_schedule"),
    "RunCheckpoint": ("mnistlab.training.checkpoints", "RunCheckpoint"),
    "EpochTensorBoard": ("mnistlab.training.callbacks", "EpochTensorBoard"),
    "TerminateOnNaN": ("mnistlab.training.callbacks", "TerminateOnNaN"),
    "EarlyStopping": ("mnistlab.training.callbacks", "EarlyStopping"),
    "ReduceLROnPlateau": ("mnistlab.training.callbacks", "ReduceLROnPlateau"),
    "CSVLogger": ("mnistlab.training.callbacks", "CSVLogger"),
    "LearningRateLogger": ("mnistlab.training.callbacks", "LearningRateLogger"),
    "EpochTimer": ("mnistlab.training.callbacks", "EpochTimer"),
    "configure": ("mnistlab.training.environment", "configure"),
    "MnistlabError": ("mnistlab.errors", "MnistlabError"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = list(_LAZY) + ["__version__"]
