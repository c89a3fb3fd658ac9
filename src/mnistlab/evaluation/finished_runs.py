"""A finished run folder, opened for use: checked, its config read, its best model loaded.

    >>> from mnistlab.evaluation.finished_runs import load_best_model, class_names
    >>> model = load_best_model("runs/mlp-5")      # best.keras, checked to be 28x28 -> 10

`mnistlab evaluate`, `predict`, `serve` and `ensemble` open runs through these
functions (also importable from `mnistlab.evaluation.evaluate`). A missing folder, a
missing or corrupt `best.keras`, or a model that is not a 28x28 -> 10
classifier raises `MnistlabError` naming the file. The names of the files an
evaluation adds to the run folder are here too (see `mnistlab.evaluation.evaluate`).
"""

from __future__ import annotations

from pathlib import Path

from mnistlab import runs
from mnistlab.errors import MnistlabError

EVALUATION = "evaluation.json"
CONFUSION = "confusion_matrix.png"
MISCLASSIFIED = "misclassified.png"
REPORT = "report.html"
LR_FIND = "lr_find.png"
TB_EVALUATION = "evaluation"  # under tensorboard/


def check_run_dir(run_dir) -> Path:
    """`run_dir` as a Path, if it is a folder holding best.keras; else `MnistlabError`."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise MnistlabError(f"run folder {run_dir} does not exist")
    if not run_dir.is_dir():
        raise MnistlabError(f"{run_dir} is a file, not a run folder")
    best = run_dir / runs.BEST
    if not best.is_file():
        raise MnistlabError(
            f"{best} not found: {run_dir} is not a finished mnistlab run "
            "(train one with `mnistlab train --run-dir ...`)"
        )
    return run_dir


def run_config(run_dir) -> dict:
    """The run's config.json, or {} when there is none (a bare model file still works)."""
    path = Path(run_dir) / runs.CONFIG
    return runs.read_json(path) if path.exists() else {}


def run_dataset(run_dir) -> str:
    """The dataset the run was trained on (`mnist` when config.json does not say)."""
    return (run_config(run_dir).get("config") or {}).get("dataset", "mnist")


def class_names(run_dir) -> list[str]:
    from mnistlab.data import spec

    return list(spec(run_dataset(run_dir)).class_names)


def load_best_model(run_dir):
    """The run's best.keras, loaded for inference (not compiled).

    Raises `MnistlabError` naming the file when it is missing, unreadable or
    not a model taking (N, 28, 28) pixels and giving 10 probabilities.
    """
    run_dir = check_run_dir(run_dir)
    path = run_dir / runs.BEST
    import keras

    import mnistlab.models  # noqa: F401  (registers RandomAffine and OneCycle for loading)

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # zipfile, h5py, JSON and deserialisation errors all mean "corrupt"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MnistlabError(
            f"{path} is not a readable Keras model ({reason[:200]}); train the run again"
        ) from None
    in_shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    out_shape = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if in_shape is None or in_shape[1:] != (28, 28) or out_shape is None or out_shape[1:] != (10,):
        raise MnistlabError(
            f"{path} takes {model.input_shape} and gives {model.output_shape}; "
            "an mnistlab model takes (None, 28, 28) pixels and gives (None, 10) probabilities"
        )
    return model

