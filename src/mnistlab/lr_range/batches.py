"""Batches for a loop of single training steps (the LR range test and its probes).

`batch_stream` turns arrays, a `tf.data.Dataset`, a `keras.utils.PyDataset`
or any iterable of `(x, y)` batches into an iterator of `(x, y,
sample_weight)` batches, cycling (reshuffling arrays) where the data allows.
Why not Keras' own data adapters: they are private API, and they run one
epoch at a time; the range test needs a stream it can stop at any step.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np

from mnistlab.errors import MnistlabError


def is_arrays(x) -> bool:
    leaves = keras.tree.flatten(x) if isinstance(x, (list, tuple, dict)) else [x]
    return bool(leaves) and all(hasattr(a, "shape") and hasattr(a, "__array__") for a in leaves)


def batch_stream(x, y, batch_size, seed):
    """An iterator of `(x, y, sample_weight)` batches, cycling where the data allows."""
    if y is None and isinstance(x, (list, tuple)) and x and all(isinstance(b, (list, tuple)) for b in x):
        return _repeating(lambda: iter(x))  # a list of (x, y) batches
    if y is not None or is_arrays(x):
        if y is None:
            raise MnistlabError(
                "x is an array but y is None: pass the targets as y, or pass x as a "
                "tf.data.Dataset or an iterable of (x, y) batches"
            )
        if not is_arrays(x) or not is_arrays(y):
            raise MnistlabError(
                f"with y given, x and y must be arrays (or lists/dicts of arrays); "
                f"got x={type(x).__name__}, y={type(y).__name__}"
            )
        return _array_batches(x, y, batch_size, seed)
    if isinstance(x, keras.utils.PyDataset):
        return _pydataset_batches(x)
    if hasattr(x, "as_numpy_iterator"):  # tf.data.Dataset, without importing TensorFlow here
        return _repeating(lambda: x.as_numpy_iterator())
    try:
        it = iter(x)
    except TypeError:
        raise MnistlabError(
            f"cannot read batches from a {type(x).__name__}: pass arrays x and y, a "
            "tf.data.Dataset, a keras.utils.PyDataset or an iterable of (x, y) batches"
        ) from None
    return (_unpack(b) for b in it)


def num_examples(x, y, what: str = "x and y") -> int:
    """The number of examples in array inputs `x` and targets `y` (lists/dicts of arrays too);
    `MnistlabError` naming `what` when they disagree."""
    sizes = {len(a) for a in keras.tree.flatten(x) + keras.tree.flatten(y)}
    if len(sizes) != 1:
        raise MnistlabError(f"{what} disagree on the number of examples: {sorted(sizes)}")
    return sizes.pop()


def _array_batches(x, y, batch_size, seed):
    to_np = lambda tree: keras.tree.map_structure(np.asarray, tree)  # noqa: E731
    x, y = to_np(x), to_np(y)
    n = num_examples(x, y)
    if n == 0:
        raise MnistlabError("the training set is empty: the range test needs at least one example")
    size = min(batch_size, n)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - size + 1, size):
            idx = np.sort(order[start:start + size])
            take = lambda a: a[idx]  # noqa: E731
            yield keras.tree.map_structure(take, x), keras.tree.map_structure(take, y), None


def _pydataset_batches(ds):
    n = ds.num_batches

    def one_pass():
        for i in range(n) if n is not None else itertools.count():
            yield ds[i]
        ds.on_epoch_end()

    return _repeating(one_pass)


def _repeating(make_iterator):
    while True:
        empty = True
        for batch in make_iterator():
            empty = False
            yield _unpack(batch)
        if empty:
            return


def _unpack(batch):
    if not isinstance(batch, (tuple, list)) or not 1 <= len(batch) <= 3:
        raise MnistlabError(
            f"each batch must be a tuple (x, y) or (x, y, sample_weight), got {type(batch).__name__}"
        )
    return keras.utils.unpack_x_y_sample_weight(tuple(batch))

