"""The anchor rules of benchmarks/lr_quality/anchors.py (other libraries' suggestions) and the quality
benchmark's reading of a recorded curve: each anchor applies its own smoothing, stop and skips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is a package at the repository root
from benchmarks.lr_quality import anchors as lr_anchors  # noqa: E402

from mnistlab.lr_range.rules import valley_index  # noqa: E402

LRS = np.logspace(-6, 1, 100)
T = np.log10(LRS)


def curve(bottom=-1.0, shoot=0.0):
    """Falls around 1e-3, lowest near 10**bottom, blows up from 10**shoot (NaN at the end)."""
    loss = 0.2 + 2.0 / (1 + np.exp(3 * (T + 3))) + 0.05 * (T - bottom) ** 2 * (T > bottom)
    loss = loss + np.where(T > shoot, 10 ** (3 * (T - shoot)) - 1, 0)
    loss[-3:] = np.nan
    return [None if np.isnan(v) else float(v) for v in loss]


def test_each_anchor_reads_a_rate_from_a_clean_curve():
    losses = curve()
    for name, rule in lr_anchors.ANCHORS.items():
        lr = rule(LRS, losses)
        assert lr is not None and 1e-6 <= lr <= 10, name
    # the steepest-descent anchors find the descent around 1e-3 (after their lagging average)
    for name in ("fastai steep", "torch-lr-finder", "lightning <2.5.3", "keras-lr-finder"):
        assert 1e-4 < lr_anchors.ANCHORS[name](LRS, losses) < 1e-1, name


def test_fastai_anchors_match_fastai_on_its_own_window():
    losses = curve()
    smoothed = lr_anchors._debiased_ema(np.array([np.nan if v is None else v for v in losses]))
    stop = lr_anchors._stop(smoothed, 4.0)
    lrs, s = LRS[:stop][10:-5], smoothed[:stop][10:-5]
    assert lr_anchors.fastai_valley(LRS, losses) == pytest.approx(lrs[valley_index(s)])
    assert lr_anchors.fastai_minimum(LRS, losses) == pytest.approx(lrs[np.argmin(s)] / 10)
    assert stop < 97  # fastai stops once its average passes 4x its lowest, before the NaN


def test_lightning_since_253_differentiates_against_the_rate_itself():
    # on an exponential grid d(loss)/d(lr) is steepest at small rates: the rule the issue warns of
    losses = curve()
    assert lr_anchors.lightning(LRS, losses) < lr_anchors.lightning_pre253(LRS, losses)


def test_keras_lr_finder_stops_on_the_raw_loss():
    losses = curve()
    losses[50] = 100.0  # one wild batch stops it (raw losses, 4x the lowest)
    assert lr_anchors.keras_lr_finder(LRS, losses) <= LRS[50]


def fake_setup(best_acc, seeds, jitter, others):
    """A recorded setup as the benchmark stores it: grid accuracies, and the noise floor's re-runs."""
    trained = {"0.001": {"val_accuracy": best_acc}, **{k: {"val_accuracy": v} for k, v in others.items()}}
    return {"setup": "fake", "grid": list(trained), "trained": trained,
            "noise": {"rate": "0.001", "seeds": {str(i): {"val_accuracy": a} for i, a in enumerate(seeds, 1)},
                      "jitter": {k: {"val_accuracy": a} for k, a in zip(("0.0009", "0.0011"), jitter)}}}


def test_noise_floor_counts_reruns_of_the_best_rate_within_the_hit():
    from benchmarks.lr_quality import noise_floor as lr_noise_floor

    results = {"a": fake_setup(0.90, [0.899, 0.895, 0.905], [0.898, 0.880], {"0.01": 0.5}),
               "b": fake_setup(0.80, [0.70, 0.81, 0.7975], [0.80, 0.79], {"0.01": 0.6})}
    text = lr_noise_floor.report(results)
    # a: 0.1 and 0.5 points below or above; b: 10 points below, above, 0.25 below
    assert "| a | 0.001 | 90.00 | 89.90, 89.50, 90.50 | 89.80, 88.00 | 2/3 | 1/2 |" in text
    assert "| b | 0.001 | 80.00 | 70.00, 81.00, 79.75 | 80.00, 79.00 | 2/3 | 1/2 |" in text
    assert "**4/6 (67%)**" in text and "**2/4 (50%)**" in text


def test_as_good_as_a_rerun_uses_the_best_rates_worst_seed():
    from benchmarks.lr_quality import scoring as lr_scoring

    r = fake_setup(0.90, [0.88, 0.89, 0.91], [0.9, 0.9], {"0.01": 0.885, "0.1": 0.87})
    assert lr_scoring.seed_floor(r) == 0.88
    suggestions = {"fake": {"rule A": 0.01, "rule B": 0.1}}  # 1.5 and 3 points below the best
    text, stats = lr_scoring.table({"fake": r}, ["fake"], suggestions)
    assert stats["rule A"][0] == 0 and stats["rule A"][4] == 1  # not a hit, but as good as the worst re-run
    assert stats["rule B"][4] == 0
    r["noise"]["rate"] = "0.01"  # measured at another rate than the best: not counted
    assert lr_scoring.seed_floor(r) is None


def test_seed_means_score_each_rate_by_its_mean_over_three_seeds():
    from benchmarks.lr_quality import seed_means as lr_seed_means

    def runs(*accs):  # seed 0 (the recorded run), then seeds 1 and 2
        return {"0": {"val_accuracy": accs[0]}}, {"1": {"val_accuracy": accs[1]}, "2": {"val_accuracy": accs[2]}}

    trained, seed_runs = {}, {}
    # 0.001 won on seed 0 by luck; 0.01 is the better rate on the mean (0.900 vs 0.890)
    for key, accs in {"0.001": (0.91, 0.88, 0.88), "0.01": (0.90, 0.90, 0.90), "0.1": (0.80, 0.81, 0.79),
                      "0.005": (0.898, 0.899, 0.897)}.items():
        t, s = runs(*accs)
        trained[key], seed_runs[key] = t["0"], s
    r = {"setup": "fake", "grid": ["0.001", "0.01", "0.1"], "trained": trained, "seed_runs": seed_runs}
    assert lr_seed_means.mean_accuracy(r, "0.01") == pytest.approx(0.90)
    rules = dict.fromkeys(lr_seed_means.RULES)
    rules.update({"mnistlab validated": 0.005, "mnistlab middle": 0.001})
    text = lr_seed_means.report({"fake": r}, ["fake"], {"fake": rules})
    assert "| mnistlab validated | 1/1 | 1/1 (100%) | 0.20 |" in text  # 0.2 below the best mean: a hit
    assert "| mnistlab middle | 1/1 | 0/1 (0%) | 1.00 |" in text       # seed 0's winner is 1 point below on the mean
    assert "| fastai minimum | 0/1 | 0/1 (0%) | - | - |" in text      # no suggestion measured


def test_the_setup_sets_partition_the_setups_and_names_say_what_each_is():
    from benchmarks.lr_quality import setups as lr_setups

    sets = [lr_setups.CHOOSE, lr_setups.REPORT, lr_setups.NEXT, lr_setups.FOURTH]
    names = [n for s in sets for n in s]
    assert sorted(names) == sorted(s.name for s in lr_setups.SETUPS) and len(set(names)) == len(names)
    assert all(len(s) == 10 for s in sets)
    for s in lr_setups.SETUPS:  # the tables show only names: each must say its data, optimizer and batch
        data, *_, optimizer, batch = s.name.split("-")
        assert (data, optimizer, int(batch)) == ({"mnist": "mnist", "fashion_mnist": "fashion"}[s.data],
                                                 s.optimizer, s.batch_size), s.name
        assert s.model in lr_setups.MODELS and s.backend in ("jax", "tensorflow")
        assert 1 <= s.epochs <= 10 and 16 <= s.batch_size <= 2048
    for held_out in (lr_setups.NEXT, lr_setups.FOURTH):  # each held-out set varies on its own
        spec = [lr_setups.BY_NAME[n] for n in held_out]
        assert len({s.optimizer for s in spec}) >= 8 and {s.data for s in spec} == {"mnist", "fashion_mnist"}
        assert min(s.batch_size for s in spec) <= 32 and max(s.batch_size for s in spec) >= 1024
