"""The lr_tasks benchmark (issue 29): its setups, split, data, models and hit rule.

Fast: no training beyond a few steps (the fine-tuning models pre-train for one
epoch here). The benchmark itself runs as `python -m benchmarks.lr_tasks.benchmark`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` is a package at the repository root

from benchmarks.lr_tasks import data as task_data  # noqa: E402
from benchmarks.lr_tasks import models, scoring, setups  # noqa: E402
from benchmarks.lr_tasks.store import RESULTS  # noqa: E402
from benchmarks.lr_tasks.trainer import MAX_EXTEND, Trainer, dataclasses_dict  # noqa: E402

BY_FAMILY = {f: [s for s in setups.SETUPS if s.family == f] for f in setups.FAMILIES}


SETS = (setups.CHOOSE, setups.HELD_OUT, setups.FRESH, setups.FRESH2, setups.FRESH3)


def test_the_setups_split_into_five_sets_each_holding_every_family_and_backend():
    names = [s.name for s in setups.SETUPS]
    assert len(names) >= 16 and len(set(names)) == len(names)
    assert sum(len(half) for half in SETS) == len(names)  # so no setup is in two sets
    assert sorted(n for half in SETS for n in half) == sorted(names)
    for half in SETS:
        in_half = [setups.BY_NAME[n] for n in half]
        assert {s.family for s in in_half} == set(setups.FAMILIES), half
        assert {s.backend for s in in_half} == set(setups.BACKENDS), half
    backends = [s.backend for s in setups.SETUPS]
    assert backends.count("tensorflow") >= 3 and backends.count("torch") >= 3
    assert max(setups.BACKENDS, key=backends.count) == "jax"
    assert "sine-tanh-adam-64" in setups.CHOOSE  # the issue's task: the library is changed with it in view


def test_the_setups_cover_what_issue_29_asks_for():
    s = setups.SETUPS
    assert {x.loss for x in s if x.regression} == {"mse", "mae", "huber"}
    tabular = BY_FAMILY["tabular"]
    assert {x.loss for x in tabular} == {"binary_crossentropy", "sparse_categorical_crossentropy"}
    seq_models = {x.model for x in BY_FAMILY["sequence"]}
    assert {"gru_classifier", "lstm_classifier", "conv1d_regressor", "transformer_encoder"} <= seq_models
    traits = {t for x in s for t in x.traits}
    assert {"batchnorm", "layernorm", "dropout", "weight decay", "gradient clipping", "frozen", "tiny"} <= traits
    assert all(x.weight_decay for x in s if "weight decay" in x.traits)
    assert all(x.clipnorm for x in s if "gradient clipping" in x.traits)
    assert min(x.batch_size for x in s) == 8 and max(x.batch_size for x in s) == 1024
    sine = setups.BY_NAME["sine-tanh-adam-64"]
    assert (sine.loss, sine.optimizer, sine.batch_size, sine.model) == ("mse", "adam", 64, "sine_mlp")
    assert len(task_data.sine()[0]) == 4500


def test_the_data_is_deterministic_and_tiny_where_it_says_so():
    for s in setups.SETUPS:
        x, y, x_val, y_val = task_data.DATASETS[s.data]()
        again = task_data.DATASETS[s.data]()
        assert all(np.array_equal(a, b) for a, b in zip((x, y, x_val, y_val), again)), s.name
        assert len(x) == len(y) and len(x_val) == len(y_val) > 0, s.name
        assert ("tiny" in s.traits) == (len(x) <= 500), (s.name, len(x))
        if not s.regression:
            assert y.dtype in (np.int32, np.float32) and set(np.unique(y_val)) <= set(np.unique(y)), s.name


@pytest.fixture
def quick_pretraining(monkeypatch):
    """One epoch of pre-training, in a cache of its own (the builders' shapes are what is tested)."""
    monkeypatch.setattr(models, "PRETRAINED", {k: dataclasses.replace(v, epochs=1)
                                               for k, v in models.PRETRAINED.items()})
    monkeypatch.setattr(models, "_PRETRAINED", {})


def _built_here(setup) -> bool:
    """Each builder is checked in one pass of CI, its own backend's; PyTorch setups in the JAX pass (the
    torch slice runs the LR range test's tests, not these), which keeps each pass's share of CI small."""
    backend = keras.backend.backend()
    return setup.backend == backend or (setup.backend == "torch" and backend in ("jax", "torch"))


def _one_per_builder_and_data():
    """The setups built in this pass, one per (data, model, loss): the others add nothing to this test."""
    seen = {}
    for s in setups.SETUPS:
        if _built_here(s):
            seen.setdefault((s.data, s.model, s.loss), s.name)
    return list(seen.values())


@pytest.mark.parametrize("name", _one_per_builder_and_data())
def test_each_builder_builds_a_model_that_fits_its_data(name, quick_pretraining):
    s = setups.BY_NAME[name]
    x, y, x_val, y_val = task_data.DATASETS[s.data]()
    model = models.build(s.model, x, y, seed=0)
    model.compile(optimizer=setups.make_optimizer(s, 1e-3), loss=s.loss)
    out = keras.ops.convert_to_numpy(model(x_val[:4]))
    if s.regression or s.loss == "binary_crossentropy":
        assert out.shape == (4, 1) and y.shape[1:] == (1,), (out.shape, y.shape)
    else:
        assert out.shape == (4, int(max(y.max(), y_val.max())) + 1), out.shape
        assert np.allclose(out.sum(axis=1), 1, atol=1e-4)  # softmax
    loss = float(np.asarray(model.train_on_batch(x[:8], y[:8])))
    assert math.isfinite(loss)
    if "frozen" in s.traits:
        assert 0 < len(model.trainable_weights) < len(model.weights)
        assert s.model in models.PRETRAINED


def test_the_optimizer_carries_the_setups_clipping_and_weight_decay():
    clip = setups.BY_NAME["seq-max-lstm-clip-rmsprop-32"]
    opt = setups.make_optimizer(clip, 0.01)
    assert opt.clipnorm == 1.0 and float(opt.learning_rate) == pytest.approx(0.01)
    wd = setups.BY_NAME["linear50-mae-adamw-1024"]
    assert setups.make_optimizer(wd, 1e-3).weight_decay == 0.01
    assert setups.make_optimizer(setups.BY_NAME["sine-tanh-adam-64"], 1e-3).clipnorm is None


def test_a_seed_fixes_a_training_and_another_seed_changes_its_start():
    setup = dataclasses.replace(setups.BY_NAME["wine-sgd-8"], epochs=1)  # 16 steps
    t = Trainer(setup)
    first, again = t.main.train(0, 0.05), t.main.train(0, 0.05)
    assert first["score"] == again["score"]
    assert not all(np.array_equal(a, b) for a, b in zip(t.initial(0), t.initial(1)))
    # a model built from seed 0 starts where the session resets seed 0 to
    t.main.reset(0, 0.05)
    fresh = models.build(setup.model, t.x, t.y, 0)
    assert all(np.array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))
               for a, b in zip(t.main.model.trainable_variables, fresh.trainable_variables))


# ------------------------------------------------------------ the hit rule


def test_classification_hit_within_max_of_03_points_and_one_seed_sd():
    assert scoring.is_hit(False, 90.0, 0.1, 89.7)        # 0.3 points below: a hit
    assert not scoring.is_hit(False, 90.0, 0.1, 89.69)
    assert scoring.is_hit(False, 90.0, 1.0, 89.0)        # a noisy best rate: one SD is the tolerance
    assert not scoring.is_hit(False, 90.0, 1.0, 88.9)
    assert scoring.is_hit(False, 90.0, 0.1, 91.0)        # better than the best grid rate
    assert not scoring.is_hit(False, 90.0, 0.1, None)    # no suggestion (or not trained): a miss
    assert scoring.gap(False, 90.0, 88.5) == pytest.approx(1.5)


def test_regression_hit_within_10_percent_of_the_best_loss():
    assert scoring.is_hit(True, 0.10, 0.05, 0.11)
    assert not scoring.is_hit(True, 0.10, 0.05, 0.1101)
    assert scoring.is_hit(True, 0.10, 0.05, 0.05)        # lower loss than the best grid rate
    assert not scoring.is_hit(True, 0.10, 0.05, math.inf)  # diverged
    assert not scoring.is_hit(True, 0.10, 0.05, None)
    assert scoring.tolerance(True, 0.2, 5.0) == pytest.approx(0.02)  # the seed-SD plays no part


def _record(regression, grid_scores, extra=None, suggestion=None):
    runs = lambda scores: {str(s): {"score": v} for s, v in enumerate(scores)}  # noqa: E731
    trained = {k: runs(v) for k, v in {**grid_scores, **(extra or {})}.items()}
    lrs = [10 ** (-6 + 0.07 * i) for i in range(100)]
    return {"setup": "made-up", "seeds": [0, 1, 2], "spec": {"regression": regression, "family": "tabular"},
            "grid": list(grid_scores), "trained": trained, "library": {"suggestion": suggestion, "cost": 3.0},
            "curve": {"lr": lrs, "loss": [2.0 - 0.01 * i for i in range(100)]}}


def test_the_best_grid_rate_is_the_best_3_seed_mean_and_a_missing_suggestion_misses():
    r = _record(False, {"0.001": [80, 81, 82], "0.00316": [90, 83, 83], "0.01": [85, 86, 87]},
                extra={"0.005": [85.9, 85.5, 86.0]}, suggestion=0.005)
    key, mean, sd = scoring.best(r)
    assert (key, mean, sd) == ("0.01", 86.0, pytest.approx(1.0))  # not the single best run (90)
    out = scoring.outcomes(r, {"a": 0.005, "b": None, "c": 0.001, "d": 0.02})
    assert out["a"][3] and not out["b"][3] and not out["c"][3]
    assert out["d"][1] is None and not out["d"][3]  # a rate never trained: no value, a miss
    r["lr_free"] = {"prodigy": {"0": {"score": 86}, "1": {"score": 86}, "2": {"score": 86}},
                    "dadapt_adam": {"error": "TypeError: IndexedSlices"}}
    out = scoring.outcomes(r, {})
    assert out["lr-free: prodigy"][3] and not out["lr-free: dadapt_adam"][3]  # an optimizer that failed: a miss
    assert "lr-free: schedulefree_adamw" not in out  # not run yet
    reg = _record(True, {"0.001": [0.2, 0.2, 0.2], "0.01": [0.1, 0.1, None], "0.1": [0.15, 0.15, 0.15]})
    assert scoring.best(reg)[0] == "0.1"  # a seed that diverged rules its rate out


def test_the_report_counts_hits_per_family():
    hit = _record(False, {"0.001": [80, 81, 82], "0.01": [85, 86, 87]}, suggestion=0.01)
    miss = _record(True, {"0.001": [0.3, 0.3, 0.3], "0.01": [0.1, 0.1, 0.1]}, suggestion=0.001)
    miss["spec"]["family"] = "regression"
    results = {"a": hit, "b": miss}
    per = {n: scoring.outcomes(r, {scoring.DEFAULT: r["library"]["suggestion"], "never": None})
           for n, r in results.items()}
    rows = {line.split("|")[1].strip(): line for line in scoring.summary(results, ["a", "b"], per).splitlines()}
    assert "| 1/2 (50%) |" in rows[scoring.DEFAULT] and "| 0/1 (20.0) | 1/1 (0.0) |" in rows[scoring.DEFAULT]
    assert rows[scoring.DEFAULT].endswith("| 3.0x |")
    assert "| 0/2 (0%) |" in rows["never"] and "| 0/2 |" in rows["never"]  # no rate: a miss with no gap


def test_every_record_matches_its_setup_and_brackets_its_best_rate():
    """Records made before a setup changed must be recorded again (`record --again SETUP`); and the grid
    must hold its best 3-seed mean inside, unless it was extended past an edge as far as `record` goes."""
    records = sorted(RESULTS.glob("*.json")) if RESULTS.exists() else []
    if not records:
        pytest.skip("nothing recorded yet")
    for path in records:
        r = json.loads(path.read_text())
        setup = setups.BY_NAME.get(r["setup"])
        assert setup is not None, f"{path.name}: no such setup (renamed or removed?)"
        assert {k: v for k, v in r["spec"].items() if k != "regression"} == dataclasses_dict(setup), path.name
        key = scoring.best(r)[0]
        start = len(setups.grid(setup))
        extended = len(r["grid"]) - start
        assert key not in (r["grid"][0], r["grid"][-1]) or extended == MAX_EXTEND, (path.name, key, r["grid"])
        assert all(all(str(s) in r["trained"][k] for s in setups.SEEDS) for k in r["grid"]), path.name


def test_search_choice_reads_a_rate_between_grid_rates_linearly_in_log_rate():
    from benchmarks.lr_tasks.search_choice import interpolated

    grid = {0.001: 90.0, 0.01: 96.0, 0.1: float("-inf")}
    assert interpolated(grid, 0.01) == 96.0
    assert interpolated(grid, 10 ** -2.5) == pytest.approx(93.0)
    assert interpolated(grid, 1e-4) == 90.0  # below the grid: its lowest rate's score
    assert interpolated(grid, 10 ** -1.6) == 96.0  # next to a diverged rate: the nearer finite one
    assert interpolated(grid, 10 ** -1.2) == float("-inf")


def _replayable_records():
    """The records with a probe table whose library run is reproducible: not PyTorch, where an unseeded
    Dropout draws its masks from torch's global generator, whose state differs from process to process."""
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))] if RESULTS.exists() else []
    # a flat 100-step test the library ran again with 400 steps (`finder.LONGER_STEPS`): its probes and
    # suggestion come from that longer curve, which the probe table (below the 100-step curve) does not hold
    records = [r for r in records if "probe_table" in r and r["backend"] != "torch"
               and not r["library"].get("flat_at_steps")]
    if not records:
        pytest.skip("no probe table recorded yet")
    return records


def test_the_probe_tables_hold_the_probes_the_library_ran():
    """`probe_table.record` mirrors `finder._probe` (it reads each probe at six lengths): the losses it
    recorded at the library's probe length are the ones the library's own run saw (to float32's last
    digits: one record's held-out loss was summed over chunks in another order)."""
    for r in _replayable_records():
        lib, table = r["library"], r["probe_table"]
        at = table["steps"].index(lib["probe_steps"])
        for key, loss in lib["probes"].items():
            assert table["losses"][key][at] == pytest.approx(loss, rel=1e-6), (r["setup"], key)


def test_the_replay_suggests_what_the_library_suggested():
    """`probe_table.Replay` runs `validation.validated` on the recorded probes: the same rate as the
    library's run, and on a flat curve the 100-step probes whatever the options say."""
    from benchmarks.lr_tasks.probe_table import Replay
    from mnistlab.lr_range.validation import FAST, FLAT_PROBE_STEPS

    for r in _replayable_records():
        rate, steps = Replay.of(r).run()
        assert rate == pytest.approx(r["library"]["suggestion"], rel=1e-9), r["setup"]
        assert len(steps) == len(r["library"]["probes"]), r["setup"]
        fast_rate, fast_steps = Replay.of(r).run(**FAST)
        assert set(fast_steps) <= {FAST["steps"], FLAT_PROBE_STEPS}, r["setup"]


def test_a_setting_scored_by_training_agrees_with_the_report_and_waits_for_untrained_rates():
    """`search_choice --trained` scores a setting at the rate the library's search suggests, the way the
    report scores the library's own run; a rate not trained with every seed is no score yet, not a miss."""
    from benchmarks.lr_quality.records import rate_key
    from benchmarks.lr_tasks.search_choice import DEFAULT, Trained

    for r in _replayable_records():
        rate, g, hit, cost = Trained(r, True).run(DEFAULT)
        lr, value, gap, reported_hit = scoring.outcomes(r, {"lib": r["library"]["suggestion"]})["lib"]
        assert rate == pytest.approx(lr, rel=1e-9) and hit == reported_hit, r["setup"]
        assert g * scoring.tolerance(r["spec"]["regression"], *scoring.best(r)[1:]) == pytest.approx(gap), r["setup"]
        assert cost > 1
    r = json.loads(json.dumps(_replayable_records()[0]))  # a copy
    rate = Trained(r, True).run(DEFAULT)[0]
    del r["trained"][rate_key(rate)][str(r["seeds"][-1])]
    assert Trained(r, True).run(DEFAULT)[1:3] == (None, False)


def test_a_race_continues_the_best_short_probes_and_keeps_the_best_of_them_longer():
    """`search_choice.raced`: the library's search on short probes, then the `keep` best continued (each
    step run once) and the best of those at the longer length divided by the shrink."""
    from benchmarks.lr_tasks.probe_table import Replay
    from benchmarks.lr_tasks.search_choice import raced

    lrs = list(10 ** np.linspace(-6, 1, 100))[:80]
    x = np.log10(lrs)
    losses = list(1.0 - 0.5 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1.5, (x + 1.5) ** 2 * 3, 0))
    # the curve's lowest point is at 0.015: probes at lattice rates k = -8, -9, -10, then one more below
    short = {-8: 0.7, -9: 0.6, -10: 0.5, -11: 0.55}   # after 16 steps: -10 best, then -11, -9, -8
    longer = {-8: 0.1, -9: 0.2, -10: 0.4, -11: 0.3}   # after 100 steps the order is reversed
    replay = Replay(lrs, losses, True, {16: short, 100: longer}, 2.0)
    for keep, k in ((1, -10), (2, -11), (3, -9)):
        rate, steps = raced(replay, keep=keep, then=100, steps=16, shrink=1.5)
        assert rate == pytest.approx(10 ** (k / 4) / 1.5), keep
        assert steps == [16] * 4 + [84] * keep
    assert raced(replay, keep=2, then=100, steps=16, shrink=2)[0] == pytest.approx(10 ** (-11 / 4) / 2)


def test_the_noise_floor_reads_the_jittered_and_reseeded_best_rate_by_the_reports_own_hit_rule():
    from benchmarks.lr_tasks import noise_floor

    r = _record(False, {"0.001": [80, 81, 82], "0.00316": [84, 85, 86], "0.01": [86, 87, 88], "0.0316": [70, 70, 70]})
    assert noise_floor.jittered_keys(r) == ["0.009", "0.011"]
    assert noise_floor.readings(r) is None  # nothing trained yet
    runs = lambda scores: {str(s): {"score": v} for s, v in enumerate(scores)}  # noqa: E731
    r["trained"].update({"0.009": runs([86, 86, 86.5]), "0.011": runs([85, 86, 86])})  # best mean 87, SD 1
    assert noise_floor.readings(r) is None  # the re-seeded runs are missing
    r["noise"] = {"rate": "0.01", "seeds": {"3": {"score": 87}, "4": {"score": 88}, "5": {"score": 85}}}
    read = noise_floor.readings(r)
    assert read["x0.9"] == (pytest.approx(86.1667, abs=1e-3), True)     # 0.83 below: within one SD
    assert read["x1.1"] == (pytest.approx(85.6667, abs=1e-3), False)    # 1.33 below
    assert read["re-seeded"] == (pytest.approx(86.6667, abs=1e-3), True)
    assert read["grid neighbour"] == (85.0, False)                     # 0.00316 (85) beats 0.0316 (70)
    r["noise"]["rate"] = "0.00316"  # measured for another best rate: not this one's
    assert noise_floor.readings(r) is None
    table = noise_floor.report({setups.FRESH2[0]: {**r, "noise": {**r["noise"], "rate": "0.01"}}})
    assert "| FRESH2 | 1 |" in table and "| FRESH | " not in table
    assert "| all | 1 | 1/1 (100%) | 0/1 (0%) | 0/1 (0%) | 1/1 (100%) | 1/1 (100%) | 0/1 (0%) | - | 1/1 (100%) " \
        "| 0/1 (0%) |" in table  # no probe table: no "every probe"; no suggestion: the default misses
    # every probe: the lowest 100-step held-out loss (0.015 at 10 ** (-7 / 4) = 0.0178) / SHRINK 1.5 = 0.0119
    r["noise"]["rate"] = "0.01"
    r["probe_table"] = {"steps": [10, 100], "losses": {"0.01": [0.5, 0.02], "0.0178": [0.6, 0.015],
                                                      "0.0316": [0.4, None]}}
    assert noise_floor.every_probe_key(r) == "0.0119"
    assert noise_floor.readings(r) is None  # the every-probe rate is not trained yet
    r["trained"]["0.0119"] = runs([86.5, 86.5, 87])
    r["library"]["suggestion"] = 0.009  # trained above (86.17): within one SD of 87
    read = noise_floor.readings(r)
    assert read["every probe"] == (pytest.approx(86.6667, abs=1e-3), True) and read["the default"][1]
    assert "| all | 1 | 1/1 (100%) | 0/1 (0%) | 0/1 (0%) | 1/1 (100%) | 1/1 (100%) | 0/1 (0%) | 1/1 (100%) " \
        "| 1/1 (100%) | 1/1 (100%) |" in noise_floor.report({setups.FRESH2[0]: r})
    # grid search: the best first-seed run is 0.00316's (90), whose 3-seed mean (82.3) misses
    r["trained"]["0.00316"] = runs([90, 77, 80])
    assert noise_floor.grid_search_key(r) == "0.00316"
    assert noise_floor.readings(r)["grid search"] == (pytest.approx(82.3333, abs=1e-3), False)
