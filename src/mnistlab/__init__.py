"""mnistlab: the classic MNIST exercise done properly, on Keras 3.

Five lines in a notebook:

    >>> import mnistlab
    >>> ds = mnistlab.load_dataset("mnist")
    >>> result = mnistlab.train(mnistlab.TrainConfig(model="mlp"), run_dir="runs/mlp", dataset=ds)
    >>> result.metrics["test_accuracy"]

Keras is imported lazily, so the backend can still be chosen (`KERAS_BACKEND`)
after `import mnistlab`. Import mnistlab before Keras or TensorFlow: it turns on
TensorFlow's oneDNN kernels, which TensorFlow reads once, at its own import.
"""

import os

# TensorFlow's start-up chatter hides our own messages; users can set it back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow uses oneDNN's convolution, batch-norm and pooling kernels only on
# CPUs with AVX-512 VNNI/BF16 or AMX unless asked; elsewhere (AVX2 laptops, AMD)
# it falls back to Eigen's, 2.2-3x slower for our CNNs on a 2-core AVX2 EPYC
# (BENCHMARKS.md, "oneDNN on AVX2 CPUs"). TensorFlow reads this once, at import,
# so it must be set before it; TF_ENABLE_ONEDNN_OPTS=0 still turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": ("mnistlab.data", "load"),
    "split_validation": ("mnistlab.data", "split_validation"),
    "build_mlp": ("mnistlab.models", "build_mlp"),
    "build_cnn": ("mnistlab.models", "build_cnn"),
    "build_model": ("mnistlab.models", "build_model"),
    "TrainConfig": ("mnistlab.config", "TrainConfig"),
    "train": ("mnistlab.training", "train"),
    "tune": ("mnistlab.tuning", "tune"),
    "lr_range_test": ("mnistlab.lr_finder", "lr_range_test"),
    "MnistlabError": ("mnistlab.errors", "MnistlabError"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")


__all__ = list(_LAZY) + ["__version__"]
