"""How sharp is "within 0.3 points of the best grid rate"? The noise floor of suggestion_quality's hit.

    python -m benchmarks.lr_quality.noise_floor [--setups NAME ...]

For every recorded setup of `benchmarks/lr_quality/setups.py`, the best grid rate is
trained again:

- at the same rate with 3 other seeds (data order and dropout masks; the
  same initial weights), as a user's own run of that rate would differ;
- at the rate x 0.9 and x 1.1 with the recorded seed, how jagged accuracy is
  against the rate on a scale no rule can resolve.

It prints, per setup, the spread, and in all how often the best grid rate
itself would count as a hit against its own recorded accuracy. Results are
stored under "noise" in benchmarks/results/lr_quality/SETUP.json and the table
goes to benchmarks/results/lr_noise_floor.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks.common.paths import RESULTS_DIR
from benchmarks.lr_quality import setups
from benchmarks.lr_quality.records import (HIT, best_rate_key, load_results, machine, rate_key, result_path,
                                           run_setup_child)

SEEDS = (1, 2, 3)
JITTER = (0.9, 1.1)
REPORT_MD = RESULTS_DIR / "lr_noise_floor.md"


def measure(name: str, r: dict, data_dir) -> None:
    key = best_rate_key(r)
    noise = r.setdefault("noise", {})
    if noise.get("rate") == key and len(noise.get("seeds", {})) == len(SEEDS) and len(noise.get("jitter", {})) == len(JITTER):
        return
    seeds = run_setup_child(name, ["--train", key, "--seeds", *map(str, SEEDS)], data_dir)[key]
    jitter = run_setup_child(name, ["--train", *(rate_key(float(key) * f) for f in JITTER)], data_dir)
    r["noise"] = {"rate": key, "seeds": seeds, "jitter": jitter}
    result_path(name).write_text(json.dumps(r, indent=1))


def report(results: dict) -> str:
    lines = [f"Command: `python -m benchmarks.lr_quality.noise_floor` ({time.strftime('%Y-%m-%d')})", f"Machine: {machine()}", "",
             "| setup | best grid rate | its accuracy (seed 0) | other seeds (same rate) | x0.9, x1.1 (seed 0) | "
             f"other seeds within {HIT} | jittered within {HIT} |",
             "|---|---:|---:|---|---|---:|---:|"]
    seed_hits = jitter_hits = seed_n = jitter_n = 0
    spreads = []
    for name, r in results.items():
        if "noise" not in r:
            continue
        key = r["noise"]["rate"]
        acc = r["trained"][key]["val_accuracy"]
        seeds = [v["val_accuracy"] for v in r["noise"]["seeds"].values()]
        jit = [v["val_accuracy"] for v in r["noise"]["jitter"].values()]
        sh = sum(100 * (acc - a) <= HIT for a in seeds)
        jh = sum(100 * (acc - a) <= HIT for a in jit)
        seed_hits, seed_n, jitter_hits, jitter_n = seed_hits + sh, seed_n + len(seeds), jitter_hits + jh, jitter_n + len(jit)
        spreads.append(100 * float(np.std([acc, *seeds], ddof=1)))
        lines.append(f"| {name} | {float(key):.3g} | {100 * acc:.2f} | {', '.join(f'{100 * a:.2f}' for a in seeds)} | "
                     f"{', '.join(f'{100 * a:.2f}' for a in jit)} | {sh}/{len(seeds)} | {jh}/{len(jit)} |")
    lines += ["", f"Runs of the best grid rate itself with another seed within {HIT} points of its recorded accuracy: "
              f"**{seed_hits}/{seed_n} ({100 * seed_hits / max(seed_n, 1):.0f}%)**; runs at 0.9x and 1.1x that rate: "
              f"**{jitter_hits}/{jitter_n} ({100 * jitter_hits / max(jitter_n, 1):.0f}%)**. "
              f"Median seed-to-seed standard deviation: {np.median(spreads):.2f} points."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setups", nargs="+", choices=[s.name for s in setups.SETUPS])
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    args = p.parse_args(argv)
    results = load_results(args.setups)
    for name, r in results.items():
        t0 = time.perf_counter()
        measure(name, r, args.data_dir)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    text = report(results)
    print(text)
    if not args.setups:
        REPORT_MD.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
