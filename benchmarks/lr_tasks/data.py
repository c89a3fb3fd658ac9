"""The data sets of the lr_tasks benchmark: scikit-learn's bundled sets and synthetic data, made deterministically.

Every loader returns `(x_train, y_train, x_val, y_val)` as float32/int32 NumPy
arrays, the same on every call and every machine: bundled sets are split with a
fixed seed, synthetic sets are drawn from `numpy.random.default_rng` with a
fixed seed. Nothing is downloaded. Inputs are standardised with the training
split's statistics (as a user would), regression targets too, so one grid of
rates suits every task. Classification targets are int32 class ids, or float32
0/1 of shape (n, 1) for a sigmoid output.
"""

from __future__ import annotations

import numpy as np

DATA_SEED = 0  # the split and the synthetic draws; independent of the training seeds


def _split(x, y, n_val, seed=DATA_SEED):
    order = np.random.default_rng(seed).permutation(len(x))
    val, tr = order[:n_val], order[n_val:]
    return x[tr], y[tr], x[val], y[val]


def _standardize(x_tr, x_val):
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-8
    return ((x_tr - mean) / std).astype("float32"), ((x_val - mean) / std).astype("float32")


def _regression(x, y, n_val):
    x_tr, y_tr, x_val, y_val = _split(np.asarray(x, "float64"), np.asarray(y, "float64").reshape(-1, 1), n_val)
    x_tr, x_val = _standardize(x_tr, x_val)
    y_tr, y_val = _standardize(y_tr, y_val)
    return x_tr, y_tr, x_val, y_val


def _classes(x, y, n_val, binary=False):
    x_tr, y_tr, x_val, y_val = _split(np.asarray(x, "float64"), np.asarray(y), n_val)
    x_tr, x_val = _standardize(x_tr, x_val)
    cast = (lambda a: a.astype("float32").reshape(-1, 1)) if binary else (lambda a: a.astype("int32"))
    return x_tr, cast(y_tr), x_val, cast(y_val)


# ----------------------------------------------------------------- regression


def sine():
    """y = sin(x), x uniform on [-pi, pi]: the task that motivated issue 29 (4,500 training examples)."""
    rng = np.random.default_rng(DATA_SEED)
    x = rng.uniform(-np.pi, np.pi, size=(5000, 1))
    x_tr, y_tr, x_val, y_val = _split(x, np.sin(x), 500)
    return (x_tr.astype("float32"), y_tr.astype("float32"), x_val.astype("float32"), y_val.astype("float32"))


def diabetes():
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)  # 442 examples: tiny
    return _regression(x, y, 92)


def friedman1():
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=3000, n_features=10, noise=1.0, random_state=DATA_SEED)
    return _regression(x, y, 500)


def linear_wide():
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=8000, n_features=50, n_informative=20, noise=20.0, random_state=DATA_SEED)
    return _regression(x, y, 1000)


# ----------------------------------------------------------------- tabular classification


def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)  # 569 examples, binary
    return _classes(x, y, 114, binary=True)


def wine():
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)  # 178 examples, 3 classes
    return _classes(x, y, 48)


def binary_20():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=10000, n_features=20, n_informative=8, n_redundant=4, flip_y=0.05,
                               class_sep=0.8, random_state=DATA_SEED)
    return _classes(x, y, 1000, binary=True)


def classes5_30():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=12000, n_features=30, n_informative=12, n_classes=5,
                               n_clusters_per_class=2, flip_y=0.03, random_state=DATA_SEED + 1)
    return _classes(x, y, 1500)


def moons():
    """Two interleaving half-moons under noise, 400 training examples (tiny), binary."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=600, noise=0.3, random_state=DATA_SEED)
    return _classes(x, y, 200, binary=True)


def _linear_teacher(n, n_features, n_classes, seed, shift=0.0):
    """Gaussian inputs labelled by argmax of a random linear map through tanh features: a task
    family whose members share features (`shift` moves the head, not the features)."""
    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(n_features, 32)) / np.sqrt(n_features)
    head = rng.normal(size=(32, n_classes))
    head = head + shift * np.random.default_rng(seed + 100).normal(size=head.shape)
    x = np.random.default_rng(seed + 1 + int(10 * shift)).normal(size=(n, n_features))
    return x.astype("float32"), np.argmax(np.tanh(x @ proj) @ head, axis=1).astype("int32")


def teacher_pretrain():
    """The source task of the tabular fine-tuning setup: 5,000 examples of the first head."""
    x, y = _linear_teacher(5000, 16, 4, DATA_SEED)
    return x, y, x[:0], y[:0]


def teacher_finetune():
    """The target task: the same features, a moved head, 400 examples to train on (tiny)."""
    x, y = _linear_teacher(900, 16, 4, DATA_SEED, shift=0.7)
    return x[:400], y[:400], x[400:], y[400:]


# ----------------------------------------------------------------- images


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)  # 1,797 8x8 images, 0-16
    x = (x / 16.0).reshape(-1, 8, 8, 1)
    x_tr, y_tr, x_val, y_val = _split(x.astype("float32"), y.astype("int32"), 360)
    return x_tr, y_tr, x_val, y_val


def digits_tiny():
    """300 training images of `digits` (tiny data), scored on the same 360 validation images."""
    x_tr, y_tr, x_val, y_val = digits()
    return x_tr[:300], y_tr[:300], x_val, y_val


def _digit_subset(low: bool):
    x_tr, y_tr, x_val, y_val = digits()
    keep_tr, keep_val = (y_tr < 5) == low, (y_val < 5) == low
    shift = 0 if low else 5
    return x_tr[keep_tr], y_tr[keep_tr] - shift, x_val[keep_val], y_val[keep_val] - shift


def digits_low():
    """Digits 0-4: the source task of the digits fine-tuning setup."""
    return _digit_subset(True)


def digits_high():
    """Digits 5-9 relabelled 0-4: its target task."""
    return _digit_subset(False)


def stripes(n=3600, size=32, n_val=600, seed=DATA_SEED, label="angle", noise=0.8):
    """Synthetic size x size x 3 images of coloured stripes under noise.

    label="angle": 4 classes, the stripes' orientation (0, 45, 90, 135 degrees);
    label="frequency": 3 classes, their spatial frequency (the angle is random).
    Random frequency, phase, colour and Gaussian noise make it neither trivial nor hopeless.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32") / size
    angle_k = rng.integers(0, 4, size=n)
    freq_k = rng.integers(0, 3, size=n)
    angles = angle_k * np.pi / 4 + rng.normal(0, 0.15, size=n)
    freqs = np.array([2.0, 3.5, 5.0])[freq_k] + rng.uniform(-0.4, 0.4, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    colour = rng.uniform(0.2, 1.0, size=(n, 3))
    proj = np.cos(angles)[:, None, None] * xx + np.sin(angles)[:, None, None] * yy
    wave = np.sin(2 * np.pi * freqs[:, None, None] * proj + phase[:, None, None])
    x = wave[..., None] * colour[:, None, None, :] + noise * rng.normal(size=(n, size, size, 3))
    y = (angle_k if label == "angle" else freq_k).astype("int32")
    return x[n_val:].astype("float32"), y[n_val:], x[:n_val].astype("float32"), y[:n_val]


def stripes32():
    """32x32x3 stripes by angle, 2,600 examples."""
    return stripes(n=2600, noise=1.4)


def stripes24_frequency():
    """24x24x3 stripes labelled by frequency, 2,000 examples: the fine-tuning target task."""
    return stripes(n=2000, size=24, n_val=500, seed=DATA_SEED + 2, label="frequency", noise=1.2)


def stripes24_angle():
    """24x24x3 stripes labelled by angle: the fine-tuning source task (another draw)."""
    return stripes(n=4000, size=24, n_val=0, seed=DATA_SEED + 3, label="angle")


def stripes16():
    """16x16x3 stripes by angle, noisier, 2,500 examples."""
    return stripes(n=2500, size=16, n_val=500, seed=DATA_SEED + 4, noise=1.5)


# ----------------------------------------------------------------- token sequences


def _tokens(n, length, vocab, seed, weights=None):
    rng = np.random.default_rng(seed)
    p = None if weights is None else weights / weights.sum()
    return rng.choice(np.arange(1, vocab), size=(n, length), p=p).astype("int32"), rng


def seq_majority(n=4000, length=24, vocab=12, seed=DATA_SEED, n_val=800):
    """Which of tokens 1, 2, 3 occurs most often (3 classes; ties go to the lowest)."""
    x, _ = _tokens(n, length, vocab, seed)
    counts = np.stack([(x == t).sum(axis=1) for t in (1, 2, 3)], axis=1)
    y = np.argmax(counts, axis=1).astype("int32")
    return x[n_val:], y[n_val:], x[:n_val], y[:n_val]


def seq_sum():
    """The sum of the tokens' values, standardised: regression over 20 tokens of 1-9."""
    x, _ = _tokens(5000, 20, 10, DATA_SEED + 5)
    y = x.sum(axis=1, keepdims=True).astype("float64")
    x_tr, y_tr, x_val, y_val = x[1000:], y[1000:], x[:1000], y[:1000]
    mean, std = y_tr.mean(), y_tr.std()
    return x_tr, ((y_tr - mean) / std).astype("float32"), x_val, ((y_val - mean) / std).astype("float32")


def seq_max():
    """The largest token of 12, of 1-9, minus one (9 classes; skewed to the high tokens)."""
    x, _ = _tokens(2300, 12, 10, DATA_SEED + 6)
    y = (x.max(axis=1) - 1).astype("int32")
    return x[500:], y[500:], x[:500], y[:500]


def seq_count_compare():
    """Whether token 1 occurs more often than token 2 in 32 tokens of 16 (binary, float 0/1)."""
    x, _ = _tokens(5000, 32, 16, DATA_SEED + 7)
    y = ((x == 1).sum(axis=1) > (x == 2).sum(axis=1)).astype("float32").reshape(-1, 1)
    return x[1000:], y[1000:], x[:1000], y[:1000]


def seq_mode_source():
    """The source task of the sequence fine-tuning setup: the most frequent of all 11 tokens (ties: the
    lowest), so the pre-trained embedding tells every token apart (a largest-token source did not:
    frozen, it left the target task unlearnable)."""
    x, _ = _tokens(4000, 24, 12, DATA_SEED + 8)
    counts = np.stack([(x == t).sum(axis=1) for t in range(1, 12)], axis=1)
    y = np.argmax(counts, axis=1).astype("int32")
    return x, y, x[:0], y[:0]


def seq_majority_target():
    """Its target task: `seq_majority` on another draw, 1,500 training examples."""
    return seq_majority(n=2300, seed=DATA_SEED + 9)


DATASETS = {f.__name__: f for f in (
    sine, diabetes, friedman1, linear_wide, breast_cancer, wine, binary_20, classes5_30, moons, teacher_pretrain,
    teacher_finetune, digits, digits_tiny, digits_low, digits_high, stripes32, stripes24_frequency,
    stripes24_angle, stripes16, seq_majority, seq_sum, seq_max, seq_count_compare, seq_mode_source,
    seq_majority_target)}
