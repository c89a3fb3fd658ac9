"""Other libraries' LR range-test suggestions, re-applied to a recorded curve of raw batch losses.

Each anchor runs as its library does, from the raw batch losses of one test:
its own smoothing, its own stop on divergence, its own skipped points and
its own rule. Read from their sources (none is a dependency here):

- fastai 2.7 (`fastai.callback.schedule`): `Recorder` smooths with a
  debiased EMA (beta 0.98); `LRFinder` stops once the smoothed loss passes
  4x its lowest (the stopping point is recorded); `lr_find` drops the first
  `num_it // 10` and last 5 points, then `valley`, `slide`, `minimum` (lowest
  loss / 10) or `steep` (steepest fall per log-rate).
- PyTorch Lightning (`tuner/lr_finder.py`): the same debiased EMA (0.98) and
  stop at 4x; `suggestion(skip_begin=10, skip_end=1)` takes the most negative
  gradient, against the rate itself since 2.5.3 (`torch.gradient(losses,
  spacing=[lrs])`), per step before.
- torch-lr-finder (davidtvs): EMA without debiasing, `smooth_f=0.05`, stop
  once the smoothed loss passes 5x its lowest; `plot(suggest_lr=True)` skips
  10 and 5 and takes the most negative gradient per step.
- keras-lr-finder (surmenok): raw batch losses, stop once a loss passes 4x
  the lowest (or is NaN); `get_best_lr(sma=4)` (its README's call) skips 10
  and 5 and takes the most negative 4-step difference.

Every function takes the rates and raw losses (None/NaN/inf where the step's
loss was not finite) and returns a rate, or None when it can't read one.
"""

from __future__ import annotations

import numpy as np


def _clean(lrs, losses):
    lrs = np.asarray(lrs, dtype="float64")
    losses = np.asarray([np.nan if v is None else v for v in losses], dtype="float64")
    return lrs, losses


def _debiased_ema(losses, beta=0.98):
    out, avg = [], 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return np.asarray(out)


def _stop(smoothed, factor):
    """Index one past the step at which `smoothed` passed `factor` x its lowest so far (or went NaN)."""
    best = np.inf
    for i, v in enumerate(smoothed):
        best = min(best, v)
        if not np.isfinite(v) or v > factor * best:
            return i + 1
    return len(smoothed)


def _fastai_window(lrs, losses, num_it=100):
    s = _debiased_ema(losses)
    n = _stop(s, 4.0)
    lrs, s = lrs[:n], s[:n]
    lrs, s = lrs[num_it // 10:-5], s[num_it // 10:-5]
    bad = np.nonzero(np.isnan(s))[0]
    if len(bad):
        lrs, s = lrs[:bad[0]], s[:bad[0]]
    return lrs, s


def fastai_valley(lrs, losses):
    lrs, s = _fastai_window(*_clean(lrs, losses))
    n = len(s)
    if n < 2:
        return None
    lds, max_start, max_end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if s[i] < s[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def fastai_slide(lrs, losses, lr_diff=15, thresh=0.005, adjust_value=1.0):
    lrs, s = _fastai_window(*_clean(lrs, losses))
    if len(s) <= lr_diff:
        return None
    grad = np.gradient(s)
    r_idx, l_idx = -1, -1 - lr_diff
    local_min_lr = lrs[l_idx]
    while l_idx >= -len(s) and abs(grad[r_idx] - grad[l_idx]) > thresh:
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    return float(local_min_lr) * adjust_value


def fastai_minimum(lrs, losses):
    lrs, s = _fastai_window(*_clean(lrs, losses))
    return float(lrs[int(np.argmin(s))] / 10) if len(s) else None


def fastai_steep(lrs, losses):
    lrs, s = _fastai_window(*_clean(lrs, losses))
    if len(s) < 2:
        return None
    grads = (s[1:] - s[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    return float(lrs[int(np.argmin(grads))])


def _lightning(lrs, losses, per_step: bool, skip_begin=10, skip_end=1):
    lrs, losses = _clean(lrs, losses)
    s = _debiased_ema(losses)
    n = _stop(s, 4.0)
    lrs, s = lrs[:n][skip_begin:-skip_end], s[:n][skip_begin:-skip_end]
    good = np.isfinite(s)
    lrs, s = lrs[good], s[good]
    if len(s) < 2:
        return None
    grad = np.gradient(s) if per_step else np.gradient(s, lrs)
    return float(lrs[int(np.argmin(grad))])


def lightning(lrs, losses):
    """Lightning >= 2.5.3: the gradient against the rate."""
    return _lightning(lrs, losses, per_step=False)


def lightning_pre253(lrs, losses):
    """Lightning before 2.5.3: the gradient per step."""
    return _lightning(lrs, losses, per_step=True)


def torch_lr_finder(lrs, losses, smooth_f=0.05, diverge_th=5.0, skip_start=10, skip_end=5):
    lrs, losses = _clean(lrs, losses)
    hist, best = [], None
    for i, v in enumerate(losses):
        if i == 0:
            best = v
        else:
            v = smooth_f * v + (1 - smooth_f) * hist[-1]
            best = min(best, v)
        hist.append(v)
        if not np.isfinite(v) or v > diverge_th * best:
            break
    s = np.asarray(hist)
    lrs = lrs[:len(s)][skip_start:-skip_end]
    s = s[skip_start:-skip_end]
    if len(s) < 2 or not np.isfinite(s).all():
        return None
    return float(lrs[int(np.argmin(np.gradient(s)))])


def keras_lr_finder(lrs, losses, sma=4, n_skip_beginning=10, n_skip_end=5):
    lrs, losses = _clean(lrs, losses)
    kept, best = [], 1e9
    for v in losses:
        kept.append(v)
        if np.isnan(v) or v > best * 4:
            break
        best = min(best, v)
    losses, lrs = np.asarray(kept), lrs[:len(kept)]
    derivatives = [0.0] * sma + [(losses[i] - losses[i - sma]) / sma for i in range(sma, len(lrs))]
    window = np.asarray(derivatives[n_skip_beginning:-n_skip_end], dtype="float64")
    if not len(window) or not np.isfinite(window).any():
        return None
    return float(lrs[n_skip_beginning:-n_skip_end][int(np.nanargmin(window))])


ANCHORS = {
    "fastai valley": fastai_valley,
    "fastai slide": fastai_slide,
    "fastai minimum": fastai_minimum,
    "fastai steep": fastai_steep,
    "lightning": lightning,
    "lightning <2.5.3": lightning_pre253,
    "torch-lr-finder": torch_lr_finder,
    "keras-lr-finder": keras_lr_finder,
}
