"""`LRFinder`: the LR range test as a callback, for the seed's form `model.fit(..., callbacks=[...])`.

    >>> finder = mnistlab.LRFinder(x_train, y_train, batch_size=128)
    >>> model.fit(x_train, y_train, epochs=20, callbacks=[finder, ...])
    >>> finder.result.suggestion, finder.result.plot()

When training begins it runs `mnistlab.lr_range_test` on the model being
fitted: the rate grows exponentially batch by batch, each batch's own loss is
recorded, and afterwards every variable (weights, optimizer state, batch-norm
statistics, dropout seeds, metrics) is restored bit for bit. Then it sets the
optimizer's rate to the suggestion, and `fit` trains from the model's initial
state at that rate. With no suggestion it warns why (`result.reason`) and
leaves the rate alone.

Why the test runs its own steps and not inside `fit`'s batches (the seed's
exponential-rate callback): in Keras 3 the `loss` a callback sees is the
running mean since the epoch began, not the batch's loss, and `fit` cannot
be rewound afterwards; see `mnistlab.lr_range.finder` for the measurements.
"""

from __future__ import annotations

import inspect
import warnings

import keras

from mnistlab.lr_range.finder import lr_range_test


class LRFinder(keras.callbacks.Callback):
    """Run the LR range test when `fit` begins and train at its suggestion.

    Args:
        x, y: the data the test draws its batches from (arrays, or `x` a
            `tf.data.Dataset` / `keras.utils.PyDataset` / iterable of batches
            with `y=None`), as `lr_range_test` takes them; usually the
            training data passed to `fit`.
        batch_size: examples per step for arrays (use `fit`'s batch size:
            the best rate depends on it).
        set_lr: set the optimizer's learning rate to the suggestion (False:
            only measure; read `result`).
        save_dir: if given, write lr_find.png/.csv/.json there (`LRRangeResult.save`).
        **test_options: the other keyword arguments of `lr_range_test`
            (`min_lr`, `max_lr`, `steps`, `seed`, ...; `verbose` defaults to 0).

    Attributes:
        result: the `LRRangeResult`, after training began.
        lr: the rate it set, or None.

    The model must be compiled with a plain (not scheduled) learning rate; to
    train on a schedule peaking at the suggestion, run `lr_range_test` before
    compiling for real and use `result.schedule("onecycle", total_steps)`.
    """

    def __init__(self, x, y=None, *, batch_size: int = 32, set_lr: bool = True, save_dir=None, **test_options):
        super().__init__()
        allowed = set(inspect.signature(lr_range_test).parameters) - {"model", "x", "y", "batch_size"}
        unknown = sorted(set(test_options) - allowed)
        if unknown:
            raise TypeError(f"LRFinder got unknown options {', '.join(unknown)}: it takes "
                            f"{', '.join(sorted(allowed))} (those of lr_range_test)")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.set_lr, self.save_dir = set_lr, save_dir
        self.test_options = {"verbose": 0, **test_options}
        self.result = None
        self.lr = None

    def on_train_begin(self, logs=None):
        self.result = lr_range_test(self.model, self.x, self.y, batch_size=self.batch_size, **self.test_options)
        if self.save_dir is not None:
            self.result.save(self.save_dir)
        suggestion = self.result.suggestion
        if suggestion is None:
            why = self.result.reason or self.result.stop_reason
            warnings.warn(f"LRFinder: the range test suggested no rate ({why}); training goes on at the "
                          "compiled rate. See finder.result.plot()", stacklevel=2)
            return
        if self.set_lr:
            self.model.optimizer.learning_rate = suggestion
            self.lr = suggestion
