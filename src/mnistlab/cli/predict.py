"""Predict the digit in each picture with a trained run's model.

Any format Pillow reads, any size, colour or polarity: each picture is made
into an MNIST-style 28x28 image first (see `mnistlab.serving.digits`). Prints the top
three classes per picture, or with --json a list with one object per picture:
{"path", "prediction", "probabilities" (10 floats)}.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder holding best.keras")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="picture files of single digits")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def default_backend(args):
    # Start-up is the same on both backends and JAX answers a request faster on 2 cores
    # (docs/performance.md, "Smaller measurements behind the code").
    return "jax"


def run(args) -> int:
    from mnistlab.serving import digits
    from mnistlab.evaluation.evaluate import check_run_dir

    check_run_dir(args.run_dir)
    images = digits.load_digits(args.images)  # every bad picture is named before Keras loads
    from mnistlab.evaluation.evaluate import class_names, load_best_model

    model = load_best_model(args.run_dir)
    probs = digits.predict_arrays(model, images)
    records = [digits.prediction_record(path, row) for path, row in zip(args.images, probs)]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    names = class_names(args.run_dir)
    width = max(len(str(p)) for p in args.images)
    for record in records:
        top = digits.top_k(record["probabilities"], 3, names)
        ranked = "   ".join(f"{name} {p:6.2%}" if p >= 5e-5 else f"{name}  <0.01%" for _, name, p in top)
        print(f"{record['path']:<{width}}  {ranked}")
    return 0
