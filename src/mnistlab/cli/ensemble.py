"""Average the predicted probabilities of several runs and report test accuracy.

Each RUN_DIR's best.keras predicts the test set; the ensemble predicts the
class with the highest mean probability. Prints each run's accuracy and the
ensemble's; --json prints the whole result, --output writes it to a file.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders holding best.keras")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four IDX files or mnist.npz")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--output", type=Path, default=None, help="also write the result as JSON to this file")


def default_backend(args):
    # The default CNN predicts faster on TensorFlow (its convolutions; BENCHMARKS.md,
    # "Exact resume, determinism, backends": the faster backend per model).
    return "tensorflow"


def run(args) -> int:
    from mnistlab.evaluation.ensemble import check_runs
    from mnistlab.errors import MnistlabError

    check_runs(args.run_dirs)  # bad folders fail before Keras is imported
    if args.output and not args.output.parent.is_dir():
        raise MnistlabError(f"cannot write {args.output}: folder {args.output.parent} does not exist")
    from mnistlab import runs
    from mnistlab.evaluation.ensemble import evaluate_ensemble, summary

    result = evaluate_ensemble(args.run_dirs, data_dir=args.data_dir)
    if args.output:
        runs.write_json(args.output, result)
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0
