"""Evaluating a trained run on the test set, with pictures and a report.

    >>> from mnistlab.evaluation.evaluate import evaluate_run
    >>> result = evaluate_run("runs/mlp-5")
    >>> result["test_accuracy"], result["per_class"]["9"]["f1"]

`evaluate_run` loads the run's `best.keras`, predicts the whole test set of
the run's dataset and writes into the run folder:

    evaluation.json         accuracy, loss, per-class precision/recall/F1/support
                            (scikit-learn), the confusion matrix, the commonest
                            confusions and the most confident mistakes
    confusion_matrix.png    counts; correct in blue, mistakes in red
    misclassified.png       the test digits the model got wrong most confidently,
                            with true label, prediction and its probability
    report.html             all of it, plus learning_curves.png and lr_find.png
                            when present, in one self-contained page (images
                            embedded as data URIs)
    tensorboard/evaluation/ the figures as TensorBoard images, the accuracy as
                            scalars and the per-class table as text

The work is split by concern, and every name stays importable from here:

    mnistlab.evaluation.finished_runs      opening a run: check_run_dir, run_config, run_dataset,
                                class_names, load_best_model (also used by predict,
                                serve and ensemble), and the file names above
    mnistlab.evaluation.metrics            compute_metrics, confident_mistakes, markdown_table
    mnistlab.evaluation.figures plot_confusion_matrix, plot_misclassified
    mnistlab.evaluation.report             render_report (report.html)
    mnistlab.evaluation.evaluate         evaluate_run (the whole job), write_tensorboard, summary
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np

from mnistlab import runs
from mnistlab.errors import MnistlabError
from mnistlab.evaluation.figures import plot_confusion_matrix, plot_misclassified
from mnistlab.evaluation.finished_runs import (
    CONFUSION, EVALUATION, LR_FIND, MISCLASSIFIED, REPORT, TB_EVALUATION,
    check_run_dir, class_names, load_best_model, run_config, run_dataset,
)
from mnistlab.evaluation.metrics import compute_metrics, confident_mistakes, markdown_table
from mnistlab.evaluation.report import render_report


# ------------------------------------------------------------------ TensorBoard


def write_tensorboard(run_dir, figures: dict, result: dict, step: int = 0) -> Path:
    """The figures (name -> PNG path) as images, accuracy/loss as scalars and the
    per-class table as text, under run_dir/tensorboard/evaluation (replacing
    an earlier evaluation's)."""
    from mnistlab.summaries import EventWriter

    log_dir = Path(run_dir) / runs.TENSORBOARD / TB_EVALUATION
    with EventWriter(log_dir, replace=True) as writer:  # the folder holds the latest evaluation only
        for name, png in figures.items():
            writer.image(name, Path(png).read_bytes(), step)
        writer.scalar("test_accuracy", result["test_accuracy"], step)
        writer.scalar("test_loss", result["test_loss"], step)
        writer.text("per_class", markdown_table(result), step)
    return log_dir



# ------------------------------------------------------------------ the whole job


def evaluate_run(run_dir, data_dir=None, dataset=None, n_mistakes: int = 32,
                 batch_size: int = 1000, tensorboard: bool = True, model=None) -> dict:
    """Evaluate `run_dir`'s best.keras on the test set and write the files listed above.

    Args:
        run_dir: a finished run folder.
        data_dir: where to find the data (see `mnistlab.data.load`).
        dataset: a loaded `mnistlab.data.Dataset` instead (must be the run's).
        n_mistakes: how many confident mistakes to show.
        batch_size: prediction batch size.
        tensorboard: also write TensorBoard summaries.
        model: an already loaded model instead of best.keras.

    Returns the contents of evaluation.json.
    """
    started = time.perf_counter()
    run_dir = check_run_dir(run_dir)
    name = run_dataset(run_dir)
    if model is None:
        model = load_best_model(run_dir)
    if dataset is None:
        from mnistlab import data
        dataset = data.load(name, data_dir=data_dir)
    elif dataset.name != name:
        raise MnistlabError(f"{run_dir} was trained on {name}, not on the {dataset.name} given")
    import keras

    x_test = np.asarray(dataset.x_test, dtype=np.float32)
    probs = np.asarray(model.predict(x_test, batch_size=batch_size, verbose=0), dtype=np.float64)
    names = list(dataset.class_names)
    result = {
        "run_dir": str(run_dir),
        "dataset": name,
        "backend": keras.backend.backend(),
        "evaluated_at": datetime.datetime.now().isoformat(timespec="seconds"),
        **compute_metrics(dataset.y_test, probs, names),
    }
    mistakes = confident_mistakes(dataset.y_test, probs, n_mistakes)
    result["most_confident_mistakes"] = mistakes
    plot_confusion_matrix(result["confusion_matrix"], names, run_dir / CONFUSION)
    plot_misclassified(dataset.x_test, mistakes, names, run_dir / MISCLASSIFIED)
    figures = {"confusion_matrix": run_dir / CONFUSION, "misclassified": run_dir / MISCLASSIFIED}
    for tb_name, file in (("learning_curves", runs.CURVES), ("lr_find", LR_FIND)):
        if (run_dir / file).is_file():
            figures[tb_name] = run_dir / file
    if tensorboard:
        write_tensorboard(run_dir, figures, result)
    result["files"] = {
        "evaluation": EVALUATION, "confusion_matrix": CONFUSION, "misclassified": MISCLASSIFIED,
        "report": REPORT, "tensorboard": f"{runs.TENSORBOARD}/{TB_EVALUATION}" if tensorboard else None,
    }
    result["seconds"] = round(time.perf_counter() - started, 3)
    with runs.atomic_path(run_dir / REPORT) as tmp:
        tmp.write_text(render_report(run_dir, result), encoding="utf-8")
    runs.write_json(run_dir / EVALUATION, result)
    return result


def summary(result: dict) -> str:
    """A few lines for the terminal."""
    f1s = {n: s["f1"] for n, s in result["per_class"].items()}
    worst = min(f1s, key=f1s.get)
    names = result["class_names"]
    lines = [
        f"test accuracy {result['test_accuracy']:.4f} ({result['errors']} of {result['n_test']} wrong), "
        f"loss {result['test_loss']:.4f}, macro F1 {result['macro_avg']['f1']:.4f}",
        f"weakest class {worst} (F1 {f1s[worst]:.4f})",
    ]
    if result["top_confusions"]:
        tops = ", ".join(f"{names[c['true']]}→{names[c['predicted']]} ×{c['count']}"
                         for c in result["top_confusions"][:3])
        lines[-1] += f"; commonest confusions {tops}"
    run_dir = Path(result["run_dir"])
    lines.append(f"report {run_dir / REPORT} | details {run_dir / EVALUATION} | "
                 f"tensorboard --logdir {run_dir / runs.TENSORBOARD}")
    return "\n".join(lines)


__all__ = [
    "check_run_dir", "load_best_model", "run_config", "run_dataset", "class_names",
    "compute_metrics", "confident_mistakes", "plot_confusion_matrix", "plot_misclassified",
    "write_tensorboard", "render_report", "evaluate_run", "summary", "markdown_table",
    "EVALUATION", "CONFUSION", "MISCLASSIFIED", "REPORT", "LR_FIND", "TB_EVALUATION",
]
