"""The validated suggestion (`mnistlab.lr_range.validation`): its search on known held-out losses, and
`lr_range_test` running it: what the probes train and are scored on, when it falls back, the restore."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from mnistlab.errors import MnistlabError
from mnistlab.lr_range.finder import CURVE_RULE, DEFAULT_RULE, LONGER_STEPS, lr_range_test
from mnistlab.lr_range.validation import (CANDIDATES, EXTEND, FLAT_PROBE_STEPS, PROBE_STEPS, SHRINK, evaluate_loss,
                                          lattice_rate, search)


def bowl(best_k, blow_up_k=None):
    """Held-out loss after a probe: lowest at lattice rate `best_k`, NaN from `blow_up_k` up.
    `calls` lists the lattice index of every probe, `steps` its length."""
    calls, steps = [], []

    def loss_at(lr, n_steps):
        k = round(4 * math.log10(lr))
        calls.append(k)
        steps.append(n_steps)
        if blow_up_k is not None and k >= blow_up_k:
            return float("nan")
        return 0.3 + 0.05 * (k - best_k) ** 2

    loss_at.steps = steps
    return loss_at, calls


def test_best_inside_the_candidates_needs_no_more_probes():
    loss_at, calls = bowl(best_k=-9)
    rate, tried = search(lattice_rate(-8), loss_at)  # the curve's lowest point at 10**-2
    assert calls == [-10, -9, -8]  # the three quarter-decade rates at and below it
    assert loss_at.steps == [PROBE_STEPS] * 3
    assert rate == pytest.approx(lattice_rate(-9) / SHRINK)
    assert list(tried) == [lattice_rate(k) for k in calls]


def test_best_at_the_top_edge_climbs_up_to_two_more_but_not_past_the_ceiling():
    loss_at, calls = bowl(best_k=-4)
    rate, _ = search(lattice_rate(-8) * 1.1, loss_at)
    assert calls == [-10, -9, -8, -7, -6]  # two more, one at a time, the best still at the edge
    assert rate == pytest.approx(lattice_rate(-6) / SHRINK)
    loss_at, calls = bowl(best_k=-4)
    rate, _ = search(lattice_rate(-8), loss_at, ceiling=lattice_rate(-7) * 1.01)
    assert calls == [-10, -9, -8, -7]
    assert rate == pytest.approx(lattice_rate(-7) / SHRINK)


def test_best_at_the_bottom_edge_goes_down_but_not_below_the_floor():
    loss_at, calls = bowl(best_k=-20)
    search(lattice_rate(-8), loss_at)
    assert calls == [-10, -9, -8, -11, -12]
    loss_at, calls = bowl(best_k=-20)
    search(lattice_rate(-8), loss_at, floor=lattice_rate(-10) * 0.99)
    assert calls == [-10, -9, -8]


def test_probes_that_blow_up_are_never_the_suggestion():
    loss_at, calls = bowl(best_k=-8, blow_up_k=-9)  # everything from 10**-2.25 up diverges
    rate, tried = search(lattice_rate(-8), loss_at)
    # -10 is the best finite one, at the bottom edge: one more below it (-11) is worse, so it stays
    assert calls == [-10, -9, -8, -11] and math.isinf(tried[lattice_rate(-9)])
    assert rate == pytest.approx(lattice_rate(-10) / SHRINK)
    loss_at, calls = bowl(best_k=-20, blow_up_k=-10)  # the three candidates all blow up: the search goes lower
    rate, _ = search(lattice_rate(-8), loss_at)
    assert calls == [-10, -9, -8, -11, -12] and rate == pytest.approx(lattice_rate(-12) / SHRINK)
    loss_at, _ = bowl(best_k=0, blow_up_k=-100)
    assert search(lattice_rate(-8), loss_at)[0] is None


def test_the_fast_search_starts_above_the_lowest_point_with_short_probes():
    from mnistlab.lr_range.validation import FAST

    loss_at, calls = bowl(best_k=-8)
    rate, _ = search(lattice_rate(-8), loss_at, **FAST)
    assert calls == [-9, -8, -7] and loss_at.steps == [FAST["steps"]] * 3 == [16] * 3
    assert rate == pytest.approx(lattice_rate(-8) / FAST["shrink"])
    loss_at, calls = bowl(best_k=-4)  # the lowest point at the ceiling itself: the first probe stays under it
    search(lattice_rate(-8), loss_at, ceiling=lattice_rate(-8), **FAST)
    assert calls == [-10, -9, -8]


def test_held_out_loss_is_the_loss_evaluate_reports():
    x, y = data(2500)
    m = model()
    m.fit(x[:512], y[:512], batch_size=64, epochs=1, verbose=0)
    for n in (2500, 1500, 7):  # three chunks of 834 (the last 832), two of 750, one of 7
        expected = m.evaluate(x[:n], y[:n], batch_size=n, verbose=0)
        assert evaluate_loss(m, x[:n], y[:n]) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ in lr_range_test

D = 8


def data(n=4096, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype("float32")
    y = (np.argmax(x[:, :3] + shift, axis=1)).astype("int32")
    return x, y


def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((D,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dropout(0.1), keras.layers.Dense(3, activation="softmax")])
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return m


def state(m):
    return [np.array(v.numpy()) for v in [*m.variables, *m.optimizer.variables, *m.metrics_variables]]


def test_validated_is_the_default_and_the_model_comes_back_bit_for_bit():
    x, y = data()
    m = model()
    before = state(m)
    result = lr_range_test(m, x, y, batch_size=64, verbose=0)
    assert result.default_rule == DEFAULT_RULE == "validated"
    assert CANDIDATES <= len(result.probes) <= CANDIDATES + EXTEND
    assert all(np.isfinite(v) for v in result.probes.values())
    best = min(result.probes, key=result.probes.get)
    assert result.suggestion == pytest.approx(best / SHRINK)
    assert result.lr_range[0] <= result.suggestion <= result.lr_range[1]
    assert result.settings["probe_steps"] == PROBE_STEPS and result.timings["validation_seconds"] > 0
    for a, b in zip(before, state(m)):
        np.testing.assert_array_equal(a, b)


def test_probes_are_scored_on_validation_data_when_given_else_on_the_tail_of_x():
    x, y = data()
    own = lr_range_test(model(), x, y, batch_size=64, verbose=0)
    assert own.settings["held_out"].startswith("the last tenth")
    # the same probes scored on other data (a shifted task) give other held-out losses
    other = lr_range_test(model(), x, y, batch_size=64, verbose=0, validation_data=data(500, seed=1, shift=0.7))
    assert other.settings["held_out"] == "validation_data"
    common = set(own.probes) & set(other.probes)
    assert common and all(own.probes[k] != other.probes[k] for k in common)
    # the tail scored as validation_data, with the probes training on all of x: not the same as holding it out
    n = len(x) - min(2000, len(x) // 10)
    tail = lr_range_test(model(), x[:n], y[:n], batch_size=64, verbose=0, validation_data=(x[n:], y[n:]))
    # the curve differs (x[:n] vs x), but the probes train on x[:n] and score on x[n:] in both
    for k in set(tail.probes) & set(own.probes):
        assert tail.probes[k] == pytest.approx(own.probes[k], rel=1e-5)


def test_without_held_out_data_or_with_validate_false_the_curve_rule_answers():
    x, y = data(512)
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 512, 64)]
    result = lr_range_test(model(), batches, verbose=0)
    assert result.default_rule == CURVE_RULE and result.suggestions["validated"] is None
    assert "validation_data" in result.reasons["validated"] and not result.probes
    assert result.suggestion == result.suggestions[CURVE_RULE]
    with_val = lr_range_test(model(), batches, verbose=0, validation_data=(x[:128], y[:128]))
    assert with_val.default_rule == "validated" and with_val.probes
    off = lr_range_test(model(), x, y, verbose=0, validate=False)
    assert off.default_rule == CURVE_RULE and not off.probes and "validate=False" in off.reasons["validated"]


def test_bad_validation_data_is_refused_with_what_to_pass():
    x, y = data(512)
    with pytest.raises(MnistlabError, match="validation_data"):
        lr_range_test(model(), x, y, verbose=0, validation_data=(x[:0], y[:0]))
    with pytest.raises(MnistlabError, match="validation_data"):
        lr_range_test(model(), x, y, verbose=0, validation_data=42)


def test_the_benchmark_scores_exactly_what_the_library_suggests():
    """benchmarks/lr_quality/scoring.py re-runs the library's search on recorded probes: fed the library's
    own curve and probes, it must land on the library's rate."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is a package at the repository root
    from benchmarks.lr_quality import scoring as lr_scoring

    x, y = data()
    result = lr_range_test(model(), x, y, batch_size=64, verbose=0)
    recorded = {"setup": "library", "curve": {"lr": result.lrs.tolist(), "loss": result.losses.tolist()},
                "probe_steps": [PROBE_STEPS],
                "probes": {f"{lr:.3g}": {"val_loss": [loss]} for lr, loss in result.probes.items()}}
    assert lr_scoring.validated(recorded) == pytest.approx(result.suggestion)
    assert "library" not in lr_scoring.MISSING_PROBES


# ------------------------------------------------ a curve too flat to read before it diverged


def test_below_a_flat_curve_probes_keep_half_a_decade_from_the_divergence():
    """The probes start half a decade under the rate the curve blew up at, never above it, run
    `FLAT_PROBE_STEPS` steps, and the best of them (divided by SHRINK) is the suggestion once it
    beat the starting loss."""
    from mnistlab.lr_range.validation import BELOW_DIVERGENCE, search_below

    lrs = np.geomspace(1e-6, 10 ** -1.5, 60)  # the test blew up at 10**-1.5 (lattice k = -6)
    loss_at, calls = bowl(best_k=-12)
    rate, tried, why = search_below(lrs, len(lrs), loss_at, start_loss=2.0, why_flat="flat")
    top = math.floor(4 * (-1.5 - BELOW_DIVERGENCE) + 1e-9)
    assert max(calls) == top == -8  # 10**-2: half a decade under the divergence, not above
    assert calls == [-10, -9, -8, -11, -12]  # down while the best is at the low edge
    assert loss_at.steps == [FLAT_PROBE_STEPS] * 5
    assert why is None and rate == pytest.approx(lattice_rate(-12) / SHRINK)


def test_below_a_flat_curve_that_never_blew_up_probes_go_down_a_decade_at_a_time():
    """No divergence: max_lr bounds the search; nothing says how far below it the model learns,
    so the probes go down in whole decades, with more of them allowed."""
    from mnistlab.lr_range.validation import FLAT_EXTEND, FLAT_SPACING, search_below

    lrs = np.geomspace(1e-6, 10.0, 100)  # completed: the loss never blew up up to max_lr 10
    loss_at, calls = bowl(best_k=-6)  # learns best at 10**-1.5
    rate, tried, why = search_below(lrs, len(lrs), loss_at, start_loss=5.0, why_flat="flat",
                                    stopped_early=False)
    assert FLAT_SPACING == 4 and calls[:CANDIDATES] == [-6, -2, 2]  # 10**-1.5, 10**-0.5, 10**0.5
    assert len(calls) <= CANDIDATES + EXTEND + FLAT_EXTEND
    assert why is None and rate == pytest.approx(lattice_rate(-6) / SHRINK)


def test_below_a_flat_curve_no_rate_is_suggested_when_no_probe_learns():
    from mnistlab.lr_range.validation import search_below

    lrs = np.geomspace(1e-6, 1e-2, 60)
    rate, tried, why = search_below(lrs, len(lrs), lambda lr, steps: 1.0, start_loss=1.0, why_flat="flat before")
    assert rate is None and tried and why.startswith("flat before")
    assert "did not lower the held-out loss" in why and "standardise" in why
    assert "plateau" in why and "steps=400" in why  # a model that starts late: a longer test


def test_an_ill_conditioned_model_gets_no_rate_and_the_real_cause():
    """Inputs on scales 100 and 1, the target on the small one: the loss blows up (on the large
    feature) before the small one is learned. The curve is flat before it diverges; the probes
    below it learn nothing either, so there is no suggestion, and the reason says why."""
    rng = np.random.default_rng(0)
    x = np.stack([100 * rng.normal(size=2000), rng.normal(size=2000)], 1).astype("float32")
    y = x[:, 1:2].copy()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    result = lr_range_test(model, x, y, batch_size=32, verbose=0)
    assert result.stop_reason.startswith("diverged")
    assert result.suggestion is None and result.probes  # the probes ran below the divergence
    assert "flat before it blew up" in result.reason and "widen" not in result.reason
    assert "standardise" in result.reason
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # a default-length test that ends so is run once more, longer (a model on a plateau learns after it);
    # here the longer one finds no rate either, and the reason says both were tried
    assert result.settings["flat_at_steps"] == 100 and result.settings["steps"] == LONGER_STEPS == 400
    assert result.reason.startswith("no rate in a 100-step test nor in a 400-step one: flat before it blew up")
    assert "steps=500" in result.reason  # the next longer test it advises: 4x the steps that ran (122)
    assert result.timings["total_seconds"] > result.timings["flat_seconds"] > 0
    given = lr_range_test(model, x, y, batch_size=32, steps=100, verbose=0)  # steps given: never run longer
    assert given.suggestion is None and given.settings["steps"] == 100 and "flat_at_steps" not in given.settings
    assert "flat before it blew up" in given.reason and "steps=400" in given.reason


def test_fast_validation_runs_the_short_search_and_bad_values_are_refused():
    from mnistlab.lr_range.validation import FAST

    x, y = data()
    result = lr_range_test(model(), x, y, batch_size=64, verbose=0, validate="fast")
    assert result.settings["probe_steps"] == FAST["steps"] == 16 and result.settings["validate"] == "fast"
    assert FAST["candidates"] <= len(result.probes) <= FAST["candidates"] + FAST["extend"]
    best = min(result.probes, key=result.probes.get)
    assert result.suggestion == pytest.approx(best / FAST["shrink"])
    with pytest.raises(MnistlabError, match="fast"):
        lr_range_test(model(), x, y, verbose=0, validate="yes")
