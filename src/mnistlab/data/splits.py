"""Splitting a training set for validation, and the seed's offline shift augmentation."""

from __future__ import annotations

import numpy as np

from mnistlab.errors import MnistlabError


def split_validation(x, y, fraction: float = 0.1, seed: int = 0):
    """A seeded, stratified validation split of a training set.

    Returns `(x_train, y_train, x_val, y_val)`. The test set never enters here:
    it is for the final evaluation only.
    """
    if not 0 < fraction < 1:
        raise MnistlabError(f"validation fraction must be between 0 and 1, got {fraction}")
    from sklearn.model_selection import train_test_split

    try:
        x_tr, x_val, y_tr, y_val = train_test_split(
            x, y, test_size=fraction, random_state=seed, stratify=y
        )
    except ValueError as e:
        raise MnistlabError(f"cannot split {len(y)} examples with fraction {fraction}: {e}") from None
    return x_tr, y_tr, x_val, y_val


def shift_augment(x, y):
    """The seed's offline augmentation: every image plus copies shifted one pixel up, down, left, right.

    Returns `(x5, y5)` with five times the examples: the originals first, then
    each direction in turn (pixels shifted in from the border are 0). Labels
    follow their images. Apply it to the training split only, after the
    validation split, or shifted copies of validation digits leak into training.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3 or len(x) != len(y):
        raise MnistlabError(f"shift_augment wants (N, H, W) images and N labels, got {x.shape} and {y.shape}")
    copies = [x]
    for axis, step in ((1, -1), (1, 1), (2, -1), (2, 1)):  # up, down, left, right
        moved = np.roll(x, step, axis=axis)
        edge = [slice(None)] * 3
        edge[axis] = -1 if step == -1 else 0
        moved[tuple(edge)] = 0
        copies.append(moved)
    return np.concatenate(copies), np.concatenate([y] * 5)
