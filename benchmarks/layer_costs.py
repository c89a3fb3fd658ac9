"""Where a CNN's training step goes, layer by layer: forward plus backward time of each layer alone.

    python benchmarks/layer_costs.py [--preset fast-995] [--batch-size 256] \
        [--options '{"downsample": ["stride", "early-pool", "early-pool"]}'] [--backend tensorflow]

Builds the preset's model (with --options merged into its model options), feeds
it one batch of random pixels, and times each layer with weights on its own:
the layer called in training mode on the input it sees inside the model, then
the gradient of sum(output^2) with respect to that input and the layer's
weights, compiled once (tf.function or jax.jit), best of 3 runs of ~0.5 s.
The layers' sum is not a whole step (no optimizer update, no loss, no fusion
across layers), but it shows which layers the step's time goes to: written
because the 16-32-64 CNN's one-channel first convolution and the batch norm,
ReLU and pooling after it at 28x28 cost a third of its step on 2 cores for
6% of its FLOPs (BENCHMARKS.md, "A strided first block").
"""

from __future__ import annotations

import argparse
import json
import os
import time


def timed(fn, seconds: float = 0.5, repeats: int = 3) -> float:
    """Best mean seconds per call of `fn` over `repeats` runs of about `seconds` each."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            fn()
            calls += 1
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def gradient_fn(layer, x):
    """A compiled function: layer(x) in training mode and the gradient of sum(y^2)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        xv = tf.Variable(x)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                y = layer(xv, training=True)
                loss = tf.reduce_sum(tf.square(y))
            return tape.gradient(loss, [xv, *layer.trainable_weights])

        return step
    import inspect

    import jax

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    # stateless_call passes keywords straight to call(), which may not take `training`
    mode = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}

    def loss(weights, inputs):
        y, _ = layer.stateless_call(weights, non_trainable, inputs, **mode)
        return (y ** 2).sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return lambda: jax.block_until_ready(grad(trainable, x))


def layer_inputs(model, x):
    """The input each layer of a functional `model` sees for the batch `x` (training mode)."""
    import keras

    probe = keras.Model(model.inputs, [layer.input for layer in model.layers[1:]])
    return dict(zip(model.layers[1:], probe([x], training=False)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="fast-995")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--options", default="{}", help="JSON model options merged into the preset's")
    p.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    p.add_argument("--seconds", type=float, default=0.5, help="length of each timed run")
    args = p.parse_args(argv)
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as e:
        p.error(f"--options {args.options!r} is not JSON ({e})")
    os.environ["KERAS_BACKEND"] = args.backend
    import mnistlab  # noqa: F401  (its environment settings come before the backend's import)
    import numpy as np

    from mnistlab.config import make_config
    from mnistlab.models import build_model

    cfg = make_config("cnn", args.preset, batch_size=args.batch_size, model_options=options)
    model = build_model("cnn", **cfg.model_options)
    x = np.random.default_rng(0).integers(0, 256, (cfg.batch_size, 28, 28)).astype("float32")
    seen = layer_inputs(model, x)
    rows = []
    for layer in model.layers[1:]:
        inputs = np.asarray(seen[layer])
        ms = timed(gradient_fn(layer, inputs), args.seconds) * 1e3
        rows.append((layer.name, type(layer).__name__, "x".join(map(str, inputs.shape[1:])), ms))
    total = sum(r[3] for r in rows)
    print(f"--preset {args.preset}, model options {json.dumps(cfg.model_options)}, batch {cfg.batch_size}, "
          f"{args.backend}, {os.cpu_count()} cores\n")
    print("| layer | kind | input per image | forward + backward ms | share of the sum |")
    print("|---|---|---|---|---|")
    for name, kind, shape, ms in rows:
        print(f"| {name} | {kind} | {shape} | {ms:.2f} | {ms / total:.0%} |")
    print(f"| **sum** | | | **{total:.2f}** | |")


if __name__ == "__main__":
    main()
