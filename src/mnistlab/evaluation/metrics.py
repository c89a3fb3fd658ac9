"""Test-set metrics of predicted probabilities: accuracy, loss, per-class scores, mistakes.

    >>> from mnistlab.evaluation.metrics import compute_metrics, confident_mistakes
    >>> m = compute_metrics(y_test, probs, class_names)   # probs: (N, K) probabilities
    >>> m["test_accuracy"], m["per_class"]["9"]["f1"], m["confusion_matrix"]

Pure NumPy and scikit-learn: no model, no files. `mnistlab.evaluation.evaluate` uses
these on a run's predictions; `markdown_table` is the per-class table as
TensorBoard text.
"""

from __future__ import annotations

import numpy as np


def compute_metrics(y_true, probs, names) -> dict:
    """Accuracy, cross-entropy, per-class scores and the confusion matrix.

    Args:
        y_true: integer labels (N,).
        probs: predicted probabilities (N, K).
        names: a name per class (K).
    """
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=[str(n) for n in names],
        output_dict=True, zero_division=0,
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    off = [(int(cm[i, j]), i, j) for i in labels for j in labels if i != j and cm[i, j]]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return {
        "n_test": int(len(y_true)),
        "test_accuracy": float((y_pred == y_true).mean()),
        "test_loss": float(-np.log(p_true).mean()),
        "errors": int((y_pred != y_true).sum()),
        "class_names": [str(n) for n in names],
        "per_class": {
            str(names[i]): {
                "precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i]),
            }
            for i in labels
        },
        "macro_avg": {k.replace("-score", ""): float(v) for k, v in report["macro avg"].items()},
        "weighted_avg": {k.replace("-score", ""): float(v) for k, v in report["weighted avg"].items()},
        "confusion_matrix": cm.astype(int).tolist(),
        "top_confusions": [
            {"true": i, "predicted": j, "count": c} for c, i, j in off[:10]
        ],
    }


def confident_mistakes(y_true, probs, n: int = 32) -> list[dict]:
    """The `n` wrong predictions with the highest probability, most confident first."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probs[wrong, y_pred[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:n]
    return [
        {"index": int(i), "true": int(y_true[i]), "predicted": int(y_pred[i]),
         "probability": float(probs[i, y_pred[i]]), "probability_true": float(probs[i, y_true[i]])}
        for i in order
    ]



def markdown_table(result: dict) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, s in result["per_class"].items():
        lines.append(f"| {name} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    return "\n".join(lines)

