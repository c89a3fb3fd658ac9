"""Does on-the-fly augmentation make the CPU the bottleneck? Training images/s with and without it.

    python -m benchmarks.speed.augment_overhead [--models mlp cnn] [--steps 60]

For each default model on its default backend (mnistlab.config.DEFAULT_BACKEND),
times `model.fit` over `--steps` batches of 128 with: no augmentation, the
default (rotation, zoom, shift in one RandomAffine resample) and the default
plus elastic distortion (alpha 34, sigma 4). Overhead is the share of the
epoch's time the augmentation adds: 1 - (images/s with) / (images/s without).
The goal (issue 4): the default augmentation adds at most 20%. Each backend
runs in its own subprocess; the first (compiling) epoch is not timed.
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
model_name, steps, batch, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
variants = {"none": dict(rotation=0, zoom=0, shift=0), "default": {}, "default + elastic": dict(elastic=34)}
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(steps * batch, 28, 28)).astype("float32")
y = rng.integers(0, 10, size=(steps * batch,)).astype("int32")
models = {}
for name, opts in variants.items():
    keras.utils.set_random_seed(0)
    models[name] = build_model(model_name, **opts)
    models[name].compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    models[name].fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)
best = {name: float("inf") for name in variants}
for _ in range(repeats):  # interleaved, best of `repeats`: fair under background load
    for name, model in models.items():
        t0 = time.perf_counter(); model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        best[name] = min(best[name], time.perf_counter() - t0)
print("RESULT " + json.dumps({name: steps * batch / s for name, s in best.items()}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from mnistlab.config import DEFAULT_BACKEND

    print(f"{platform.node()}, {os.cpu_count()} cores, batch {args.batch_size}, best of {args.repeats}\n")
    print("| model | backend | augmentation | images/s | epoch time added |")
    print("|---|---|---|---|---|")
    for model in args.models:
        backend = DEFAULT_BACKEND[model]
        ips = run_child(CHILD, [model, args.steps, args.batch_size, args.repeats], backend, model)
        for name, value in ips.items():
            added = "" if name == "none" else f"{100 * (1 - value / ips['none']):+.0f}%"
            print(f"| {model} | {backend} | {name} | {value:,.0f} | {added} |", flush=True)


if __name__ == "__main__":
    main()
