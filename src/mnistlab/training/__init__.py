"""The training stage: a `TrainConfig` in, a run folder out.

Read `train.py` first: `train(config, run_dir)` builds the model, compiles it,
fits it with the callbacks below and scores its best epoch on the test set.

- `inputs.py`: the data and options `train()` takes, checked, and split for validation
- `batches.py`: the training data order, a pure function of (seed, epoch), for exact resume
- `callbacks.py`: TensorBoard without TensorFlow, early stopping, timing, the rate per epoch
- `checkpoints.py`: `state.npz` and `--resume`: weights, optimizer, random and callback state
- `plots.py`: the learning curves, and the figure helpers every figure of mnistlab uses
- `environment.py`, `compile_cache.py`, `no_tensorflow.py`: process-wide settings, only when asked
  (`mnistlab.configure()`), and keeping TensorFlow out of runs on other backends

The run folder's layout and safe writes are `mnistlab.runs`; the config is `mnistlab.config`.
"""
