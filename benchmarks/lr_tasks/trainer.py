"""One setup of the lr_tasks benchmark in its own process, on its own backend: range tests and trainings.

Run by `benchmarks.lr_tasks.store.run_task_child` (never by hand): the child
reads one job (JSON) from its arguments and prints `RESULT <json>`:

- `{"record": true}`: the raw range-test curve, the library's default test
  (suggestion and times) and the curve alone (time), then the grid (every rate
  with every seed of `setups.SEEDS`, extended past an edge holding the best);
- `{"train": [rate keys], "seeds": [...]}`: those rates, each seed;
- `{"lr_free": [names], "seeds": [...]}`: the LR-free optimizers of
  `benchmarks.lr_tasks.lr_free` at their defaults, the same budget;
- `{"library": true}`: the library's default `lr_range_test` again (`score --rerun-library`);
- `{"probe_table": curve}`: the probe table (`benchmarks.lr_tasks.probe_table`) below the curve's blow-up.

Every training starts from the initial weights its seed draws (the same for
every rate), shuffles with that seed, runs the setup's budget at a constant
rate and is scored on the validation split (`Trainer.train`).
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from benchmarks.lr_quality.records import rate_key
from benchmarks.lr_quality.setups import widen_at_edge
from benchmarks.lr_tasks import data as task_data
from benchmarks.lr_tasks import models, setups

MAX_EXTEND = 3  # rates added past an edge of the grid that holds the best 3-seed mean
TIMING_REPEATS = 3  # warm timed calls of the default and of the curve alone, alternating


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


class Session:
    """One compiled model and optimizer, trained from any seed's initial weights."""

    def __init__(self, trainer, optimizer, callbacks=()):
        import keras

        t = trainer
        self.trainer, self.keras, self.optimizer, self.callbacks = t, keras, optimizer, list(callbacks)
        self.model = models.build(t.setup.model, t.x, t.y, 0)
        self.model.compile(optimizer=optimizer, loss=t.setup.loss, metrics=[t.score_metric()])
        self.model(t.x[:2])
        optimizer.build(self.model.trainable_variables)
        self.optimizer_start = [np.array(v.numpy(), copy=True) for v in optimizer.variables]
        # One untimed step first: the first `fit` of a process draws from the seeded random state before
        # it shuffles, so without it the first training would see another data order than the same seed later.
        # Every training resets the weights and optimizer state afterwards.
        b = t.setup.batch_size
        self.model.fit(t.x[:b], t.y[:b], batch_size=b, epochs=1, verbose=0)

    def reset(self, seed: int, lr: float | None = None) -> None:
        for v, value in zip(self.model.variables, self.trainer.initial(seed)):
            v.assign(value)
        for v, value in zip(self.optimizer.variables, self.optimizer_start):
            v.assign(value)
        if lr is not None:
            self.optimizer.learning_rate = lr
        self.keras.utils.set_random_seed(seed)  # data order and dropout masks

    def train(self, seed: int, lr: float | None = None) -> dict:
        t = self.trainer
        self.reset(seed, lr)
        started = time.perf_counter()
        self.model.fit(t.x, t.y, batch_size=t.setup.batch_size, epochs=t.setup.epochs, shuffle=True, verbose=0,
                       callbacks=self.callbacks)
        logs = self.model.evaluate(t.x_val, t.y_val, batch_size=1000, verbose=0, return_dict=True,
                                   callbacks=self.callbacks)
        score = _finite(logs["score"])
        if score is not None and not t.setup.regression:
            score *= 100  # points of accuracy
        return {"score": score, "seconds": round(time.perf_counter() - started, 2)}


class Trainer:
    """A setup's data, its initial weights per seed, and the sessions that train it."""

    def __init__(self, setup: setups.Setup):
        import keras

        self.setup, self.keras = setup, keras
        self.x, self.y, self.x_val, self.y_val = task_data.DATASETS[setup.data]()
        self._initial = {}
        self.main = Session(self, setups.make_optimizer(setup, 1e-3))

    def score_metric(self):
        k = self.keras
        if self.setup.regression:
            return k.metrics.MeanMetricWrapper(k.losses.get(self.setup.loss), name="score")
        if self.setup.loss == "binary_crossentropy":
            return k.metrics.BinaryAccuracy(name="score")
        return k.metrics.SparseCategoricalAccuracy(name="score")

    def initial(self, seed: int) -> list:
        """The model's variables as `seed` draws them (built once per seed, then copied)."""
        if seed not in self._initial:
            fresh = models.build(self.setup.model, self.x, self.y, seed)
            fresh(self.x[:2])
            self._initial[seed] = [np.array(v.numpy(), copy=True) for v in fresh.variables]
        return self._initial[seed]

    # ------------------------------------------------------------ range tests

    def raw_curve(self) -> dict:
        """The range test at the library's default range, run on past divergence (each rule applies its own stop)."""
        from mnistlab.lr_range.finder import lr_range_test

        self.main.reset(setups.SEEDS[0], 1e-3)
        result = lr_range_test(self.main.model, self.x, self.y, batch_size=self.setup.batch_size, seed=0,
                               diverge_factor=1e12, validate=False, verbose=0)
        return {"lr": result.lrs.tolist(), "loss": [_finite(v) for v in result.losses],
                "settings": result.settings, "stop_reason": result.stop_reason,
                "seconds": result.timings["total_seconds"]}

    def library(self) -> dict:
        """`mnistlab.lr_range_test` as a user calls it (default rule, default held-out slice), and the curve
        alone (`validate=False`), each timed: the cost of the default over the curve.

        The first call of each in this process is timed as `first_call` (it compiles the steps); then
        each runs `TIMING_REPEATS` more times, alternating, and the cost is the ratio of the medians
        of those warm times, so that neither side is charged the compilation the other paid for.
        """
        import mnistlab

        def run(options):
            self.main.reset(setups.SEEDS[0], 1e-3)
            started = time.perf_counter()
            result = mnistlab.lr_range_test(self.main.model, self.x, self.y, batch_size=self.setup.batch_size,
                                            verbose=0, **options)
            return result, round(time.perf_counter() - started, 3)

        result, first = run({})
        curve, curve_first = run({"validate": False})
        walls = {"default": [], "curve_only": []}
        for _ in range(TIMING_REPEATS):
            walls["default"].append(run({})[1])
            walls["curve_only"].append(run({"validate": False})[1])
        seconds = {k: float(np.median(v)) for k, v in walls.items()}
        out = {
            "suggestion": result.suggestion, "default_rule": result.default_rule, "reason": result.reason,
            "suggestions": {k: v for k, v in result.suggestions.items()}, "reasons": dict(result.reasons),
            "stop_reason": result.stop_reason, "lr_range": list(result.lr_range) if result.lr_range else None,
            "probes": {rate_key(k): _finite(v) for k, v in result.probes.items()},
            "probe_steps": result.settings["probe_steps"], "flat_at_steps": result.settings.get("flat_at_steps"),
            "timings": result.timings, "seconds": seconds["default"], "steps_run": result.settings["steps_run"],
            "curve_only": {"seconds": seconds["curve_only"], "suggestion": curve.suggestion,
                           "stop_reason": curve.stop_reason},
            "walls": walls, "first_call": {"default": first, "curve_only": curve_first},
        }
        out["cost"] = round(out["seconds"] / out["curve_only"]["seconds"], 2)
        out["when"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        return out

    # ------------------------------------------------------------ trainings

    def train(self, keys, seeds) -> dict:
        return {k: {str(s): self.main.train(s, float(k)) for s in seeds} for k in keys}

    def lr_free(self, names, seeds) -> dict:
        from benchmarks.lr_tasks import lr_free

        out = {}
        for name in names:
            # schedule-free AdamW is scored at its averaged weights, as its authors evaluate it
            try:
                session = Session(self, lr_free.make(name), [lr_free.ScheduleFreeEval(swap_on_train_end=False)])
                out[name] = {str(s): session.train(s) for s in seeds}
            except Exception as failure:  # an optimizer that fails on the model is reported (and scored a miss)
                out[name] = {"error": f"{type(failure).__name__}: {failure}"[:300]}
        return out

    def record(self) -> dict:
        s = self.setup
        out = {"setup": s.name, "spec": {**dataclasses_dict(s), "regression": s.regression},
               "backend": self.keras.backend.backend(), "seeds": list(setups.SEEDS),
               "n_train": len(self.x), "n_val": len(self.x_val), "score": setups.score_name(s)}
        out["curve"] = self.raw_curve()
        out["library"] = self.library()
        rates = setups.grid(s)
        trained = self.train([rate_key(lr) for lr in rates], setups.SEEDS)
        for _ in range(MAX_EXTEND):
            keys = [rate_key(lr) for lr in rates]
            if not widen_at_edge(rates, keys.index(best_key(keys, trained, s.regression))):
                break
            trained.update(self.train([k for k in (rate_key(lr) for lr in rates) if k not in trained], setups.SEEDS))
        out["grid"] = [rate_key(lr) for lr in rates]
        out["trained"] = trained
        return out


def dataclasses_dict(setup) -> dict:
    import dataclasses

    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(setup).items()}


def mean_score(runs: dict, regression: bool) -> float:
    """The mean over seeds; a diverged regression run (no finite loss) makes the mean infinite."""
    values = [r["score"] for r in runs.values()]
    if any(v is None for v in values):
        return math.inf if regression else -math.inf
    return float(np.mean(values))


def best_key(keys, trained: dict, regression: bool) -> str:
    """The rate among `keys` with the best 3-seed mean: highest accuracy or lowest validation loss."""
    if regression:
        return min(keys, key=lambda k: mean_score(trained[k], True))
    return max(keys, key=lambda k: mean_score(trained[k], False))


def child_main(argv) -> None:
    setup = setups.BY_NAME[argv[0]]
    if setup.backend == "torch":
        import torch

        torch.set_num_threads(1)  # on the shared cores, more threads made each small step many times slower
    job = json.loads(argv[1])
    t = Trainer(setup)
    seeds = job.get("seeds", list(setups.SEEDS))
    if job.get("record"):
        out = t.record()
    elif job.get("library"):
        out = t.library()
    elif "probe_table" in job:
        from benchmarks.lr_tasks import probe_table

        out = probe_table.record(t, job["probe_table"])
    elif "lr_free" in job:
        out = t.lr_free(job["lr_free"], seeds)
    else:
        out = t.train(job["train"], seeds)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    child_main(sys.argv[1:])
