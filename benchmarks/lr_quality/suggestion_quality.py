"""Which learning rate should the LR range test suggest? Measured on 20 setups, chosen on half, reported on the other.

    python -m benchmarks.lr_quality.suggestion_quality record [--setups NAME ...]   # train, once per setup
    python -m benchmarks.lr_quality.suggestion_quality score                        # every rule, both halves

`record` runs, per setup of `benchmarks/lr_quality/setups.py` (each in its own process,
on its own backend), and stores in benchmarks/results/lr_quality/SETUP.json:

- the range test's curve: the loss of every batch at the library's default
  range (1e-6 to 10 in 100 steps), run on past divergence to a non-finite loss
  or the last step, so every rule can apply its own smoothing, skips and stop;
- the grid: the model trained from the same initial weights, with the same
  data order and dropout masks, at a constant rate for the setup's budget
  (1-10 epochs), at 8 rates half a decade apart (more when the best lies on
  an edge), each scored on 10,000 validation images held out of the training
  set (the test set is never used);
- probes: 100-step trainings from the same start at rates a quarter decade
  apart below the curve's blow-up, scored on a slice of the *training* data
  (what a validated suggestion may use: it never sees the validation images).

`score` applies every rule (mnistlab's and the anchors in
`benchmarks/lr_quality/anchors.py`) to the stored curves; a suggested rate that was
never trained is trained now (`--train`) and stored beside the grid, so each
rule is scored at exactly the rate it suggests. A rule's gap is the best grid
rate's validation accuracy minus the accuracy at its suggestion, in points; a
hit is a gap of at most 0.3; no suggestion (a curve the rule can't read)
counts as a miss, and the gaps are averaged over the setups with one. Tables for the half the default was chosen on and for the held-out half
go to stdout and benchmarks/results/lr_suggestion_quality.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from benchmarks.lr_quality import setups
from benchmarks.lr_quality.records import RESULTS, best_rate_key, machine, rate_key, result_path, run_setup_child

SEED = 0
N_VAL = 10000
PROBE_STEPS = (25, 50, 100)
# the shorter probes the validated search's length was chosen among (docs/lr-range-test.md, "Cost")
SHORT_PROBE_STEPS = (10, 16, 25, 33)


# ----------------------------------------------------------------- one setup (child process)


class Trainer:
    """One setup's data and model, and training from the same start at any rate."""

    def __init__(self, setup: setups.Setup, data_dir=None):
        import mnistlab

        mnistlab.configure()  # as the CLI: TensorFlow's options before it loads, JAX's cache
        import keras
        import numpy as np

        from mnistlab import data as data_lib
        self.setup, self.keras, self.np = setup, keras, np
        ds = data_lib.load(setup.data, data_dir=data_dir if setup.data == "mnist" else None)
        x_tr, y_tr, x_val, y_val = data_lib.split_validation(ds.x_train, ds.y_train, N_VAL / len(ds.x_train),
                                                             seed=SEED)
        self.x, self.y = x_tr[:setup.n_train].astype("float32"), y_tr[:setup.n_train].astype("int32")
        self.x_val, self.y_val = x_val.astype("float32"), y_val.astype("int32")
        keras.utils.set_random_seed(SEED)
        self.model = setups.MODELS[setup.model]()
        self.optimizer = setups.make_optimizer(setup.optimizer, 1e-3)
        self.model.compile(optimizer=self.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self.model(self.x[:2])
        self.optimizer.build(self.model.trainable_variables)
        self.initial = [(v, np.array(v.numpy(), copy=True)) for v in [*self.model.variables,
                                                                       *self.optimizer.variables]]

    def reset(self, lr: float, seed: int = SEED) -> None:
        for v, value in self.initial:
            v.assign(value)
        self.optimizer.learning_rate = lr
        self.keras.utils.set_random_seed(seed)  # same shuffling and dropout masks for every rate

    def train(self, lr: float, seed: int = SEED) -> dict:
        """The setup's budget at `lr` from the recorded start; `seed` draws the data order and
        dropout masks (the same initial weights whatever the seed)."""
        s = self.setup
        self.reset(lr, seed)
        started = time.perf_counter()
        self.model.fit(self.x, self.y, batch_size=s.batch_size, epochs=s.epochs, shuffle=True, verbose=0)
        loss, acc = self.model.evaluate(self.x_val, self.y_val, batch_size=1000, verbose=0)
        return {"val_accuracy": float(acc), "val_loss": float(loss) if math.isfinite(loss) else None,
                "seconds": round(time.perf_counter() - started, 2)}

    def range_test(self) -> dict:
        from mnistlab.lr_range.finder import lr_range_test

        self.reset(1e-3)
        # run on past the blow-up (each rule applies its own stop), to a non-finite loss or the end
        result = lr_range_test(self.model, self.x, self.y, batch_size=self.setup.batch_size, seed=SEED,
                               diverge_factor=1e12, verbose=0)
        return {"lr": result.lrs.tolist(), "loss": [float(v) if math.isfinite(v) else None for v in result.losses],
                "settings": result.settings, "stop_reason": result.stop_reason,
                "seconds": result.timings["total_seconds"]}

    def probe(self, lr: float, steps=PROBE_STEPS) -> dict:
        """`steps[-1]` steps at `lr` on the training data less a held-out slice, scored on that slice
        after each of `steps`."""
        from mnistlab.lr_range.batches import batch_stream
        from mnistlab.models.steps import BatchStepper

        np = self.np
        hold = min(2000, len(self.x) // 10)
        x_fit, y_fit, x_hold, y_hold = self.x[:-hold], self.y[:-hold], self.x[-hold:], self.y[-hold:]
        self.reset(lr)
        batches = batch_stream(x_fit, y_fit, self.setup.batch_size, SEED)
        out, done = {"val_loss": [], "val_accuracy": []}, 0
        for target in steps:
            with BatchStepper(self.model) as stepper:
                for _ in range(target - done):
                    stepper.step(next(batches), lr)
            done = target
            loss, acc = self.model.evaluate(x_hold, y_hold, batch_size=1000, verbose=0)
            out["val_loss"].append(float(loss) if np.isfinite(loss) else None)
            out["val_accuracy"].append(float(acc))
        return out


def blow_up_lr(curve) -> float:
    """The first rate whose raw loss is non-finite or 3x the first loss (else the last rate)."""
    first = curve["loss"][0]
    for lr, loss in zip(curve["lr"], curve["loss"]):
        if loss is None or loss > 3 * first:
            return lr
    return curve["lr"][-1]


def record(setup: setups.Setup, data_dir) -> dict:
    t = Trainer(setup, data_dir)
    out = {"setup": setup.name, "spec": setup.__dict__, "seed": SEED, "n_val": N_VAL,
           "backend": t.keras.backend.backend()}
    out["curve"] = t.range_test()
    rates = setups.grid(setup)
    grid = {rate_key(lr): t.train(lr) for lr in rates}
    for _ in range(2):  # extend past an edge holding the best rate
        best = max(grid, key=lambda k: grid[k]["val_accuracy"])
        if not setups.widen_at_edge(rates, [rate_key(lr) for lr in rates].index(best)):
            break
        grid.update({rate_key(lr): t.train(lr) for lr in rates if rate_key(lr) not in grid})
    out["grid"] = [rate_key(lr) for lr in rates]
    out["trained"] = grid
    top = blow_up_lr(out["curve"])
    lattice = [10 ** (k / 4) for k in range(-24, 5) if top / 10 ** 3.5 <= 10 ** (k / 4) <= top]
    out["probe_steps"] = list(PROBE_STEPS)
    out["probes"] = {rate_key(lr): t.probe(lr) for lr in lattice}
    return out


# ----------------------------------------------------------------- orchestration


def cmd_record(args) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.setups or [s.name for s in setups.SETUPS]:
        if result_path(name).exists() and not args.again:
            continue
        t0 = time.perf_counter()
        out = run_setup_child(name, ["--record"], args.data_dir)
        out["machine"] = machine()
        out["record_seconds"] = round(time.perf_counter() - t0, 1)
        result_path(name).write_text(json.dumps(out, indent=1))
        best = best_rate_key(out)
        print(f"{name}: {out['record_seconds']:.0f} s, best grid rate {best} "
              f"({100 * out['trained'][best]['val_accuracy']:.2f}%), {out['curve']['stop_reason']}", flush=True)
    return 0


def cmd_short_probes(args) -> int:
    """Probes read after `SHORT_PROBE_STEPS` at every rate `record` probed, into `r["short_probes"]`."""
    for name in args.setups or [s.name for s in setups.SETUPS]:
        path = result_path(name)
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        if "short_probes" in r:
            continue
        t0 = time.perf_counter()
        keys = sorted(r["probes"], key=float)
        probes = run_setup_child(name, ["--probe", *keys, "--probe-steps", *map(str, SHORT_PROBE_STEPS)],
                                 args.data_dir)
        r["short_probes"] = {"steps": list(SHORT_PROBE_STEPS), "probes": probes}
        path.write_text(json.dumps(r, indent=1))
        print(f"{name}: {len(keys)} short probes in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def child(args) -> int:
    setup = setups.BY_NAME[args.name]
    if args.record:
        out = record(setup, args.data_dir)
    else:
        t = Trainer(setup, args.data_dir)
        if args.probe:
            steps = tuple(args.probe_steps or PROBE_STEPS)
            out = {k: t.probe(float(k), steps) for k in args.probe}
        elif args.seeds:
            out = {k: {str(seed): t.train(float(k), seed) for seed in args.seeds} for k in args.train}
        else:
            out = {k: t.train(float(k)) for k in args.train}
    print("RESULT " + json.dumps(out))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="train the grid and record curves (skips setups already recorded)")
    rec.add_argument("--setups", nargs="+", choices=[s.name for s in setups.SETUPS])
    rec.add_argument("--again", action="store_true", help="record setups that have results again")
    sc = sub.add_parser("score", help="score every rule on the recorded setups")
    sc.add_argument("--no-train", action="store_true", help="score only rates already trained")
    sp = sub.add_parser("short-probes", help=f"record probes read after {' '.join(map(str, SHORT_PROBE_STEPS))} "
                        "steps at every recorded probe rate (skips setups that have them)")
    sp.add_argument("--setups", nargs="+", choices=[s.name for s in setups.SETUPS])
    ch = sub.add_parser("child")
    ch.add_argument("name")
    ch.add_argument("--record", action="store_true")
    ch.add_argument("--train", nargs="*")
    ch.add_argument("--probe", nargs="*", help="record 100-step probes at these rates")
    ch.add_argument("--probe-steps", nargs="*", type=int, help=f"read the probes after these steps "
                    f"(default {' '.join(map(str, PROBE_STEPS))})")
    ch.add_argument("--seeds", nargs="*", type=int, help="train each rate once per seed (data order, dropout)")
    for q in (rec, sc, sp, ch):
        q.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"),
                       help="folder of the MNIST IDX files (default: $MNISTLAB_DATA_DIR)")
    args = p.parse_args(argv)
    if args.cmd == "record":
        return cmd_record(args)
    if args.cmd == "child":
        return child(args)
    if args.cmd == "short-probes":
        return cmd_short_probes(args)
    from benchmarks.lr_quality.scoring import cmd_score  # scoring imports records, never this module

    return cmd_score(args)


if __name__ == "__main__":
    sys.exit(main())
