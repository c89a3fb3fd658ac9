"""Figures: learning curves, and the helpers every figure of mnistlab uses.

Matplotlib's object API only (`matplotlib.figure.Figure`): no `matplotlib.use`,
no pyplot, so plotting never changes the backend or pyplot's state of the
process it runs in (a notebook keeps its own), and a figure mnistlab saves is
not kept in pyplot's list of open figures. A figure returned unsaved displays
in Jupyter like any other; elsewhere call its `savefig`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from mnistlab.runs import atomic_path


def subplots(nrows: int = 1, ncols: int = 1, **kw):
    """`(figure, axes)` as `pyplot.subplots` gives, on a `Figure` of its own.

    `figsize` (and other `Figure` keywords) go to the figure, the rest to
    `Figure.subplots`.
    """
    fig_keys = ("figsize", "dpi", "facecolor", "layout")
    fig = Figure(**{k: kw.pop(k) for k in fig_keys if k in kw})
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure(fig, path) -> None:
    """Save `fig` atomically (PNG unless the suffix says otherwise)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], dpi=110, bbox_inches="tight")


def plot_learning_curves(history: dict, path=None):
    """Loss, accuracy and learning rate per epoch, train against validation.

    Args:
        history: Keras' `History.history` (or history.csv read as columns).
        path: where to save the PNG; None returns the figure unsaved.
    """
    epochs = range(1, len(history.get("loss", [])) + 1)
    panels = [("loss", "Loss"), ("accuracy", "Accuracy")]
    has_lr = "learning_rate" in history
    fig, axes = subplots(1, 2 + has_lr, figsize=(5 * (2 + has_lr), 3.8))
    for ax, (key, title) in zip(axes, panels):
        ax.plot(epochs, history.get(key, []), "o-", ms=3, label="train")
        if "val_" + key in history:  # validated epochs only (validation_freq may skip some)
            val = np.asarray(history["val_" + key], dtype=float)
            ax.plot(np.asarray(epochs)[~np.isnan(val)], val[~np.isnan(val)], "o-", ms=3, label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    val_acc = np.asarray(history.get("val_accuracy", []), dtype=float)
    if val_acc.size and not np.isnan(val_acc).all():
        best = int(np.nanargmax(val_acc))
        axes[1].axvline(best + 1, color="grey", ls="--", lw=1)
        axes[1].annotate(f"best {history['val_accuracy'][best]:.4f}", (best + 1, history["val_accuracy"][best]),
                         textcoords="offset points", xytext=(-60, -15), fontsize=8)
    if has_lr:
        axes[2].plot(epochs, history["learning_rate"], "o-", ms=3, color="C2")
        axes[2].set_yscale("log")
        axes[2].set_title("Learning rate")
        axes[2].set_xlabel("epoch")
        axes[2].grid(alpha=0.3)
    fig.tight_layout()
    if path is None:
        return fig
    save_figure(fig, path)
    return None
