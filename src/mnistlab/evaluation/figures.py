"""The evaluation's figures: the confusion matrix and the most confident mistakes.

Each function saves a PNG (atomically, through `mnistlab.training.plots.save_figure`)
or, with `path=None`, returns the Matplotlib figure.
"""

from __future__ import annotations

import math

import numpy as np


def plot_confusion_matrix(cm, names, path=None, title=None):
    """Counts per (true, predicted) pair; the diagonal in blue, mistakes in red.

    Args:
        cm: (K, K) counts, rows true, columns predicted.
        names: a name per class.
        path: where to save the PNG; None returns the figure.
        title: figure title (default: the accuracy).
    """
    from mnistlab.training.plots import save_figure, subplots

    cm = np.asarray(cm)
    k = len(cm)
    diag = np.where(np.eye(k, dtype=bool), cm, np.nan)
    off = np.where(np.eye(k, dtype=bool) | (cm == 0), np.nan, cm)
    size = max(5.0, 0.55 * k + 2.2)
    fig, ax = subplots(figsize=(size, size * 0.92))
    ax.imshow(diag, cmap="Blues", vmin=0, vmax=max(1, np.nanmax(diag) if k else 1) * 1.15)
    top_off = np.nanmax(off) if np.isfinite(off).any() else 1
    ax.imshow(off, cmap="Reds", vmin=0, vmax=top_off * 1.1)
    for i in range(k):
        for j in range(k):
            v = int(cm[i, j])
            if v == 0:
                continue
            dark = (i == j) or (v > 0.55 * top_off)
            ax.text(j, i, f"{v}", ha="center", va="center", fontsize=8 if v < 1000 else 7,
                    color="white" if dark else "#5a1010", fontweight="bold" if i == j else None)
    short = [str(n) if len(str(n)) <= 8 else str(n)[:7] + "." for n in names]
    ax.set_xticks(range(k), short, rotation=0 if max(map(len, short)) <= 2 else 45,
                  ha="center" if max(map(len, short)) <= 2 else "right")
    ax.set_yticks(range(k), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(np.arange(-0.5, k), minor=True)
    ax.set_yticks(np.arange(-0.5, k), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    total = cm.sum()
    acc = np.trace(cm) / total if total else float("nan")
    ax.set_title(title or f"Confusion matrix: {int(total - np.trace(cm))} mistakes of {int(total)} "
                          f"(accuracy {acc:.2%})", fontsize=10)
    fig.tight_layout()
    if path is None:
        return fig
    save_figure(fig, path)
    return None


def plot_misclassified(images, mistakes, names, path=None, cols: int = 8):
    """A grid of misclassified digits: true label, prediction and its probability.

    Args:
        images: the test images (N, 28, 28), 0..255.
        mistakes: records from `confident_mistakes`.
        names: a name per class.
        path: where to save the PNG; None returns the figure.
        cols: images per row.
    """
    from mnistlab.training.plots import save_figure, subplots

    n = len(mistakes)
    if n == 0:
        fig, ax = subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No misclassified test images.", ha="center", va="center", fontsize=12)
    else:
        cols = min(cols, n)
        rows = math.ceil(n / cols)
        fig, axes = subplots(rows, cols, figsize=(1.45 * cols, 1.75 * rows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, m in zip(axes.ravel(), mistakes):
            ax.imshow(images[m["index"]], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(
                f"true {names[m['true']]} → {names[m['predicted']]}\n"
                f"p={m['probability']:.3f}  #{m['index']}",
                fontsize=8.5, color="#a31515", linespacing=1.2,
            )
        fig.suptitle("Most confident mistakes on the test set", fontsize=11)
        fig.tight_layout()
    if path is None:
        return fig
    save_figure(fig, path)
    return None

