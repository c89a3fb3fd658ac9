"""How long does the LR range test of the default MLP take? (Goal: <= 3 s on 2 CPU cores.)

Times `lr_range_test` on `build_mlp()` with its defaults, Adam, batch size 128
and the default number of steps, on real MNIST training images. Each repeat
builds and compiles a fresh model, so the time includes everything a
`mnistlab train --lr auto` pays: the snapshot, the first step (tracing and
XLA compilation, reported separately), the other steps and the restore.
A second test on the same, already compiled model shows the warm time.

    python -m benchmarks.speed.lr_find_speed --data-dir /path/to/mnist            # JAX, the MLP's backend
    python -m benchmarks.speed.lr_find_speed --backend tensorflow --steps 150

Prints a Markdown table (medians over --repeats) with the command and machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    p.add_argument("--backend", choices=("jax", "tensorflow"), default="jax")
    p.add_argument("--steps", type=int, default=None, help="range-test steps (default: the library's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train", type=int, default=20000, help="training examples to draw batches from")
    args = p.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend

    t0 = time.perf_counter()
    import mnistlab

    mnistlab.configure()  # as the CLI: TensorFlow's options before it loads, JAX's cache
    import keras
    import numpy as np

    from mnistlab import data as data_lib
    from mnistlab.lr_range.finder import DEFAULT_STEPS, lr_range_test
    from mnistlab.models import build_mlp

    import_s = time.perf_counter() - t0
    ds = data_lib.load("mnist", data_dir=args.data_dir)
    x = ds.x_train[: args.train].astype("float32")
    y = ds.y_train[: args.train].astype("int32")
    steps = args.steps or DEFAULT_STEPS

    rows = []
    for rep in range(args.repeats):
        keras.utils.set_random_seed(rep)
        model = build_mlp()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        t = time.perf_counter()
        result = lr_range_test(model, x, y, batch_size=args.batch_size, steps=args.steps, seed=rep, verbose=0)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        warm_result = lr_range_test(model, x, y, batch_size=args.batch_size, steps=args.steps, seed=rep,
                                    verbose=0)
        warm = time.perf_counter() - t
        first = result.timings["first_step_seconds"]
        n = len(result.lrs)
        rows.append(dict(cold=cold, first=first, rest_ms=1000 * (cold - first) / max(1, n - 1),
                         warm=warm, steps_run=n, warm_steps=len(warm_result.lrs),
                         suggestion=result.suggestion))
        print(f"repeat {rep}: {cold:.2f} s cold (first step {first:.2f} s), {warm:.2f} s warm, "
              f"{n} steps, suggestion {result.suggestion}", flush=True)

    med = {k: statistics.median(r[k] for r in rows) for k in ("cold", "first", "rest_ms", "warm")}
    own = argv if argv is not None else sys.argv[1:]
    print()
    print(f"Command: `python -m benchmarks.speed.lr_find_speed {shlex.join(own)}`")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}; "
          f"keras {keras.__version__} ({args.backend}); load average at the end "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print()
    print("| model | backend | batch | steps | range test (cold) | first step (trace+compile) "
          "| per later step | warm re-run | imports |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| build_mlp() + Adam | {args.backend} | {args.batch_size} | {steps} | {med['cold']:.2f} s | "
          f"{med['first']:.2f} s | {med['rest_ms']:.1f} ms | {med['warm']:.2f} s | {import_s:.1f} s |")
    print()
    print(f"Medians of {args.repeats} repeats; every repeat is a freshly built model. "
          "Suggestions: " + ", ".join(f"{r['suggestion']:.3g}" for r in rows if r["suggestion"]))
    return 0 if np.isfinite(med["cold"]) else 1


if __name__ == "__main__":
    sys.exit(main())
