"""Where a model's training step goes, layer by layer: forward plus backward time of each layer alone.

    python -m benchmarks.speed.layer_costs [--model cnn] [--preset fast-995] [--batch-size 256] \
        [--options '{"downsample": ["stride", "early-pool", "early-pool"]}'] [--backend tensorflow]

Builds the preset's model (with --options merged into its model options), feeds
it one batch of random pixels, and times each layer with weights on its own:
the layer called in training mode on the input it sees inside the model, then
the gradient of sum(output^2) with respect to what the real step needs, compiled
once (tf.function or jax.jit), best of 3 runs of ~0.5 s. What the step needs:
the layers before the first one with weights (augmentation, crop, rescaling)
run forward only, the first layer with weights gets its weights' gradient only,
and every later layer the gradient of its input and its weights (as
benchmarks/common/flops.py counts them). The Dense and Conv2D rows show the GFLOP/s
their kernels reach at this model's shapes, and a last line their total: the
limit of a step that did nothing but those kernels.

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

from benchmarks.common.cli_args import json_object_arg


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


def gradient_fn(layer, x, wrt_input: bool = True):
    """A compiled function: layer(x) in training mode and the gradient of sum(y^2).

    The gradient is taken with respect to the layer's trainable weights, and to
    `x` when `wrt_input`; with neither, the function is the forward pass alone.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        xv = tf.Variable(x)
        sources = ([xv] if wrt_input else []) + list(layer.trainable_weights)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                y = layer(xv, training=True)
                loss = tf.reduce_sum(tf.square(y))
            return tape.gradient(loss, sources) if sources else loss

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

    argnums = ((0,) if trainable else ()) + ((1,) if wrt_input else ())
    fn = jax.jit(jax.grad(loss, argnums=argnums) if argnums else loss)
    return lambda: jax.block_until_ready(fn(trainable, x))


def layer_inputs(model, x):
    """The input each layer of a functional `model` sees for the batch `x` (training mode)."""
    import keras

    probe = keras.Model(model.inputs, [layer.input for layer in model.layers[1:]])
    return dict(zip(model.layers[1:], probe([x], training=False)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    p.add_argument("--preset", default=None, help="default: fast-995 for the CNN, fast for the MLP")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--options", default="{}", help="JSON model options merged into the preset's")
    p.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    p.add_argument("--seconds", type=float, default=0.5, help="length of each timed run")
    args = p.parse_args(argv)
    options = json_object_arg(p, "--options", args.options)
    os.environ["KERAS_BACKEND"] = args.backend
    import mnistlab

    mnistlab.configure()  # as the CLI: TensorFlow's options before it loads, JAX's cache
    import numpy as np

    from benchmarks.common.flops import layer_train_flops, needs_input_gradient
    from mnistlab.config import make_config
    from mnistlab.models import build_model

    preset = args.preset or {"cnn": "fast-995", "mlp": "fast"}[args.model]
    cfg = make_config(args.model, preset, batch_size=args.batch_size, model_options=options)
    model = build_model(args.model, **cfg.model_options)
    x = np.random.default_rng(0).integers(0, 256, (cfg.batch_size, 28, 28)).astype("float32")
    seen = layer_inputs(model, x)
    needs = needs_input_gradient(model)
    rows = []
    for layer in model.layers[1:]:
        inputs = np.asarray(seen[layer])
        if needs[layer.name]:
            what = "forward + backward"
        else:
            what = "forward + weights' gradient" if layer.trainable_weights else "forward"
        ms = timed(gradient_fn(layer, inputs, wrt_input=needs[layer.name]), args.seconds) * 1e3
        flops = layer_train_flops(layer, needs[layer.name]) * cfg.batch_size
        rows.append((layer.name, type(layer).__name__, "x".join(map(str, inputs.shape[1:])), what, ms, flops))
    total = sum(r[4] for r in rows)
    print(f"--model {args.model} --preset {preset}, model options {json.dumps(cfg.model_options)}, "
          f"batch {cfg.batch_size}, {args.backend}, {os.cpu_count()} cores\n")
    print("| layer | kind | input per image | timed | ms | share of the sum | GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for name, kind, shape, what, ms, flops in rows:
        rate = f"{flops / ms / 1e6:.0f}" if flops else "-"
        print(f"| {name} | {kind} | {shape} | {what} | {ms:.2f} | {ms / total:.0%} | {rate} |")
    print(f"| **sum** | | | | **{total:.2f}** | | |")
    kernel_ms = sum(r[4] for r in rows if r[5])
    kernel_flops = sum(r[5] for r in rows)
    print(f"\nDense and Conv2D layers alone: {kernel_ms:.2f} ms per batch of {cfg.batch_size}, "
          f"{kernel_flops / kernel_ms / 1e6:.0f} GFLOP/s, {cfg.batch_size / kernel_ms * 1e3:,.0f} images/s "
          f"({kernel_ms / total:.0%} of the sum)")


if __name__ == "__main__":
    main()
