"""Training throughput against this machine's FLOP-bound limit.

    python -m benchmarks.speed.throughput [--models mlp cnn] [--presets default fast fast-995] [--steps 100] \
        [--options '{"rotation": 0, "zoom": 0, "shift": 0}'] [--jit-compile]

1. Measures float32 matrix-multiply GFLOP/s on each backend (square
   matrices, best of several sizes, before and after the timed training; on
   this VM one reading swings by 20%, and the noise only ever lowers it): the
   machine's practical peak.
2. Counts each model's FLOPs per training example (benchmarks/common/flops.py):
   2 * multiply-adds of every Dense and Conv2D layer forward, times 3 for
   forward + backward, times 2 for a first layer (nobody needs its input's
   gradient). Batch norm, activations, pooling, augmentation and the
   optimizer are not counted, so they show up as lost throughput.
3. Times `model.fit` on in-memory arrays (first, compiling epoch excluded) and
   reports images/s, the FLOP-bound limit (peak / FLOPs per image) and the
   share of it reached.

--options (JSON model options merged into each preset's) and --jit-compile
(XLA for the whole step; Keras leaves it off on a CPU with TensorFlow) take a
model apart to see what the limit is lost to: e.g. without augmentation or
batch norm (BENCHMARKS.md, "FLOPs counted right, and what the limit is lost
to").
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from benchmarks.common.cli_args import add_backend_arg, json_object_arg
from benchmarks.common.fresh_process import run_child
from benchmarks.common.paths import REPO_ON_PATH

# The child imports benchmarks.common.flops as this module does: the repository root on its path.
CHILD = REPO_ON_PATH + "\n" + r"""
import json, sys, time
import numpy as np, keras
from mnistlab.training.batches import EpochBatches, fit_inputs
from mnistlab.config import make_config
from mnistlab.models import build_model
from mnistlab.training.train import compile_model
from benchmarks.common.flops import train_flops
model_name, preset, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
options, jit_compile = json.loads(sys.argv[4]), sys.argv[5] == "1"

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

config = make_config(model_name, preset, model_options=options)
model = build_model(model_name, **config.model_options)
compile_model(model, config, 1e-3, config.steps_per_execution)  # as train() runs it
if jit_compile:
    model.jit_compile = True  # Keras warns and keeps False where a layer cannot be compiled
batch = config.batch_size
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(steps * batch, 28, 28)).astype("float32")
y = rng.integers(0, 10, size=steps * batch).astype("int32")
if config.one_hot:
    y = np.eye(10, dtype="float32")[y]
# Fed as train() feeds it (on TensorFlow: tf.data without autotuning; mnistlab/training/batches.py).
data, _ = fit_inputs(EpochBatches(x, y, batch, seed=0), x[:batch], y[:batch])
model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # traces (and compiles) the step
peak = matmul_gflops()
best = float("inf")
for _ in range(3):
    t = time.perf_counter(); model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    best = min(best, time.perf_counter() - t)
peak = max(peak, matmul_gflops())
print("RESULT " + json.dumps({"images_per_s": steps * batch / best, "train_flops": train_flops(model),
                              "peak_gflops": peak, "batch": batch,
                              "steps_per_execution": config.steps_per_execution,
                              "jit_compile": bool(model.jit_compile)}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--presets", nargs="+", default=["default", "fast", "fast-995"])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--options", default="{}", help="JSON model options merged into each preset's")
    p.add_argument("--jit-compile", action="store_true", help="compile the whole step with XLA")
    add_backend_arg(p, "every model")
    args = p.parse_args(argv)
    options = json_object_arg(p, "--options", args.options)
    from mnistlab.config import DEFAULT_BACKEND, PRESETS

    print(f"{platform.node()}, {os.cpu_count()} cores"
          + (f", model options {json.dumps(options)}" if options else "")
          + (", XLA (--jit-compile)" if args.jit_compile else "") + "\n")
    print("| model | preset | backend | batch | steps/call | train MFLOP/image | matmul GFLOP/s "
          "| FLOP-bound images/s | measured images/s | share of limit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        for preset in args.presets:
            if (model, preset) not in PRESETS:
                continue
            backend = args.backend or DEFAULT_BACKEND[model]
            r = run_child(CHILD, [model, preset, args.steps, json.dumps(options), int(args.jit_compile)], backend,
                          f"{model}/{preset}")
            if args.jit_compile and not r["jit_compile"]:
                print(f"(XLA refused for {model}/{preset}: timed without it)")
            limit = r["peak_gflops"] * 1e9 / r["train_flops"]
            print(f"| {model} | {preset} | {backend} | {r['batch']} | {r['steps_per_execution']} | "
                  f"{r['train_flops'] / 1e6:.1f} | "
                  f"{r['peak_gflops']:.0f} | {limit:,.0f} | {r['images_per_s']:,.0f} | "
                  f"{r['images_per_s'] / limit:.0%} |", flush=True)


if __name__ == "__main__":
    main()
