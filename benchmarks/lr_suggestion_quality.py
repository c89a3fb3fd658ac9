"""Which LR range-test rule suggests the best learning rate? Measured, not guessed.

For each setup (model + optimizer + batch size) this trains the same model
from the same initial weights, with the same data order and dropout masks, at
8 log-spaced learning rates and at each rule's suggestion, for a short run on
a subset of the MNIST training set, and measures the validation accuracy on
examples held out of the training set (never the test set). A rule's gap is
the best grid rate's accuracy minus the accuracy at the rule's suggestion, in
percentage points (negative: better than every grid rate). A rule that
suggests nothing scores as failed for that setup.

Before each validation, BatchNorm's moving statistics are recomputed from
2000 training examples ("precise BN"): these runs are far shorter than the
few hundred steps the moving averages need, and stale statistics would
penalise high rates for a reason that has nothing to do with the rate
(`--bn-examples 0` turns this off).

    python benchmarks/lr_suggestion_quality.py --data-dir /path/to/mnist
    python benchmarks/lr_suggestion_quality.py --quick --data-dir DIR   # a smoke test

Setups: MLP+SGD and MLP+Adam on JAX, CNN+Adam on TensorFlow (JAX's CPU
convolutions are slow), each at batch sizes 32 and 256; models are
`build_mlp()` / `build_cnn()` with their defaults. Each setup runs in its own
process (`--child`) so each can use its backend. Prints Markdown tables; the
raw results (curves, suggestions, accuracies) go to --json-out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
SETUPS = {  # name -> (model, optimizer, backend)
    "mlp-sgd": ("mlp", "sgd", "jax"),
    "mlp-adam": ("mlp", "adam", "jax"),
    "cnn-adam": ("cnn", "adam", "tensorflow"),
}
# 8 log-spaced rates per optimizer, half a decade apart, bracketing the usual optimum.
GRIDS = {"sgd": [10 ** (-3 + 0.5 * i) for i in range(8)],
         "adam": [10 ** (-4.5 + 0.5 * i) for i in range(8)]}


# ----------------------------------------------------------------- one setup (child process)


def run_setup(setup, batch_size, args):
    """Range test plus short trainings for one setup; returns a JSON-ready dict."""
    import mnistlab

    mnistlab.configure()  # as the CLI: TensorFlow's options before it loads, JAX's cache
    import keras
    import numpy as np

    from mnistlab import data as data_lib
    from mnistlab.lr_finder import RULES, lr_range_test
    from mnistlab.models import build_cnn, build_mlp

    model_name, opt_name, _ = SETUPS[setup]
    n_train = args.cnn_train if model_name == "cnn" else args.mlp_train
    epochs = args.cnn_epochs if model_name == "cnn" else args.mlp_epochs
    ds = data_lib.load("mnist", data_dir=args.data_dir)
    x_tr, y_tr, x_val, y_val = data_lib.split_validation(ds.x_train, ds.y_train, 0.1, seed=args.seed)
    x_tr, y_tr = x_tr[:n_train].astype("float32"), y_tr[:n_train].astype("int32")
    n_val = args.cnn_val if model_name == "cnn" else args.val
    x_val, y_val = x_val[:n_val].astype("float32"), y_val[:n_val].astype("int32")

    keras.utils.set_random_seed(args.seed)
    model = build_cnn() if model_name == "cnn" else build_mlp()
    optimizer = keras.optimizers.SGD(1e-3) if opt_name == "sgd" else keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    optimizer.build(model.trainable_variables)
    # The initial state every training starts from (the range test restores it too).
    initial = [(v, np.array(v.numpy(), copy=True)) for v in [*model.variables, *optimizer.variables]]

    def reset():
        for v, value in initial:
            v.assign(value)

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.inputs, [bn.input for bn in bns]) if bns else None

    def recalibrate_bn():
        """Set BatchNorm's moving statistics to the population statistics of the trained net.

        Its moving averages (momentum 0.99) need a few hundred steps to forget
        their initial values, far more than these short runs take, and stale
        statistics hurt the validation accuracy of fast-moving (high-rate) runs
        most. So, as in "precise BN" (Wu & Johnson 2021), we measure each
        BatchNorm's input over training examples, in training mode as during fit.
        """
        if probe is None:
            return
        sums, squares, rows = [0.0] * len(bns), [0.0] * len(bns), [0] * len(bns)
        for start in range(0, min(len(x_tr), args.bn_examples), 500):
            for k, h in enumerate(probe(x_tr[start:start + 500], training=True)):
                h = np.asarray(h, dtype="float64").reshape(-1, h.shape[-1])
                sums[k] = sums[k] + h.sum(axis=0)
                squares[k] = squares[k] + (h**2).sum(axis=0)
                rows[k] += h.shape[0]
        for k, bn in enumerate(bns):
            mean = sums[k] / rows[k]
            bn.moving_mean.assign(mean.astype("float32"))
            bn.moving_variance.assign(np.maximum(squares[k] / rows[k] - mean**2, 0).astype("float32"))

    started = time.perf_counter()
    result = lr_range_test(model, x_tr, y_tr, batch_size=batch_size, seed=args.seed,
                           steps=args.steps, verbose=0)
    range_seconds = time.perf_counter() - started

    accuracy = {}

    def train_at(lr):
        key = float(f"{lr:.6g}")
        if key not in accuracy:
            reset()
            optimizer.learning_rate = key
            keras.utils.set_random_seed(args.seed)  # same shuffling and dropout for every rate
            model.fit(x_tr, y_tr, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
            if args.bn_examples:
                recalibrate_bn()
            loss, acc = model.evaluate(x_val, y_val, batch_size=1000, verbose=0)
            accuracy[key] = float(acc) if np.isfinite(loss) else 0.0
        return accuracy[key]

    grid = GRIDS[opt_name][:: args.grid_stride]
    train_started = time.perf_counter()
    grid_acc = {lr: train_at(lr) for lr in grid}
    rule_acc = {rule: (None if lr is None else train_at(lr)) for rule, lr in result.suggestions.items()}
    return {
        "setup": setup, "batch_size": batch_size, "backend": keras.backend.backend(),
        "n_train": len(x_tr), "n_val": len(x_val), "epochs": epochs, "seed": args.seed,
        "grid": {f"{lr:.6g}": acc for lr, acc in grid_acc.items()},
        "suggestions": result.suggestions, "reasons": result.reasons,
        "rule_accuracy": rule_acc, "stop_reason": result.stop_reason,
        "curve": result.to_dict()["curve"], "rules": list(RULES),
        "range_test_seconds": round(range_seconds, 2),
        "training_seconds": round(time.perf_counter() - train_started, 1),
    }


# ----------------------------------------------------------------- orchestration and tables


def summarize(results, rules):
    """Markdown tables: per rule the gap to the best grid rate (mean/max) and failures."""
    lines = ["| rule | mean gap (pp) | max gap (pp) | found | lr / best grid lr (geometric mean) |",
             "|---|---:|---:|---:|---:|"]
    per_rule = {}
    for rule in rules:
        gaps, ratios, found = [], [], 0
        for r in results:
            best_lr, best = max(r["grid"].items(), key=lambda kv: kv[1])
            acc = r["rule_accuracy"].get(rule)
            if acc is None:
                continue
            found += 1
            gaps.append(100 * (best - acc))
            ratios.append(r["suggestions"][rule] / float(best_lr))
        per_rule[rule] = (gaps, found)
        if gaps:
            import math

            geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
            lines.append(f"| {rule} | {sum(gaps) / len(gaps):.2f} | {max(gaps):.2f} | "
                         f"{found}/{len(results)} | {geo:.2g} |")
        else:
            lines.append(f"| {rule} | - | - | 0/{len(results)} | - |")
    detail = ["| setup | batch | best grid lr (acc) | " + " | ".join(rules) + " |",
              "|---|---:|---|" + "---|" * len(rules)]
    for r in results:
        best_lr, best = max(r["grid"].items(), key=lambda kv: kv[1])
        cells = []
        for rule in rules:
            lr, acc = r["suggestions"].get(rule), r["rule_accuracy"].get(rule)
            cells.append("none" if lr is None else f"{lr:.2g} ({100 * acc:.1f})")
        detail.append(f"| {r['setup']} | {r['batch_size']} | {float(best_lr):.2g} ({100 * best:.1f}) | "
                      + " | ".join(cells) + " |")
    return "\n".join(lines), "\n".join(detail), per_rule


def choose_default(per_rule, n_setups):
    """The rule found in every setup with the lowest mean gap (then the lowest max gap)."""
    complete = {r: g for r, (g, found) in per_rule.items() if found == n_setups and g}
    if not complete:
        return None
    return min(complete, key=lambda r: (sum(complete[r]) / len(complete[r]), max(complete[r])))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"),
                   help="folder of the MNIST IDX files (default: $MNISTLAB_DATA_DIR, else mnistlab's search)")
    p.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    p.add_argument("--mlp-train", type=int, default=12000, help="training examples for MLP setups")
    p.add_argument("--mlp-epochs", type=int, default=2)
    p.add_argument("--cnn-train", type=int, default=3000, help="training examples for CNN setups")
    p.add_argument("--cnn-epochs", type=int, default=2)
    p.add_argument("--cnn-val", type=int, default=1500, help="validation examples for CNN setups")
    p.add_argument("--val", type=int, default=5000, help="validation examples (held out of the training set)")
    p.add_argument("--steps", type=int, default=None, help="range-test steps (default: the library's)")
    p.add_argument("--bn-examples", type=int, default=2000,
                   help="training examples to recompute BatchNorm statistics on after each run (0: off)")
    p.add_argument("--grid-stride", type=int, default=1, help="use every n-th grid rate (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("tensorflow", "jax"), default=None,
                   help="run every setup on this backend (default: jax for MLP, tensorflow for CNN)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (a smoke test): 600 train, 200 val, 1 epoch, 30 steps, 4 grid rates")
    p.add_argument("--json-out", type=Path, default=OUT / "lr_suggestion_quality.json")
    p.add_argument("--child", nargs=2, metavar=("SETUP", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.mlp_train = args.cnn_train = 600
        args.val = args.cnn_val = 200
        args.mlp_epochs, args.cnn_epochs = 200, 1, 1
        args.steps = args.steps or 30
        args.grid_stride = 2
    if args.child:
        result = run_setup(args.child[0], int(args.child[1]), args)
        print("RESULT " + json.dumps(result))
        return 0

    own = [a for a in (argv if argv is not None else sys.argv[1:])]
    results, started = [], time.perf_counter()
    for setup in args.setups:
        backend = args.backend or SETUPS[setup][2]
        for bs in args.batch_sizes:
            cmd = [sys.executable, __file__, *own, "--child", setup, str(bs)]
            env = {**os.environ, "KERAS_BACKEND": backend}
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((s for s in proc.stdout.splitlines() if s.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"setup {setup} batch {bs} failed ({proc.returncode})")
            r = json.loads(line[len("RESULT "):])
            results.append(r)
            best_lr, best = max(r["grid"].items(), key=lambda kv: kv[1])
            print(f"{setup} bs={bs} [{backend}] {time.perf_counter() - t0:.0f} s: best grid {best_lr} "
                  f"({100 * best:.2f}%), suggestions "
                  + ", ".join(f"{k}={'none' if v is None else f'{v:.2g}'}" for k, v in r["suggestions"].items()),
                  flush=True)
    rules = results[0]["rules"]
    summary, detail, per_rule = summarize(results, rules)
    default = choose_default(per_rule, len(results))
    import mnistlab

    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}"
    header = (f"Command: `python benchmarks/lr_suggestion_quality.py {shlex.join(own)}`\n"
              f"Machine: {machine}; mnistlab {mnistlab.__version__}; "
              f"{time.perf_counter() - started:.0f} s in all\n")
    print()
    print(header)
    print(summary)
    print()
    print(detail)
    print()
    print(f"Best rule (found in every setup, lowest mean gap): {default}")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps({"command": own, "machine": machine, "results": results,
                                         "default": default}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
