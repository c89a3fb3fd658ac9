"""The learning-rate range test: grow the rate exponentially, record the loss, suggest a rate.

Read `finder.py` first: `lr_range_test(model, x, y)` runs the test on any
compiled Keras 3 model and returns an `LRRangeResult`.

- `finder.py`: the test itself, one optimizer step per rate, weights restored after
- `rules.py`: reading the curve: smoothing, divergence, and each rule's suggestion
- `validation.py`: the default suggestion, short probes at candidate rates scored on held-out data
- `result.py`: `LRRangeResult`: the curve, the suggestions, plot, files, schedule
- `callback.py`: `LRFinder`, the same test as a Keras callback for `model.fit`
- `batches.py`: the stream of batches the test steps through (arrays, tf.data, PyDataset)
- `state.py`: the model's and optimizer's variables, snapshot before the test and restored after
"""
