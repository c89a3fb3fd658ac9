"""Figures: learning curves. Matplotlib with the non-interactive Agg backend."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mnistlab.runs import atomic_path  # noqa: E402


def save_figure(fig, path) -> None:
    """Save `fig` atomically (PNG unless the suffix says otherwise) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_learning_curves(history: dict, path=None):
    """Loss, accuracy and learning rate per epoch, train against validation.

    Args:
        history: Keras' `History.history` (or history.csv read as columns).
        path: where to save the PNG; None returns the figure unsaved.
    """
    epochs = range(1, len(history.get("loss", [])) + 1)
    panels = [("loss", "Loss"), ("accuracy", "Accuracy")]
    has_lr = "learning_rate" in history
    fig, axes = plt.subplots(1, 2 + has_lr, figsize=(5 * (2 + has_lr), 3.8))
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
