"""Reading a learning rate off a range-test curve: the lag-free curve, divergence, and the rules.

The classic recipe smooths the batch losses with an exponential moving
average (fastai, Lightning: beta 0.98). That average lags: with 100 steps
over 7 decades of rate it trails the batch losses by one to two decades, so
"where the loss is lowest" and "where it shoots up", read off it, are read a
decade or more too late, at rates where training already diverges. Here the
curve is smoothed without lag: a local linear fit around each step with
Gaussian weights (`smooth`), which follows a trend to the very last point.
Divergence (`diverged`) is judged on the batch losses themselves, so the
test stops when the loss blows up, not a decade later.

The rules (`RULES`; `read_curve` applies them all). The default suggestion
is not one of them: it checks the curve's rates by training
(`mnistlab.lr_range.validation`, the `validated` rule). What each is good for, as
measured by `benchmarks/lr_quality/suggestion_quality.py` (each rule's hits and
mean gap to the best grid rate: docs/lr-range-test.md, "Rules and the evidence
for the default"):

- `middle` (the default without held-out data): the geometric middle of the
  rates from the steepest descent up to half the lowest point,
  `sqrt(steepest * min / 2)`; `supported_range` returns that span. Rates in
  it still learn fast and are not yet at the edge of divergence. The best
  curve-only rule on the benchmark.
- `steepest`: where the lag-free loss falls fastest per decade of rate, on
  the main descent. A cautious rate.
- `valley`: fastai's default, the rate two thirds down the longest stretch of
  falling loss. Far too low on a curve without lag; kept for comparison.
- `min_div10`: a tenth of the rate at the lowest loss (fastai's `minimum`),
  too low once the lowest point is read without lag.
- `half_shootup`: the exercise's rule: half the rate at which the loss shoots
  up (climbs back `SHOOTUP` of its fall after its lowest point, or the test
  diverges), never past the lowest point.
- `min`: the rate at the lowest loss; an upper bound, not a training rate,
  and where the validated rule's probes start.
"""

from __future__ import annotations

import math

import numpy as np

RULES = ("middle", "steepest", "valley", "min_div10", "half_shootup", "min")
# Width (standard deviation, in steps) of the local linear smoothing.
SMOOTH_STEPS = 3.0
# Fewer usable points than this is "too short to read".
MIN_POINTS = 10
# The loss must fall by this share of its starting level (and by more than its noise) to be read.
MIN_DROP = 0.03
# `half_shootup`: the loss "shoots up" once it has climbed back this share of its fall.
SHOOTUP = 0.25


def smooth(losses, width: float = SMOOTH_STEPS, spread: bool = False):
    """The lag-free curve: at each step a local linear fit of the finite losses, Gaussian-weighted.

    Zero-phase: a falling or rising stretch is followed, not trailed; at the
    ends the fit is one-sided and still follows the trend. A centred running
    median of 5 comes first, so one or two wild batches do not tilt the fits.
    NaN where the loss is not finite. `width` 0 returns the losses.

    With `spread=True` it also returns, per step, the standard deviation of
    the fitted value in units of the batch-to-batch noise (larger at the ends,
    where the fit is one-sided): `(curve, spread)`.
    """
    y = np.asarray(losses, dtype="float64")
    good = np.isfinite(y)
    out = np.where(good, y, np.nan)
    sd = np.where(good, 1.0, np.nan)
    if width <= 0 or not good.any():
        return (out, sd) if spread else out
    y = _median5(y, good)  # an isolated noisy batch (or two) must not tilt the local fits
    n, reach = len(y), int(math.ceil(5 * width))
    t = np.arange(n, dtype="float64")
    g, y0 = good.astype("float64"), np.where(good, y, 0.0)
    # weighted sums over the neighbours j = i + d, one offset d at a time (vectorised over i)
    s0, s1, s2, sy, sty, q0, q1, q2 = (np.zeros(n) for _ in range(8))
    for d in range(-min(reach, n - 1), min(reach, n - 1) + 1):
        lo, hi = max(0, -d), min(n, n - d)
        w = math.exp(-0.5 * (d / width) ** 2) * g[lo + d:hi + d]
        tj, yj = t[lo + d:hi + d], y0[lo + d:hi + d]
        s0[lo:hi] += w
        s1[lo:hi] += w * tj
        s2[lo:hi] += w * tj * tj
        sy[lo:hi] += w * yj
        sty[lo:hi] += w * tj * yj
        q0[lo:hi] += w * w
        q1[lo:hi] += w * w * tj
        q2[lo:hi] += w * w * tj * tj
    mt, my = s1 / s0, sy / s0
    var, cov = s2 - s1 * mt, sty - s1 * my
    ok = var > 1e-12 * np.maximum(s0, 1)
    slope = np.divide(cov, var, out=np.zeros(n), where=ok)
    out[good] = (my + slope * (t - mt))[good]
    # the fit is sum_j l_j y_j with l_j = w_j (1 + a (t_j - mt)) / s0, a = (t_i - mt) / var
    a = np.divide(t - mt, var, out=np.zeros(n), where=ok)
    centred2 = q2 - 2 * mt * q1 + mt * mt * q0
    centred1 = q1 - mt * q0
    sd[good] = (np.sqrt(np.maximum(q0 + 2 * a * centred1 + a * a * centred2, 0)) / s0)[good]
    return (out, sd) if spread else out


def _median5(y, good):
    """A centred running median over 5 finite neighbours (3 next to the ends, none at them):
    no lag, no spikes, and a straight line stays put."""
    vals = y[good]
    med = vals.copy()
    m = len(vals)
    if m >= 3:
        med[1:-1] = np.median(np.lib.stride_tricks.sliding_window_view(vals, 3), axis=1)
    if m >= 5:
        med[2:-2] = np.median(np.lib.stride_tricks.sliding_window_view(vals, 5), axis=1)
    out = y.copy()
    out[good] = med
    return out


def diverged(losses, factor: float) -> bool:
    """Has the loss blown up? The median of the last 3 batch losses (one noisy batch is not
    enough) passed both `factor` x the lowest loss so far (the lowest running median of 5,
    which a single lucky batch cannot set) and the loss the test started at. The second
    keeps a loss near zero (a regression that fits almost exactly) from "diverging" on
    noise; a real blow-up passes both within a step or two."""
    y = np.asarray(losses, dtype="float64")
    if len(y) < 3 or not np.isfinite(y[-3:]).all():
        return False
    good = np.isfinite(y)
    low = float(np.min(_median5(y, good)[good]))
    return bool(np.median(y[-3:]) > max(factor * low, float(np.median(y[good][:3]))))


def noise_level(losses) -> float:
    """Batch-to-batch noise of the losses (robust: from the median step-to-step change)."""
    d = np.diff(np.asarray(losses, dtype="float64"))
    d = d[np.isfinite(d)]
    return 1.4826 * float(np.median(np.abs(d))) / math.sqrt(2) if len(d) else 0.0


# A default-length test whose curve is flat and whose probes below it learned nothing either is
# run once more with this many steps (`lr_range_test`): a model on a plateau longer than the
# probes learns only after it (a separable CNN with momentum SGD: flat at 100 steps, 0.12 at 400,
# its best grid rate 0.1; docs/lr-range-test.md, "When the curve is flat"). Never when `steps`
# is given. Also the fewest steps a flat curve's reason suggests.
LONGER_STEPS = 400


def more_steps(n: int) -> int:
    """The longer test a flat curve's reason suggests: 4x the `n` steps it read, at least
    `LONGER_STEPS`, rounded up to a hundred."""
    return max(LONGER_STEPS, -(-4 * n // 100) * 100)


def read_curve(lrs, losses, *, stopped_early: bool = False, width: float = SMOOTH_STEPS):
    """Every curve rule's rate, read off the lag-free curve of `losses`.

    Args:
        lrs, losses: the test's rates and batch losses (the last may be NaN/inf).
        stopped_early: the test ended on divergence or a non-finite loss.
        width: the smoothing (see `smooth`).

    Returns:
        `(suggestions, reasons, info)`: rule -> rate or None, rule -> why None,
        and what the rules saw (`curve`, the indices `i_min`, `start`, `shoot`,
        `n` usable points, and `noise`).
    """
    lrs = np.asarray(lrs, dtype="float64")
    raw = np.asarray(losses, dtype="float64")
    suggestions, reasons = dict.fromkeys(RULES), {}
    finite = np.isfinite(raw) & np.isfinite(lrs) & (lrs > 0)
    n = len(lrs) if finite.all() else int(np.argmin(finite))
    # one fit for the whole curve: the usable points are those before the first bad one
    curve, spread = smooth(np.where(np.arange(len(raw)) < n, raw, np.nan), width, spread=True)
    info = {"curve": curve, "n": n}

    def give_up(rules, why):
        for rule in rules:
            if suggestions[rule] is None:
                reasons[rule] = why

    if n < MIN_POINTS:
        give_up(RULES, f"too short: {n} usable steps where {MIN_POINTS} are needed: raise steps, "
                             "or lower min_lr if the loss blew up at once")
        return suggestions, reasons, info
    lr, c = lrs[:n], curve[:n]
    # The formula assumes independent inputs; after the running median the fitted values
    # spread up to 1.6x as much (measured on Gaussian noise, most at the one-sided ends).
    spread = 1.6 * spread[:n]
    noise = noise_level(raw[:n])
    # the lowest point, judged a little cautiously where the fit is uncertain (the one-sided ends)
    i_min = int(np.argmin(c + noise * spread))
    i_peak = int(np.argmax(c[:i_min + 1]))
    peak = float(c[i_peak])
    fall = peak - c[i_min]
    info.update(i_min=i_min, noise=noise)
    # a fall the noise could have made (4 standard deviations of the two fitted values) is no fall
    if fall <= max(MIN_DROP * abs(peak), 4 * noise * math.hypot(spread[i_peak], spread[i_min])):
        info["flat"] = True
        if stopped_early:
            # The range holds a rate too high to train at, so widening it is not the fix: the
            # model learned too little in the few steps below that rate for a curve to show it.
            top = lr[-1]
            give_up(RULES, f"flat before it blew up: the loss fell by only {fall:.3g} from {peak:.4g} "
                           f"(noise {noise:.2g}) up to lr {top:.2g}, where it diverged: too few of the "
                           f"{n} steps fell where the model learns; raise steps (e.g. {more_steps(n)}) or narrow the "
                           f"range to it (min_lr={top / 1000:.2g}, max_lr={top:.2g})")
        else:
            give_up(RULES, f"flat: the loss never fell by more than {fall:.3g} from {peak:.4g} "
                           f"(noise {noise:.2g}) between lr {lr[0]:.2g} and {lr[-1]:.2g}, and never blew "
                           f"up: raise max_lr, or raise steps (e.g. {more_steps(n)}: a model that starts slowly learns "
                           "nothing in the few steps each rate gets), or check that the model can learn "
                           "(its loss, labels and inputs)")
        return suggestions, reasons, info

    # the main descent starts where the loss last stood within 10% (of its fall) of its peak
    start = int(np.nonzero(c[:i_min + 1] >= c[i_min] + 0.9 * fall)[0][-1])
    info["start"] = start
    if i_min - start >= 2:
        slope = np.gradient(c[start:i_min + 1], np.log10(lr[start:i_min + 1]))
        j = int(np.argmin(slope))
        if slope[j] < 0:
            suggestions["steepest"] = float(lr[start + j])
    give_up(["steepest"], "no falling stretch before the lowest loss")

    idx = valley_index(c[:n])
    if idx is not None:
        suggestions["valley"] = float(lr[idx])
    give_up(["valley"], "no stretch of falling loss")

    # the shoot-up: the first point after the lowest that climbed back SHOOTUP of the fall,
    # else the point where the test stopped on divergence
    above = np.nonzero(c[i_min + 1:] > c[i_min] + SHOOTUP * fall)[0]
    if len(above):
        shoot = i_min + 1 + int(above[0])
    else:  # the step the test stopped on (a non-finite loss, or the one that diverged), if it did
        shoot = min(n, len(lrs) - 1) if stopped_early else None
    info["shoot"] = shoot
    if i_min == n - 1 and shoot is None:
        give_up(["min", "min_div10", "half_shootup", "middle"],
                f"no minimum: the loss was still falling at the last rate ({lr[-1]:.2g}): raise max_lr")
        return suggestions, reasons, info
    suggestions["min"] = float(lr[i_min])
    suggestions["min_div10"] = float(lr[i_min] / 10)
    if shoot is not None:
        # half the rate where the loss shoots up, and never past the lowest point: beyond it
        # the loss was already climbing
        suggestions["half_shootup"] = float(min(lrs[shoot] / 2, lr[i_min]))
    give_up(["half_shootup"], f"the loss never shot up after its lowest point at {lr[i_min]:.2g} "
                              "(it stayed low up to max_lr): raise max_lr")
    if suggestions["steepest"] is not None:
        suggestions["middle"] = math.sqrt(suggestions["steepest"] * suggestions["min"] / 2)
    give_up(["middle"], reasons.get("steepest", "no falling stretch before the lowest loss"))
    for rule, value in suggestions.items():
        if value is not None and value < lrs[0]:
            suggestions[rule] = None
            reasons[rule] = f"{value:.2g} is below min_lr {lrs[0]:.2g}: lower min_lr"
    return suggestions, reasons, info


def valley_index(loss):
    """fastai's `valley` on one curve: the index two thirds down the longest valley.

    `lds[i]` is the length of the longest strictly decreasing subsequence
    ending at `i`; fastai records the start of the best one when `lds[i]` first
    overtakes the best so far while scanning `j`, and so do we, to give the
    same index. Vectorised per `i` (the original is a double Python loop).
    """
    n = len(loss)
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        cand = np.where(loss[i] < loss[:i], lds[:i] + 1, 1)
        running = np.maximum.accumulate(cand)
        lds[i] = running[-1]
        over = np.nonzero(running > lds[max_end])[0]
        if len(over):
            max_end, max_start = i, i - int(running[over[0]])
    if lds[max_end] < 2:
        return None
    sections = (max_end - max_start) / 3
    return max(0, max_start + int(sections) + int(sections / 2))



def supported_range(suggestions: dict):
    """`(low, high)`: the rates the curve supports, from the steepest descent up to half the
    lowest point (the span `middle` sits in the middle of), widened to hold `middle`'s
    rate; None when the curve shows no such span."""
    steep, low_point = suggestions.get("steepest"), suggestions.get("min")
    if steep is None or low_point is None:
        return None
    return (float(min(steep, low_point / 2)), float(max(steep, low_point / 2)))
