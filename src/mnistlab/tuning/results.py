"""A finished search's results: JSON, CSV, a figure, the test accuracy of the best trial.

    RUN/tune_results.json   {"trials": [...], "best": {...}, "finished": true, ...}
    RUN/tune_results.csv    one row per trial
    RUN/tune_hyperparameters.png   validation accuracy against each searched value

Each trial: `trial_id`, `status` (Keras Tuner's), `worker` (its tuner id),
`hyperparameters`, `val_accuracy` (its best epoch's), `epochs`, `seconds`.
`best`: the completed trial with the highest validation accuracy, its
`test_accuracy` (the only time the search touches the test set) and `command`,
the `mnistlab train` line that trains it again.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

from mnistlab import runs
from mnistlab.errors import MnistlabError
from mnistlab.tuning import space as space_lib
from mnistlab.tuning.worker import TRIALS

RESULTS = "tune_results.json"
CSV = "tune_results.csv"
FIGURE = "tune_hyperparameters.png"


def trial_rows(oracle) -> list[dict]:
    rows = []
    for trial_id in sorted(oracle.trials):
        t = oracle.trials[trial_id]
        metric = lambda name: (t.metrics.get_last_value(name) if t.metrics.exists(name) else None)  # noqa: E731
        epochs = metric("epochs")
        rows.append({
            "trial_id": trial_id, "status": t.status, "worker": oracle.workers.get(trial_id),
            "hyperparameters": space_lib.searched(t.hyperparameters.values),
            "val_accuracy": None if t.status != "COMPLETED" or t.score is None else float(t.score),
            "epochs": None if epochs is None else int(epochs),
            "seconds": None if metric("seconds") is None else round(float(metric("seconds")), 1),
        })
        if t.status != "COMPLETED" and t.message:
            rows[-1]["message"] = t.message.strip().splitlines()[-1][:300]
    return rows


def test_best(run_dir: Path, dataset: str, data_dir=None) -> dict | None:
    """The best trial's best.keras on the test set: {test_accuracy, test_loss}, or None if it is
    not in this folder (a worker on another machine kept it)."""
    path = run_dir / runs.BEST
    if not path.is_file():
        return None
    import numpy as np

    from mnistlab import data as data_lib
    from mnistlab.evaluation.evaluate import load_best_model

    from mnistlab.training.no_tensorflow import keras_without_tensorflow

    ds = data_lib.load(dataset, data_dir=data_dir)
    with keras_without_tensorflow():  # on JAX, loading a model would import TensorFlow
        model = load_best_model(run_dir)
    probs = np.asarray(model.predict(ds.x_test.astype("float32"), batch_size=500, verbose=0))
    y = ds.y_test.astype(int)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1))))
    return {"test_accuracy": float(np.mean(probs.argmax(1) == y)), "test_loss": loss}


def finish(oracle, definition: dict, run_dir: Path, data_dir=None, workers: int = 0) -> dict:
    """Write the results of the ended search in `run_dir`; returns them."""
    trials = trial_rows(oracle)
    done = [t for t in trials if t["val_accuracy"] is not None]
    best = None
    if done:
        top = max(done, key=lambda t: (t["val_accuracy"], -int(t["trial_id"])))
        values = oracle.trials[top["trial_id"]].hyperparameters.values
        config = space_lib.trial_config(definition, values)
        folder = run_dir / TRIALS / top["trial_id"]
        best = {"trial_id": top["trial_id"], "hyperparameters": top["hyperparameters"],
                "val_accuracy": top["val_accuracy"], "run_dir": str(folder),
                "command": space_lib.train_command(config, definition["backend"], data_dir,
                                                   run_dir / f"best-{top['trial_id']}"),
                "test_accuracy": None}
        try:
            tested = test_best(folder, definition["dataset"], data_dir)
            if tested is None:
                best["note"] = f"{folder / runs.BEST} is not here (the worker's machine has it): run `command` to test"
            else:
                best.update(tested)
        except MnistlabError as e:  # a chief without the data: the results stand without the test
            best["note"] = f"not tested here: {e}"
    results = {"trials": trials, "best": best, "finished": True, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
               "search": {k: v for k, v in definition.items() if k != "space"}, "space": definition["space"],
               "completed": len(done), "workers": workers}
    runs.write_json(run_dir / RESULTS, results)
    write_csv(run_dir / CSV, trials, list(definition["space"]))
    plot(trials, definition["space"], run_dir / FIGURE)
    return results


def write_csv(path: Path, trials: list[dict], names: list[str]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial_id", "status", "worker", "val_accuracy", "epochs", "seconds", *names])
    for t in trials:
        hp = t["hyperparameters"]
        writer.writerow([t["trial_id"], t["status"], t["worker"], t["val_accuracy"], t["epochs"], t["seconds"],
                         *("-".join(map(str, hp.get(n))) if isinstance(hp.get(n), list) else hp.get(n)
                           for n in names)])
    with runs.atomic_path(path) as tmp:
        tmp.write_text(out.getvalue())


def plot(trials: list[dict], space: dict, path: Path) -> None:
    """Validation accuracy against each searched value (fixed ones left out)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, nothing left open

    names = [n for n, e in space.items() if "fixed" not in e]
    done = [t for t in trials if t["val_accuracy"] is not None]
    if not names or not done:
        return
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4 * cols, 3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    best = max(t["val_accuracy"] for t in done)
    for ax, name in zip(axes.flat, names):
        xs = [t["hyperparameters"].get(name) for t in done]
        ys = [t["val_accuracy"] for t in done]
        labels = None
        if any(isinstance(x, (str, bool, list)) for x in xs):
            labels = sorted({_label(x) for x in xs})
            xs = [labels.index(_label(x)) for x in xs]
        ax.scatter(xs, ys, c=["tab:red" if y == best else "tab:blue" for y in ys], alpha=0.8)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=20)
        elif space[name].get("sampling") == "log":
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("val accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"{len(done)} trials; best in red")
    fig.tight_layout()
    with runs.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)


def _label(x) -> str:
    return "-".join(map(str, x)) if isinstance(x, list) else str(x)


def summary_line(results: dict, run_dir, seconds: float | None = None) -> str:
    """The last line of `mnistlab tune`, in `mnistlab train`'s style."""
    s, best = results["search"], results.get("best")
    where = f"results {Path(run_dir) / RESULTS} | HParams: tensorboard --logdir {Path(run_dir) / TRIALS}"
    what = f"{s['model']} on {s['dataset']}, {s['backend']}, {s['tuner']}, {results['completed']} completed trials"
    took = f", {seconds:.0f} s" if seconds is not None else ""
    if best is None:
        return f"no trial completed | {what}{took} | {where}"
    test = f"test accuracy {best['test_accuracy']:.4f}" if best.get("test_accuracy") is not None \
        else "test accuracy: not here"
    return (f"{test} (val {best['val_accuracy']:.4f}) | best trial {best['trial_id']} of {what}{took} | {where} | "
            f"reproduce: {best['command']}")
