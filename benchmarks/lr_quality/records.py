"""The recorded setups of suggestion_quality.py: where they are stored, how they are read and extended.

Each setup of `benchmarks/lr_quality/setups.py` is recorded once (`python -m
benchmarks.lr_quality.suggestion_quality record`) into
benchmarks/results/lr_quality/SETUP.json: its range-test curve, the grid of
trained rates and the probes. Scoring (scoring.py), the noise floor
(noise_floor.py) and the 3-seed means (seed_means.py) read those records here,
and train what a record lacks in a fresh process on the setup's backend
(`run_setup_child`: suggestion_quality.py's `child` command).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from benchmarks.common.paths import REPO_ROOT, RESULTS_DIR
from benchmarks.lr_quality import setups

RESULTS = RESULTS_DIR / "lr_quality"
HIT = 0.3  # points of validation accuracy
CHILD_MODULE = "benchmarks.lr_quality.suggestion_quality"  # its `child` command trains one setup


def rate_key(lr: float) -> str:
    return f"{lr:.3g}"


def best_rate_key(r: dict) -> str:
    """The recorded setup's best grid rate (its key in `r["trained"]`)."""
    return max(r["grid"], key=lambda k: r["trained"][k]["val_accuracy"])


def result_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def load_results(names=None) -> dict:
    names = names or [s.name for s in setups.SETUPS]
    return {n: json.loads(result_path(n).read_text()) for n in names if result_path(n).exists()}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}, Python {platform.python_version()}"


def run_setup_child(name: str, extra: list[str], data_dir) -> dict:
    """`suggestion_quality.py child NAME EXTRA...` in a fresh process on the setup's backend; its RESULT."""
    setup = setups.BY_NAME[name]
    env = {**os.environ, "KERAS_BACKEND": setup.backend}
    env.pop("MNISTLAB_DATA_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if setup.data != "mnist":
        data_dir = None  # the MNIST folder; other data sets are found on their own
    cmd = [sys.executable, "-m", CHILD_MODULE, "child", name, *extra] + (["--data-dir", data_dir] if data_dir else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((s for s in proc.stdout.splitlines() if s.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"setup {name} failed ({proc.returncode})")
    return json.loads(line[len("RESULT "):])


def train_missing(results: dict, wanted: dict, data_dir) -> None:
    """Train the rates in `wanted` (setup -> rates) not yet trained, and store them."""
    for name, rates in wanted.items():
        r = results[name]
        missing = sorted({rate_key(lr) for lr in rates} - set(r["trained"]), key=float)
        if not missing:
            continue
        out = run_setup_child(name, ["--train", *missing], data_dir)
        r["trained"].update(out)
        result_path(name).write_text(json.dumps(r, indent=1))
        print(f"  trained {name} at {', '.join(missing)}", file=sys.stderr, flush=True)


def probe_missing(results: dict, wanted: dict, data_dir) -> None:
    """Record the probes in `wanted` (setup -> rates) that `record` did not, and store them."""
    for name, rates in wanted.items():
        r = results[name]
        keys = sorted({rate_key(lr) for lr in rates} - set(r["probes"]), key=float)
        if keys:
            r["probes"].update(run_setup_child(name, ["--probe", *keys], data_dir))
            result_path(name).write_text(json.dumps(r, indent=1))
            print(f"  probed {name} at {', '.join(keys)}", file=sys.stderr, flush=True)
