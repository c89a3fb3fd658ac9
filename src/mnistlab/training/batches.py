"""The training data order: a reshuffle per epoch that is a pure function of (seed, epoch).

Keras shuffles arrays itself, but from a random state that a checkpoint cannot
capture (NumPy's global state on JAX, TensorFlow's op seeds on TensorFlow), so
a resumed run would see its remaining epochs in a different order. Here epoch
`e` always visits `permutation(seed, e)`, whether the run was interrupted or not.

Batches are all full: each epoch drops `n % batch_size` examples (more when
`steps` asks for fewer batches), a different random few every epoch. (Keras'
PyDataset fixes the batch shape on TensorFlow from the first batches, and one
shape means JAX compiles the step once.)
"""

from __future__ import annotations

import itertools

import numpy as np
import keras


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch `epoch` of a run seeded `seed` visits `n` examples."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochBatches(keras.utils.PyDataset):
    """Full batches of (x, y) in the order `epoch_permutation(seed, epoch, len(x))`.

    Pass it to `model.fit` with `steps_per_epoch=len(batches)` and
    `initial_epoch=first_epoch`. It is endless on purpose: Keras then keeps one
    iterator across epochs and batch `i` of the fit call belongs to epoch
    `first_epoch + i // steps`, however far ahead TensorFlow prefetches.

    Args:
        x, y: training arrays (y may be integer labels or one-hot rows).
        batch_size: examples per batch (at most len(x)).
        seed: the run's seed.
        first_epoch: the epoch the fit call starts at (0, or where a resume begins).
        steps: batches per epoch (default: all full ones, `len(x) // batch_size`);
            fewer leaves out more of each epoch's shuffled order.
    """

    def __init__(self, x, y, batch_size: int, seed: int, first_epoch: int = 0, steps: int | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        if not 0 < batch_size <= len(x):
            raise ValueError(f"batch_size must be in [1, {len(x)}], got {batch_size}")
        full = len(x) // batch_size
        if steps is not None and not 0 < steps <= full:
            raise ValueError(f"steps must be in [1, {full}], got {steps}")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.seed, self.first_epoch = seed, first_epoch
        self.steps = full if steps is None else steps
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        return self.steps

    @property
    def num_batches(self):
        return None  # endless; see the class docstring

    def indices(self, epoch: int, step: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, epoch_permutation(self.seed, epoch, len(self.x))
        return self._order[step * self.batch_size : (step + 1) * self.batch_size]

    def on_device(self) -> "EpochBatches":
        """The same batches, gathered from copies of x and y on JAX's default device.

        On a GPU this keeps the training set in device memory (169 MB for MNIST
        as float32) and each batch is one compiled gather there, instead of a
        gather in host memory and a copy to the device per step. JAX only.
        """
        return _DeviceEpochBatches(self)

    def batch_indices(self, i) -> np.ndarray:
        """The example indices of batch `i` of the fit call (sorted: faster gathers, the same batch)."""
        epoch, step = divmod(int(i), self.steps)
        return np.sort(self.indices(self.first_epoch + epoch, step))

    def __getitem__(self, i):
        idx = self.batch_indices(i)
        return self.x[idx], self.y[idx]


class _DeviceEpochBatches(EpochBatches):
    """`EpochBatches.on_device()`: x and y in device memory, each batch gathered by one jitted call.

    Why jitted: JAX's eager `x[idx]` dispatches its index arithmetic op by op;
    on an H200 that took longer per batch than the fast CNN's whole training
    step, and made "data on the device" slower than copying batches from the
    host (docs/performance.md, "On a GPU", and its log).
    """

    def __init__(self, batches: EpochBatches):
        import jax

        b = batches
        super().__init__(b.x, b.y, b.batch_size, b.seed, first_epoch=b.first_epoch, steps=b.steps)
        self.x, self.y = jax.device_put(b.x), jax.device_put(b.y)
        self._take = jax.jit(lambda x, y, idx: (x[idx], y[idx]))

    def __getitem__(self, i):
        return self._take(self.x, self.y, self.batch_indices(i))


def even_batch_size(n: int, largest: int = 1024) -> int:
    """A batch size for evaluating `n` examples: the largest one <= `largest` that
    splits them into equal batches (6000 -> 1000), if one is at least half of
    `largest`; else `largest` (or `n` when that is smaller).

    On JAX every batch shape is traced and compiled (or loaded from the cache)
    once more: a ragged last batch made the fast MLP's single validation trace and
    compile a second shape, a noticeable share of its few seconds (lab note
    benchmarks/log/time-to-accuracy-2026-11-26-cheaper-cnn-blocks.md, "Validation in
    equal batches (kept)").
    """
    if n <= largest:
        return max(int(n), 1)
    return next((d for d in range(largest, largest // 2 - 1, -1) if n % d == 0), largest)


def fit_inputs(batches: EpochBatches, x_val, y_val, on_device: bool | None = None):
    """What to hand `model.fit`: (training data, validation data) for this backend.

    On JAX (and torch) that is `batches` and the validation arrays, as they are;
    on JAX with an accelerator (or `on_device=True`), `batches.on_device()`.
    On TensorFlow both become `tf.data` pipelines with tf.data's autotuning
    off, and a fixed prefetch of two batches. Why not Keras' own conversion:
    it prefetches with `tf.data.AUTOTUNE`, and with autotuning on, a 2-core
    AVX2 machine often ran a whole `fit` call in a slow mode (one core idle,
    steps about twice as long); with it off, never (BENCHMARKS.md, "What made
    it fast": tf.data without autotuning, and its log).
    The batches and their order are the same either way. The validation set
    goes in batches of `even_batch_size(len(x_val))` (pass the same to `fit`'s
    `validation_batch_size`).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if on_device or (on_device is None and jax.default_backend() != "cpu"):
            batches = batches.on_device()
    if backend != "tensorflow":
        return batches, (x_val, y_val)
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    x0, y0 = batches[0]
    signature = (tf.TensorSpec(x0.shape, x0.dtype), tf.TensorSpec(y0.shape, y0.dtype))
    train = tf.data.Dataset.from_generator(lambda: (batches[i] for i in itertools.count()),
                                           output_signature=signature)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(even_batch_size(len(x_val)))
    return train.prefetch(2).with_options(options), val.prefetch(2).with_options(options)
