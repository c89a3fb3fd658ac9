"""Fault injection: SIGKILL a training run at chosen moments, resume it, compare with an uninterrupted run.

    python -m benchmarks.reliability.fault_resume [--trials 10] [--data-dir DIR] [--epochs 8] [--seed S]

One reference run is trained without interruption. Each trial starts the same
run (same seed, `--deterministic`), has it SIGKILLed at several moments,
resumes it with `mnistlab train --resume` after each kill, and lets it finish.
A trial passes when last.keras and best.keras hold bit-identical weights to
the reference's and history.csv and the test accuracy are identical. Prints
one line per trial and n/N at the end.

The moments are tied to the run's progress, not to the clock, so every kill
lands where it was meant to on a fast or a busy machine alike:

    start     when training begins (the run folder holds config.json only)
    step:N    after the N-th training batch of this process (mid-epoch)
    write:N   during the N-th checkpoint write of this process: the temporary
              file is complete, fsync and rename have not happened

The process SIGKILLs itself at the moment (a `python -c` launcher arms the
hook, then runs `mnistlab train` as the command line does); to the run folder
that is the same as a kill from outside. Random moments come from `--seed`,
printed.

Without --data-dir it makes a small synthetic data set (600 images), so the
script needs no download; the kills and checks are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common.paths import REPO_ON_PATH, REPO_ROOT

CHECKPOINT_FILES = ("best.keras", "last.keras", "state.npz")


def train_args(run: Path, data_dir: Path, epochs: int = 8) -> list[str]:
    return ["train", "--model", "mlp", "--depth", "2", "--width", "64", "--epochs", str(epochs),
            "--batch-size", "32", "--seed", "5", "--data-dir", str(data_dir), "--run-dir", str(run),
            "--verbose", "0", "--deterministic"]


def resume_args(run: Path, data_dir: Path) -> list[str]:
    return ["train", "--resume", str(run), "--data-dir", str(data_dir), "--verbose", "0"]


def train_cmd(run: Path, data_dir: Path, epochs: int = 8) -> list[str]:
    return [sys.executable, "-m", "mnistlab", *train_args(run, data_dir, epochs)]


def killed_at(moment: str, args: list[str]) -> list[str]:
    """The command `mnistlab ARGS`, armed to SIGKILL itself at `moment` (see the module docstring)."""
    code = (f"{REPO_ON_PATH}; from benchmarks.reliability import fault_resume; "
            f"fault_resume.arm({moment!r}); from mnistlab.cli.main import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, *args]


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(moment: str) -> None:
    """Install the hook that SIGKILLs this process at `moment` (in the child process)."""
    import keras

    import mnistlab.runs as runs
    import mnistlab.training.train as tr

    kind, _, n = moment.partition(":")
    if kind in ("start", "step"):
        target = int(n or 0)

        class Kill(keras.callbacks.Callback):
            seen = 0

            def on_train_begin(self, logs=None):
                if kind == "start":
                    _die()

            def on_train_batch_end(self, batch, logs=None):
                self.seen += 1
                if self.seen == target:
                    _die()

        real_callbacks = tr.make_callbacks
        tr.make_callbacks = lambda *a, **k: [Kill(), *real_callbacks(*a, **k)]
    elif kind == "write":
        real_atomic, writes = runs.atomic_path, []

        @contextlib.contextmanager
        def atomic_path(path):
            with real_atomic(path) as tmp:
                yield tmp
                if Path(path).name in CHECKPOINT_FILES:
                    writes.append(path)
                    if len(writes) == int(n):
                        _die()  # the temporary file is written; fsync and rename have not happened

        runs.atomic_path = atomic_path
    else:
        raise ValueError(f"unknown kill moment {moment!r}: start, step:N or write:N")


def kill_and_resume(run: Path, data_dir: Path, moments, env, epochs: int = 8) -> list[str]:
    """Start the run, have it killed at each moment in turn (resuming in between), then let it finish.

    Returns the moments at which a process was killed; a moment the run finished
    before is left out (with enough epochs, none is).
    """
    def args():  # killed before the run folder was set up: start again, else resume
        return resume_args(run, data_dir) if (run / "config.json").exists() else train_args(run, data_dir, epochs)

    kills = []
    for moment in moments:
        proc = subprocess.run(killed_at(moment, args()), env=env, capture_output=True, text=True, timeout=1200)
        if proc.returncode == -signal.SIGKILL:
            kills.append(moment)
        elif proc.returncode == 0:
            break  # it finished first
        else:
            raise RuntimeError(f"the run failed at {moment} ({proc.returncode}): {proc.stderr[-2000:]}")
    proc = subprocess.run([sys.executable, "-m", "mnistlab", *args()], env=env, capture_output=True, text=True,
                          timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"the final resume failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return kills


def random_moments(rng, steps_per_epoch: int = 16) -> list[str]:
    """Four kills that never outrun an 8-epoch run: at start-up, mid-epoch, and during two writes.

    Each kill costs the run at most two epochs of progress, so all four land.
    """
    return ["start", f"write:{rng.integers(1, 4)}", f"step:{rng.integers(1, 2 * steps_per_epoch)}",
            f"write:{rng.integers(1, 7)}"]


def differences(ref: Path, run: Path) -> list[str]:
    """What differs between two finished run folders (empty: bit-identical)."""
    import mnistlab.models  # noqa: F401  (first: registers our layers, sets TensorFlow's options)
    import keras

    found = []
    for name in ("last.keras", "best.keras"):
        a = keras.saving.load_model(ref / name).get_weights()
        b = keras.saving.load_model(run / name).get_weights()
        if len(a) != len(b) or not all(np.array_equal(x, y) for x, y in zip(a, b)):
            found.append(f"{name} weights")
    if (ref / "history.csv").read_text() != (run / "history.csv").read_text():
        found.append("history.csv")
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, run))
    for key in ("test_accuracy", "test_loss", "epochs_run", "best_epoch"):
        if ma[key] != mb[key]:
            found.append(f"{key} {ma[key]} vs {mb[key]}")
    return found


def synthetic_data(folder: Path) -> Path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))  # the test suite's writer of IDX files
    from conftest import write_idx_folder

    return write_idx_folder(folder)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--epochs", type=int, default=8, help="at least 8, so that every kill lands")
    p.add_argument("--data-dir", type=Path, default=None, help="IDX folder (default: synthetic data)")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: time)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    rng = np.random.default_rng(seed)
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_DATA_DIR"}
    with tempfile.TemporaryDirectory(prefix="fault_resume") as tmp:
        tmp = Path(tmp)
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = synthetic_data(tmp / "data")
            env["MNISTLAB_SKIP_MD5"] = "1"
        subprocess.run(train_cmd(tmp / "ref", data_dir, args.epochs), env=env, check=True, capture_output=True)
        print(f"kill moments from --seed {seed}", flush=True)
        passed = 0
        for trial in range(args.trials):
            run = tmp / f"trial{trial}"
            kills = kill_and_resume(run, data_dir, random_moments(rng), env, args.epochs)
            diff = differences(tmp / "ref", run)
            passed += not diff
            print(f"trial {trial + 1}: {len(kills)} kills ({', '.join(kills) or 'none'}) -> "
                  f"{'bit-identical' if not diff else 'DIFFERS: ' + ', '.join(diff)}", flush=True)
    print(f"\n{passed}/{args.trials} resumed runs bit-identical to the uninterrupted run")
    return 0 if passed == args.trials else 1


if __name__ == "__main__":
    raise SystemExit(main())
