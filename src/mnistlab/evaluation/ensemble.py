"""Ensembles: average the predicted probabilities of several trained runs.

    >>> from mnistlab.evaluation.ensemble import evaluate_ensemble
    >>> result = evaluate_ensemble(["runs/cnn-1", "runs/cnn-2", "runs/cnn-3"])
    >>> result["ensemble_accuracy"], [r["test_accuracy"] for r in result["members"]]

Each run's `best.keras` predicts the test set of the runs' dataset; the
ensemble's prediction is the class with the highest mean probability (soft
voting, with equal weights). All runs must be trained on the same dataset.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mnistlab.errors import MnistlabError


def average_probabilities(probabilities) -> np.ndarray:
    """The element-wise mean of equally shaped (N, classes) probability arrays."""
    arrays = [np.asarray(p, dtype=np.float64) for p in probabilities]
    if not arrays:
        raise MnistlabError("an ensemble needs at least one run")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise MnistlabError(f"the runs' predictions do not line up: shapes {sorted(shapes)}")
    return np.mean(arrays, axis=0)


def check_runs(run_dirs) -> tuple[list[Path], str]:
    """The run folders as Paths and their common dataset; `MnistlabError` names the odd one out."""
    from mnistlab.evaluation.evaluate import check_run_dir, run_dataset

    if not run_dirs:
        raise MnistlabError("name at least one run folder (two or more make an ensemble)")
    dirs = [check_run_dir(d) for d in run_dirs]
    resolved = [d.resolve() for d in dirs]
    repeated = {str(d) for d in dirs if resolved.count(d.resolve()) > 1}
    if repeated:
        raise MnistlabError(f"run folder named twice: {', '.join(sorted(repeated))}; "
                            "each member should count once")
    datasets = {d: run_dataset(d) for d in dirs}
    if len(set(datasets.values())) > 1:
        listing = ", ".join(f"{d} ({name})" for d, name in datasets.items())
        raise MnistlabError(f"the runs were trained on different datasets: {listing}; "
                            "ensemble runs of one dataset")
    return dirs, datasets[dirs[0]]


def evaluate_ensemble(run_dirs, data_dir=None, dataset=None, batch_size: int = 1000) -> dict:
    """Test accuracy of each run and of their averaged probabilities.

    Args:
        run_dirs: finished run folders (each holding best.keras), same dataset.
        data_dir: where to find the data (see `mnistlab.data.load`).
        dataset: a loaded `mnistlab.data.Dataset` instead (must be the runs').
        batch_size: prediction batch size.

    Returns a dict: dataset, n_test, members (run_dir, test_accuracy),
    ensemble_accuracy, ensemble_errors, best_member_accuracy, seconds.
    """
    started = time.perf_counter()
    dirs, name = check_runs(run_dirs)
    if dataset is None:
        from mnistlab import data
        dataset = data.load(name, data_dir=data_dir)
    elif dataset.name != name:
        raise MnistlabError(f"the runs were trained on {name}, not on the {dataset.name} given")
    from mnistlab.evaluation.evaluate import load_best_model

    x_test = np.asarray(dataset.x_test, dtype=np.float32)
    y_test = np.asarray(dataset.y_test)
    members, probs = [], []
    for d in dirs:
        p = np.asarray(load_best_model(d).predict(x_test, batch_size=batch_size, verbose=0))
        probs.append(p)
        members.append({"run_dir": str(d), "test_accuracy": float(np.mean(p.argmax(1) == y_test))})
    mean = average_probabilities(probs)
    correct = mean.argmax(1) == y_test
    return {
        "dataset": name,
        "n_test": int(len(y_test)),
        "members": members,
        "ensemble_accuracy": float(np.mean(correct)),
        "ensemble_errors": int((~correct).sum()),
        "best_member_accuracy": max(m["test_accuracy"] for m in members),
        "mean_member_accuracy": float(np.mean([m["test_accuracy"] for m in members])),
        "seconds": round(time.perf_counter() - started, 3),
    }


def summary(result: dict) -> str:
    """A few lines for the terminal: each member, then the ensemble."""
    lines = [f"{m['test_accuracy']:.4f}  {m['run_dir']}" for m in result["members"]]
    lines.append(
        f"ensemble of {len(result['members'])} on {result['dataset']}: test accuracy "
        f"{result['ensemble_accuracy']:.4f} ({result['ensemble_errors']} of {result['n_test']} wrong); "
        f"best single run {result['best_member_accuracy']:.4f}, mean {result['mean_member_accuracy']:.4f}"
    )
    return "\n".join(lines)
