"""Training throughput against this machine's FLOP-bound limit.

    python benchmarks/throughput.py [--models mlp cnn] [--presets default fast fast-995] [--steps 100]

1. Measures float32 matrix-multiply GFLOP/s on each backend (square
   matrices, best of several sizes): the machine's practical peak.
2. Counts each model's FLOPs per training example: 2 * multiply-adds of every
   Dense and Conv2D layer forward, times 3 for forward + backward (the two
   backward products of each layer cost one forward each). Batch norm,
   activations, pooling, augmentation and the optimizer are not counted, so
   they show up as lost throughput.
3. Times `model.fit` on in-memory arrays (first, compiling epoch excluded) and
   reports images/s, the FLOP-bound limit (peak / FLOPs per image) and the
   share of it reached.
"""

from __future__ import annotations

import argparse
import os
import platform

from _child import add_backend_arg, run_child

CHILD = r"""
import json, sys, time
import numpy as np, keras
from mnistlab.batches import EpochBatches, fit_inputs
from mnistlab.config import make_config
from mnistlab.models import build_model
from mnistlab.training import compile_model
model_name, preset, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])

def matmul_gflops():
    best = 0.0
    for n in (512, 1024, 2048):
        a = keras.random.normal((n, n), seed=1); b = keras.random.normal((n, n), seed=2)
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        reps = max(3, int(2e10 / (2 * n**3)))
        t = time.perf_counter()
        for _ in range(reps):
            c = keras.ops.matmul(a, b)
        keras.ops.convert_to_numpy(c)
        best = max(best, reps * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best

def forward_flops(model):
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            flops += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            flops += 2 * h * w * kh * kw * cin * cout
    return flops

config = make_config(model_name, preset)
model = build_model(model_name, **config.model_options)
compile_model(model, config, 1e-3, config.steps_per_execution)  # as train() runs it
batch = config.batch_size
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(steps * batch, 28, 28)).astype("float32")
y = rng.integers(0, 10, size=steps * batch).astype("int32")
if config.one_hot:
    y = np.eye(10, dtype="float32")[y]
# Fed as train() feeds it (on TensorFlow: tf.data without autotuning; mnistlab/batches.py).
data, _ = fit_inputs(EpochBatches(x, y, batch, seed=0), x[:batch], y[:batch])
model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # traces (and compiles) the step
best = float("inf")
for _ in range(2):
    t = time.perf_counter(); model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    best = min(best, time.perf_counter() - t)
peak = matmul_gflops()
fwd = forward_flops(model)
print("RESULT " + json.dumps({"images_per_s": steps * batch / best, "train_flops": 3 * fwd,
                              "peak_gflops": peak, "batch": batch,
                              "steps_per_execution": config.steps_per_execution}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--presets", nargs="+", default=["default", "fast", "fast-995"])
    p.add_argument("--steps", type=int, default=100)
    add_backend_arg(p, "every model")
    args = p.parse_args(argv)
    from mnistlab.config import DEFAULT_BACKEND, PRESETS

    print(f"{platform.node()}, {os.cpu_count()} cores\n")
    print("| model | preset | backend | batch | steps/call | train MFLOP/image | matmul GFLOP/s "
          "| FLOP-bound images/s | measured images/s | share of limit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        for preset in args.presets:
            if (model, preset) not in PRESETS:
                continue
            backend = args.backend or DEFAULT_BACKEND[model]
            r = run_child(CHILD, [model, preset, args.steps], backend, f"{model}/{preset}")
            limit = r["peak_gflops"] * 1e9 / r["train_flops"]
            print(f"| {model} | {preset} | {backend} | {r['batch']} | {r['steps_per_execution']} | "
                  f"{r['train_flops'] / 1e6:.1f} | "
                  f"{r['peak_gflops']:.0f} | {limit:,.0f} | {r['images_per_s']:,.0f} | "
                  f"{r['images_per_s'] / limit:.0%} |", flush=True)


if __name__ == "__main__":
    main()
