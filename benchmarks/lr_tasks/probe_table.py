"""The probe table: held-out losses of short constant-rate trainings at every lattice rate, at several lengths.

The library's validated suggestion (`mnistlab.lr_range.validation`) trains a few
probes from the model's starting state and keeps the rate whose held-out loss
is lowest. How long a probe must be, how many there must be and where they
go decide both the suggestion's quality and its cost, so they are chosen by
measurement: this records, once per setup, what every choice would have seen.

For each quarter-decade rate `10 ** (k / 4)` from `LOWEST` up to the highest
rate any search may probe (the last rate of the curve as the library reads it,
up to its own stop; or the rate at which the raw curve first reached 3x its
first loss, if higher), one probe exactly as `lr_range_test` runs it (the same
starting state, held-out slice, batch order and stepper), its held-out loss
read after each of `STEPS` steps (a probe of 25 steps is the first 25 steps
of the probe of 100). Also the untrained model's held-out loss and the warm
time of a step and of an evaluation, from which the cost of any search is
estimated (`benchmarks/lr_tasks/search_choice.py`).

`Replay` runs the library's own search (`mnistlab.lr_range.validation.validated`)
on such a table, with any of its settings: the rate `lr_range_test` would
suggest, without running it.
"""

from __future__ import annotations

import math
import time

import numpy as np

from benchmarks.lr_quality.records import rate_key
from benchmarks.lr_tasks import setups

STEPS = (10, 16, 25, 33, 50, 100)  # the probe lengths read off each probe
LOWEST = 1e-5                     # the lowest rate probed


def top_rate(curve: dict) -> float:
    """The highest rate a search may probe: the last rate of the curve up to the library's own
    stop, or the first rate whose raw loss is non-finite or 3x the first loss, if higher."""
    from benchmarks.lr_quality.scoring import library_view
    from benchmarks.lr_quality.suggestion_quality import blow_up_lr

    return max(blow_up_lr(curve), float(library_view({"curve": curve})[0][-1]))


def record(trainer, curve: dict) -> dict:
    """The probe table of `trainer`'s setup, as `lr_range_test` would run its probes (seed 0)."""
    from mnistlab.lr_range import validation as lr_validation
    from mnistlab.lr_range.batches import batch_stream
    from mnistlab.lr_range.state import preserved_state
    from mnistlab.models.steps import BatchStepper

    t, s = trainer, trainer.setup
    model = t.main.model
    t.main.reset(setups.SEEDS[0], 1e-3)
    x_fit, y_fit, x_val, y_val, why = lr_validation.held_out(t.x, t.y, None)
    if x_val is None:
        raise SystemExit(f"{s.name}: no held-out slice ({why})")
    top = top_rate(curve)
    ks = [k for k in range(round(4 * math.log10(LOWEST)), 5) if 10 ** (k / 4) <= top * 1.0001]
    out = {"steps": list(STEPS), "losses": {}, "seconds_per_step": [], "seconds_per_eval": []}
    with preserved_state(model, model.optimizer, t.x[:s.batch_size]) as state:
        out["start_loss"] = _finite(lr_validation.evaluate_loss(model, x_val, y_val))
        for k in ks:
            lr = 10 ** (k / 4)
            state.restore()
            batches = batch_stream(x_fit, y_fit, s.batch_size, 0)
            losses, done = [], 0
            for target in STEPS:
                started = time.perf_counter()
                with BatchStepper(model) as stepper:
                    for _ in range(target - done):
                        stepper.step(next(batches), lr)
                stepped = time.perf_counter()
                losses.append(_finite(lr_validation.evaluate_loss(model, x_val, y_val)))
                out["seconds_per_step"].append((stepped - started) / (target - done))
                out["seconds_per_eval"].append(time.perf_counter() - stepped)
                done = target
            out["losses"][rate_key(lr)] = losses
    # warm figures: the median over every segment after the first probe (which compiled the steps)
    n = len(STEPS)
    out["seconds_per_step"] = float(np.median(out["seconds_per_step"][n:] or out["seconds_per_step"]))
    out["seconds_per_eval"] = float(np.median(out["seconds_per_eval"][n:] or out["seconds_per_eval"]))
    return out


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


class Replay:
    """The library's validated search on recorded probes, as `lr_range_test` runs it on the same curve.

    Args:
        lrs, losses, stopped: the curve as the library recorded it (up to its own stop) and whether
            it stopped on divergence (`benchmarks.lr_quality.scoring.library_view`).
        tables: {probe steps: {lattice index k: held-out loss, or None where the probe blew up}}.
        start_loss: the untrained model's held-out loss (math.inf when not recorded: the flat-curve
            check "did the best probe learn at all?" then passes).
    """

    def __init__(self, lrs, losses, stopped: bool, tables: dict, start_loss: float = math.inf):
        from mnistlab.lr_range import rules as lr_rules

        self.lrs, self.stopped, self.tables, self.start_loss = lrs, stopped, tables, start_loss
        self.found, self.reasons, self.info = lr_rules.read_curve(lrs, losses, stopped_early=stopped)

    @classmethod
    def of(cls, r: dict):
        """The replay of an lr_tasks record `r` (None without a probe table)."""
        from benchmarks.lr_quality.scoring import library_view

        table = r.get("probe_table")
        if table is None:
            return None
        tables = {n: {round(4 * math.log10(float(k))): v[i] for k, v in table["losses"].items()}
                  for i, n in enumerate(table["steps"])}
        start = table["start_loss"] if table["start_loss"] is not None else math.inf
        return cls(*library_view(r), tables, start)

    def loss(self, lr, steps):
        """The recorded held-out loss of the probe at `lr` (a lattice rate) after `steps` steps; None
        where it blew up."""
        return self.tables[steps].get(round(4 * math.log10(lr)))

    def run(self, **options):
        """`(rate, steps)`: the suggestion with the search's `options` (`validation.FAST`, for example;
        none: the default) and the steps of every probe it ran, in order."""
        from mnistlab.lr_range import validation as lr_validation

        steps_run = []

        def loss_at(lr, steps):
            steps_run.append(steps)
            return self.loss(lr, steps)

        rate = lr_validation.validated(self.lrs, self.found["min"], self.info, self.stopped, loss_at,
                                       lambda: self.start_loss, self.reasons.get("min", ""), **options)[0]
        return rate, steps_run
