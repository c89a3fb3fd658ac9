"""Run `mnistlab train` as a user would, for several seeds, and tabulate the results.

Each run is the real command in a subprocess, so wall time includes start-up,
data loading and the final evaluation. Example (the MLP default, 3 seeds):

    python -m benchmarks.accuracy.train_runs --name mlp-default --seeds 0 1 2 -- --model mlp

Everything after `--` is passed to `mnistlab train`. Results (one row per
seed, then mean/min) are printed as a Markdown table and appended to
benchmarks/out/train_runs.jsonl.
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

from benchmarks.common.paths import OUT_DIR


def run_one(name, seed, train_args, data_dir):
    run_dir = OUT_DIR / f"{name}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [sys.executable, "-m", "mnistlab", "train", *train_args, "--seed", str(seed),
           "--run-dir", str(run_dir), "--verbose", "0"]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"run failed ({proc.returncode}): {shlex.join(cmd)}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"name": name, "seed": seed, "wall_seconds": round(wall, 1), "command": shlex.join(cmd),
            "summary": proc.stdout.strip().splitlines()[-1], **metrics}


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    args = p.parse_args(own)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        row = run_one(args.name, seed, train_args, args.data_dir)
        rows.append(row)
        with open(OUT_DIR / "train_runs.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"seed {seed}: {row['summary']}", flush=True)
    print(f"\n`mnistlab train {shlex.join(train_args)}` on {platform.node()} "
          f"({os.cpu_count()} cores), {rows[0]['backend']}\n")
    print("| seed | test acc | best val acc | epochs (best) | fit s | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['test_accuracy']:.4f} | {r['best_val_accuracy']:.4f} | "
              f"{r['epochs_run']} ({r['best_epoch']}) | {r['fit_seconds']:.0f} | {r['wall_seconds']:.0f} |")
    accs = [r["test_accuracy"] for r in rows]
    print(f"| mean / min | {sum(accs) / len(accs):.4f} / {min(accs):.4f} | | | "
          f"{sum(r['fit_seconds'] for r in rows) / len(rows):.0f} | |")


if __name__ == "__main__":
    main()
