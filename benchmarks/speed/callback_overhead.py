"""What the training callbacks cost: mnistlab's against Keras' TensorBoard and TerminateOnNaN.

    python -m benchmarks.speed.callback_overhead [--model mlp] [--preset fast] [--backend jax] [--repeats 3]

Trains `--model/--preset` (seed 0) through `mnistlab.training.train.train`, once with
our callbacks and once with Keras' TensorBoard and TerminateOnNaN swapped back
in (they do per-batch work and keep Keras from dispatching batch hooks in the
background on JAX; see mnistlab/training/callbacks.py). The variants take turns, each
run in its own process, so that a noisy machine slows both alike. Prints the
training time (fit) of every run, the medians and the test accuracy, which
must be the same for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from benchmarks.common.fresh_process import run_child

CHILD = r"""
import dataclasses, json, os, sys, tempfile
model, preset, variant, data_dir, max_epochs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None, int(sys.argv[5])
import keras
from mnistlab import data
from mnistlab.training import train as training
from mnistlab.config import make_config
if variant == "keras":
    training.EpochTensorBoard = keras.callbacks.TensorBoard
    training.TerminateOnNaN = keras.callbacks.TerminateOnNaN
ds = data.load("mnist", data_dir=data_dir)
config = make_config(model, preset, seed=0)
config = dataclasses.replace(config, epochs=min(config.epochs, max_epochs))
m = training.train(config, tempfile.mkdtemp() + "/run", dataset=ds, verbose=0).metrics
print("RESULT " + json.dumps({"fit_s": m["fit_seconds"], "test_accuracy": m["test_accuracy"]}))
"""

VARIANTS = {"keras": "Keras' TensorBoard + TerminateOnNaN", "mnistlab": "mnistlab's (no per-batch work)"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp")
    p.add_argument("--preset", default="fast")
    p.add_argument("--backend", default="jax")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-epochs", type=int, default=10**6, help="cap the preset's epochs (smoke tests)")
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    args = p.parse_args(argv)

    results = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            results[variant].append(run_child(
                CHILD, [args.model, args.preset, variant, args.data_dir or "", args.max_epochs],
                args.backend, f"{args.model}/{args.preset} with {variant} callbacks"))
    print(f"{os.cpu_count()} cores, {args.backend}, `--model {args.model} --preset {args.preset}`, seed 0, "
          f"{args.repeats} rounds\n")
    print("| callbacks | fit s per run | median fit s | test acc |")
    print("|---|---|---|---|")
    for variant, label in VARIANTS.items():
        runs = results[variant]
        fits = [r["fit_s"] for r in runs]
        accs = sorted({round(r["test_accuracy"], 4) for r in runs})
        print(f"| {label} | {' / '.join(f'{f:.2f}' for f in fits)} | {statistics.median(fits):.2f} | "
              f"{' / '.join(f'{a:.4f}' for a in accs)} |")
    print("\n" + json.dumps({v: results[v] for v in VARIANTS}))


if __name__ == "__main__":
    main()
