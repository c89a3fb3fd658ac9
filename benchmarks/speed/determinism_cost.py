"""What `--deterministic` costs, and whether same-seed runs are bit-identical without it.

    python -m benchmarks.speed.determinism_cost [--steps 40] [--models mlp cnn]

For each default model on TensorFlow and JAX, trains two fresh same-seed
models for `--steps` batches of 128 (random MNIST-shaped data) in separate
processes, with and without the determinism setting (TensorFlow's op
determinism; JAX needs none on CPU), and reports images/s and whether the two
processes' final weights are bit-identical.
"""

from __future__ import annotations

import argparse
import os

from benchmarks.common.fresh_process import run_child

CHILD = r"""
import hashlib, json, sys, time
import numpy as np, keras
from mnistlab.models import build_model
from mnistlab.training.train import seed_everything
model_name, steps, deterministic = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
seed_everything(0, deterministic)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(steps * 128, 28, 28)).astype("float32")
y = rng.integers(0, 10, size=steps * 128).astype("int32")
model = build_model(model_name)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x[:384], y[:384], batch_size=128, epochs=1, verbose=0, shuffle=False)
t0 = time.perf_counter(); model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
dt = time.perf_counter() - t0
digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()
print("RESULT " + json.dumps({"images_per_s": steps * 128 / dt, "digest": digest}))
"""


def child(backend, model, steps, deterministic):
    return run_child(CHILD, [model, steps, int(deterministic)], backend, model)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} cores, batch 128, {args.steps} steps per process\n")
    print("| model | backend | deterministic | images/s | two processes bit-identical |")
    print("|---|---|---|---|---|")
    for model in args.models:
        for backend in args.backends:
            for det in (False, True):
                runs = [child(backend, model, args.steps, det) for _ in range(2)]
                ips = max(r["images_per_s"] for r in runs)
                same = runs[0]["digest"] == runs[1]["digest"]
                print(f"| {model} | {backend} | {'yes' if det else 'no'} | {ips:,.0f} | {'yes' if same else 'NO'} |",
                      flush=True)


if __name__ == "__main__":
    main()
