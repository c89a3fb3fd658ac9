"""Evaluate a run on the test set: accuracy, per-class scores, pictures and an HTML report.

Writes evaluation.json, confusion_matrix.png, misclassified.png and report.html
(self-contained: open it in any browser) into RUN_DIR, and the figures as
TensorBoard images under RUN_DIR/tensorboard/evaluation.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(p):
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder holding best.keras")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four IDX files or mnist.npz")
    p.add_argument("--mistakes", type=int, default=32, metavar="N",
                   help="how many confidently misclassified digits to show (default: 32)")
    p.add_argument("--no-tensorboard", action="store_true", help="skip the TensorBoard summaries")


def default_backend(args):
    # The faster whole command on 2 cores: its TensorBoard images need TensorFlow loaded
    # anyway, so JAX would load both (docs/performance.md, "Smaller measurements behind the code").
    return "tensorflow"


def run(args) -> int:
    from mnistlab.errors import MnistlabError
    from mnistlab.evaluation.evaluate import check_run_dir

    check_run_dir(args.run_dir)  # before Keras is imported: bad input fails fast
    if not 0 <= args.mistakes <= 200:
        raise MnistlabError(f"--mistakes must be between 0 and 200, got {args.mistakes}")
    from mnistlab.evaluation.evaluate import evaluate_run, summary

    result = evaluate_run(args.run_dir, data_dir=args.data_dir, n_mistakes=args.mistakes,
                          tensorboard=not args.no_tensorboard)
    print(summary(result))
    return 0
