"""Keep TensorFlow out of runs on other backends.

Keras imports TensorFlow whenever it is installed, whatever the backend: to seed
it (`keras.utils.set_random_seed`, for tf.data pipelines) and to check for its
types when it serialises a model (every `model.save`, `model.to_json`). mnistlab
installs TensorFlow for its CNNs, so a JAX run paid for importing all of it and
used none of it, seconds of a fast preset's run on 2 cores (BENCHMARKS.md, "What
made it fast": no TensorFlow in JAX runs). Keras has no switch for this; it
asks one shared lazy module whether TensorFlow is `available`, and
`keras_without_tensorflow()` makes that answer "no" for a while.
"""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def keras_without_tensorflow():
    """Inside, Keras behaves as if TensorFlow were not installed, unless the
    backend is TensorFlow or TensorFlow is already imported (then nothing
    changes). Code that uses `tf.` itself still imports it as usual."""
    import keras

    try:
        from keras.src.utils import module_utils

        lazy = module_utils.tensorflow
        unknown = lazy._available is None and lazy.module is None
    except (ImportError, AttributeError):  # another Keras: no harm done, only no saving
        unknown = False
    if not unknown or keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = None  # asked afresh next time
