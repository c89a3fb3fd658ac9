"""The rules that read a learning rate off a range-test curve, pinned on synthetic curves
whose right answer is known: a lagged shoot-up, a noisy flat start, early divergence, and a
loss still falling at max_lr."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlab.lr_range import rules as lr_rules
from mnistlab.lr_range.rules import diverged, read_curve, smooth

LRS = np.logspace(-6, 1, 100)
T = np.log10(LRS)


def ema(losses, beta=0.98):
    """The bias-corrected moving average other finders read (fastai, Lightning)."""
    out, avg = [], 0.0
    for k, v in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**k))
    return np.array(out)


def falls_then_shoots_up(bottom=-1.0, shoot=0.0, noise=0.0, seed=0):
    """Falls around 1e-3, lowest near 10**bottom, shoots up steeply from 10**shoot."""
    loss = 0.2 + 2.0 / (1 + np.exp(3 * (T + 3))) + 0.05 * (T - bottom) ** 2 * (T > bottom)
    loss = loss + np.where(T > shoot, 10 ** (3 * (T - shoot)) - 1, 0)
    return loss + noise * np.random.default_rng(seed).normal(size=len(T))


def test_the_curve_has_no_lag():
    # a straight line and a parabola are followed exactly by the local linear fit (no trailing)
    line = 3.0 - 0.02 * np.arange(100)
    np.testing.assert_allclose(smooth(line), line, atol=1e-9)
    loss = falls_then_shoots_up(noise=0.01)
    i_raw = int(np.argmin(loss))
    # the curve's lowest point is the loss's own (within four steps, 0.3 decade); the moving
    # average's lowest point trails it by more than half a decade
    assert abs(int(np.argmin(smooth(loss))) - i_raw) <= 4
    assert int(np.argmin(ema(loss))) - i_raw > 7


def test_lagged_shoot_up_half_shootup_is_half_the_raw_shoot_up():
    loss = falls_then_shoots_up(bottom=-1.0, shoot=0.0, noise=0.01)
    s, r, info = read_curve(LRS, loss)
    # the raw loss bottoms out near 0.1 and shoots up from 1.0
    i_raw_min = int(np.argmin(loss))
    assert 10 ** -0.3 * LRS[i_raw_min] < s["min"] < 10 ** 0.3 * LRS[i_raw_min], s
    assert 0.1 < s["half_shootup"] <= 1.0, s  # half of where the loss itself shoots up
    assert s["half_shootup"] <= s["min"]      # never past the lowest point
    assert s["min_div10"] == pytest.approx(s["min"] / 10)
    # read off the lagging average, the "shoot-up" would have been a decade later:
    lagged = ema(loss)
    i_lag = int(np.argmax(lagged[int(np.argmin(lagged)):] > lagged.min() + 0.25 * (lagged[10] - lagged.min())))
    assert LRS[int(np.argmin(lagged)) + i_lag] > 3 * 2 * s["half_shootup"]
    assert r == {}


@pytest.mark.parametrize("seed", range(4))
def test_a_noise_dip_on_the_flat_start_is_not_the_descent(seed):
    rng = np.random.default_rng(seed)
    loss = falls_then_shoots_up(bottom=-1.0, shoot=0.0) + np.where(T < -4, 0.15 * rng.normal(size=100), 0.0)
    loss[20:23] -= 0.6  # a deep dip among the noise at 2.5e-5
    s, _, _ = read_curve(LRS, loss)
    for rule in ("steepest", "min_div10", "min", "half_shootup"):
        assert s[rule] > 1e-4, (rule, s)
    assert 3e-4 < s["steepest"] < 3e-3, s  # the main descent is centred on 1e-3


def test_early_divergence_gives_no_rate_at_or_past_the_blow_up():
    # falls around 1e-5, lowest near 5e-5, shoots up from 1e-4, NaN at step 30 (1.3e-4)
    loss = 0.3 + 2.0 / (1 + np.exp(4 * (T + 5))) + np.where(T > -4, 10 ** (6 * (T + 4)) - 1, 0)
    loss = np.append(loss[:30], np.nan)
    s, r, _ = read_curve(LRS[:31], loss, stopped_early=True)
    for rule, lr in s.items():
        assert lr is None or lr < LRS[30], (rule, lr)
    assert s["half_shootup"] is not None and s["half_shootup"] < LRS[int(np.nanargmin(loss))] * 1.01
    # diverged at once: too short to read, with a reason for every rule
    s, r, _ = read_curve(LRS[:6], np.array([2.3, 2.2, 2.4, 5.0, 40.0, np.nan]), stopped_early=True)
    assert all(v is None for v in s.values()) and all("too short" in r[k] for k in s)


def test_a_loss_still_falling_at_max_lr_gives_no_minimum():
    loss = 0.2 + 2.0 / (1 + np.exp(1.5 * (T + 0.5)))  # still falling at 10
    s, r, _ = read_curve(LRS, loss)
    for rule in ("min", "min_div10", "half_shootup"):
        assert s[rule] is None and "still falling" in r[rule], (rule, r)
    assert s["steepest"] is not None and 0.03 < s["steepest"] < 3, s


@pytest.mark.parametrize("seed", range(3))
def test_a_noisy_flat_curve_is_unreadable(seed):
    loss = 2.3 + 0.3 * np.random.default_rng(seed).normal(size=100)
    s, r, _ = read_curve(LRS, loss)
    assert all(v is None for v in s.values()) and all("flat" in r[k] for k in s)


def test_divergence_is_seen_when_it_happens_not_a_decade_later():
    loss = list(falls_then_shoots_up(bottom=-1.0, shoot=10.0, noise=0.02))  # no shoot-up of its own
    blow = 80
    loss[blow:] = [12.0, 14.6, 11.6, 15.0, 20.0]
    seen = next(i for i in range(len(loss)) if diverged(loss[:i + 1], 4.0))
    assert blow <= seen <= blow + 2  # the median of three batches passed 4x the lowest loss
    # one noisy batch is not divergence
    spike = list(falls_then_shoots_up(bottom=-1.0, shoot=10.0))[:70]
    spike[60] = 50.0
    assert not any(diverged(spike[:i + 1], 4.0) for i in range(len(spike)))


def test_middle_is_the_geometric_middle_of_the_supported_range():
    loss = falls_then_shoots_up(bottom=-1.0, shoot=0.0, noise=0.01)
    s, _, _ = read_curve(LRS, loss)
    low, high = lr_rules.supported_range(s)
    assert (low, high) == (pytest.approx(s["steepest"]), pytest.approx(s["min"] / 2))
    assert s["middle"] == pytest.approx(np.sqrt(low * high))
    assert lr_rules.supported_range({"steepest": None, "min": 0.1}) is None


def test_a_flat_curve_that_diverged_names_a_narrower_range_not_a_wider_one():
    """Flat up to where it blew up: the range was wide enough; the advice is more steps or a
    range narrowed to below the divergence. Flat without blowing up: raise max_lr."""
    loss = 1.0 + 0.05 * np.random.default_rng(0).normal(size=60)
    s, r, info = read_curve(LRS[:60], loss, stopped_early=True)
    assert all(v is None for v in s.values()) and info["flat"]
    assert "flat before it blew up" in r["middle"] and "raise steps" in r["middle"]
    assert f"max_lr={LRS[59]:.2g}" in r["middle"] and "widen" not in r["middle"]
    s, r, _ = read_curve(LRS[:60], loss, stopped_early=False)
    assert r["middle"].startswith("flat:") and "raise max_lr" in r["middle"] and "raise steps" in r["middle"]
    assert "e.g. 400" in r["middle"]  # 60 steps: at least the 400 that lr_range_test itself tries next
    long = 1.0 + 0.05 * np.random.default_rng(0).normal(size=400)
    assert "e.g. 1600" in read_curve(np.geomspace(1e-6, 10, 400), long, stopped_early=False)[1]["middle"]
