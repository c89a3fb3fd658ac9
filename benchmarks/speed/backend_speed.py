"""Which Keras backend trains each model faster on this machine?

Times `model.fit` steps of the default MLP and CNN (random data of MNIST's
shape, the default batch size 128) on TensorFlow and on JAX, each backend in
its own subprocess. The first epoch (compilation) is reported apart.

    python -m benchmarks.speed.backend_speed [--steps 200] [--models mlp cnn]

The CLI's default backend per model (mnistlab.config.DEFAULT_BACKEND) is the
faster one in this table.
"""

from __future__ import annotations

import argparse
import os
import platform

from benchmarks.common.fresh_process import run_child

CHILD = r"""
import json, sys, time
import numpy as np, keras
from mnistlab.models import build_model
model_name, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(0)
model = build_model(model_name)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
x = np.random.randint(0, 256, size=(steps * batch, 28, 28)).astype("float32")
y = np.random.randint(0, 10, size=(steps * batch,)).astype("int32")
t0 = time.perf_counter(); model.fit(x[:batch * 5], y[:batch * 5], batch_size=batch, epochs=1, verbose=0)
first = time.perf_counter() - t0
t0 = time.perf_counter(); model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
steady = time.perf_counter() - t0
print("RESULT " + json.dumps({"first_epoch_s": first, "ms_per_step": 1000 * steady / steps,
                  "images_per_s": steps * batch / steady}))
"""


def measure(backend, model, steps, batch):
    return run_child(CHILD, [model, steps, batch], backend, model)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--cnn-steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    print(f"{platform.node()}, {os.cpu_count()} cores, batch {args.batch_size}\n")
    print("| model | backend | ms/step | images/s | first epoch s |")
    print("|---|---|---|---|---|")
    for model in args.models:
        steps = args.cnn_steps if model == "cnn" else args.steps
        for backend in ("tensorflow", "jax"):
            r = measure(backend, model, steps, args.batch_size)
            print(f"| {model} | {backend} | {r['ms_per_step']:.1f} | {r['images_per_s']:.0f} | "
                  f"{r['first_epoch_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
