"""Fault injection: SIGKILL a training run at random moments, resume it, compare with an uninterrupted run.

    python benchmarks/fault_resume.py [--trials 10] [--data-dir DIR] [--epochs 8]

One reference run is trained without interruption. Each trial starts the same
run (same seed, `--deterministic`), kills it with SIGKILL at several moments
(random times, and the moment a checkpoint's temporary file appears, i.e.
during a checkpoint write), resumes it with `mnistlab train --resume` after
each kill, and lets it finish. A trial passes when last.keras and best.keras
hold bit-identical weights to the reference's and history.csv and the test
accuracy are identical. Prints one line per trial and n/N at the end.

Without --data-dir it makes a small synthetic data set (600 images), so the
script needs no download; the kills and checks are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def train_cmd(run: Path, data_dir: Path, epochs: int = 8, extra=()) -> list[str]:
    return [sys.executable, "-m", "mnistlab", "train", "--model", "mlp", "--depth", "2", "--width", "64",
            "--epochs", str(epochs), "--batch-size", "32", "--seed", "5", "--data-dir", str(data_dir),
            "--run-dir", str(run), "--verbose", "0", "--deterministic", *extra]


def resume_cmd(run: Path, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "mnistlab", "train", "--resume", str(run), "--data-dir", str(data_dir),
            "--verbose", "0"]


def kill_when(proc, run: Path, moment) -> str | None:
    """SIGKILL `proc` at `moment` ('write': while a checkpoint's temporary file exists; or seconds).

    Returns what was happening when it was killed ('write' or 'time'), None if it finished first.
    """
    start = time.monotonic()
    while proc.poll() is None:
        if moment == "write":
            names = os.listdir(run) if run.exists() else []
            if any(".tmp.keras" in n or ".tmp.npz" in n for n in names):
                proc.send_signal(signal.SIGKILL)
                return "write"
        elif time.monotonic() - start >= moment:
            proc.send_signal(signal.SIGKILL)
            return "time"
        time.sleep(0.0005)
    return None


def kill_and_resume(run: Path, data_dir: Path, moments, env, epochs: int = 8) -> list[str]:
    """Start the run, SIGKILL it at each moment in turn (resuming in between), then let it finish."""
    proc = subprocess.Popen(train_cmd(run, data_dir, epochs), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    kills = []
    for moment in moments:
        what = kill_when(proc, run, moment)
        if what is None:
            break  # it finished first
        proc.wait()
        kills.append(what)
        # killed before the run folder was set up: start again, else resume
        cmd = resume_cmd(run, data_dir) if (run / "config.json").exists() else train_cmd(run, data_dir, epochs)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"the final resume failed ({proc.returncode}): {err[-2000:]}")
    return kills


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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import write_idx_folder

    return write_idx_folder(folder)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--data-dir", type=Path, default=None, help="IDX folder (default: synthetic data)")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: time)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed if args.seed is not None else int(time.time()))
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_DATA_DIR"}
    with tempfile.TemporaryDirectory(prefix="fault_resume") as tmp:
        tmp = Path(tmp)
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = synthetic_data(tmp / "data")
            env["MNISTLAB_SKIP_MD5"] = "1"
        start = time.monotonic()
        subprocess.run(train_cmd(tmp / "ref", data_dir, args.epochs), env=env, check=True,
                       capture_output=True)
        ref_seconds = time.monotonic() - start
        print(f"reference run: {ref_seconds:.1f} s; kills at random times in [1, {ref_seconds:.0f}] s "
              "and during checkpoint writes", flush=True)
        passed = 0
        for trial in range(args.trials):
            moments = ["write", float(rng.uniform(1, ref_seconds)), "write", float(rng.uniform(1, ref_seconds))]
            run = tmp / f"trial{trial}"
            kills = kill_and_resume(run, data_dir, moments, env, args.epochs)
            diff = differences(tmp / "ref", run)
            passed += not diff
            print(f"trial {trial + 1}: {len(kills)} kills ({', '.join(kills) or 'none'}) -> "
                  f"{'bit-identical' if not diff else 'DIFFERS: ' + ', '.join(diff)}", flush=True)
    print(f"\n{passed}/{args.trials} resumed runs bit-identical to the uninterrupted run")
    return 0 if passed == args.trials else 1


if __name__ == "__main__":
    raise SystemExit(main())
