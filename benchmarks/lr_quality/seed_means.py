"""The LR suggestion scored against a 3-seed ground truth (the hit of suggestion_quality with less noise).

    python -m benchmarks.lr_quality.seed_means [--sets third fourth first second] [--no-train] [--data-dir DIR]

`suggestion_quality.py` trains every rate once (seed 0), and the best of 8
such runs is itself noisy (`noise_floor.py`: the best rate re-run hits only
63-68%). Here every grid rate and every suggestion of the rules in `RULES` is
trained with seeds 1 and 2 too (data order and dropout; the same initial
weights), and scored by its mean validation accuracy over seeds 0-2: a hit is
a mean within 0.3 points of the best grid rate's mean. Runs are stored under
"seed_runs" in benchmarks/results/lr_quality/SETUP.json; the table goes to
stdout and benchmarks/results/lr_seed_means.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks.common.paths import RESULTS_DIR
from benchmarks.lr_quality import scoring, setups
from benchmarks.lr_quality.records import HIT, load_results, machine, rate_key, result_path, run_setup_child

SEEDS = (1, 2)
RULES = ("mnistlab validated", "experiment: validated without extension", "mnistlab middle", "fastai minimum",
         "fastai valley", "torch-lr-finder", "lightning <2.5.3", "keras-lr-finder")
SETS = {"first": setups.CHOOSE, "second": setups.REPORT, "third": setups.NEXT, "fourth": setups.FOURTH}
REPORT_MD = RESULTS_DIR / "lr_seed_means.md"


def mean_accuracy(r: dict, key: str):
    """Mean validation accuracy over seed 0 (the recorded run) and `SEEDS`, or None if not all ran."""
    runs = r.get("seed_runs", {}).get(key, {})
    if key not in r["trained"] or any(str(s) not in runs for s in SEEDS):
        return None
    return float(np.mean([r["trained"][key]["val_accuracy"], *(runs[str(s)]["val_accuracy"] for s in SEEDS)]))


def measure(name: str, r: dict, suggestions: dict, data_dir, rules=RULES) -> None:
    keys = set(r["grid"]) | {rate_key(v) for rule, v in suggestions.items() if rule in rules and v is not None}
    missing = sorted((k for k in keys if mean_accuracy(r, k) is None), key=float)
    if not missing:
        return
    out = run_setup_child(name, ["--train", *missing, "--seeds", *map(str, SEEDS)], data_dir)
    for k, runs in out.items():
        r.setdefault("seed_runs", {}).setdefault(k, {}).update(runs)
    result_path(name).write_text(json.dumps(r, indent=1))


def report(results: dict, names: list[str], suggestions: dict) -> str:
    lines = [f"| rule | suggestion measured | within {HIT} points of the best grid rate (3-seed means) "
             "| mean gap (points) | worst gap |", "|---|---:|---:|---:|---:|"]
    rows = []
    for rule in RULES:
        gaps = []
        for n in names:
            r = results[n]
            best = max(mean_accuracy(r, k) for k in r["grid"])
            lr = suggestions[n].get(rule)
            acc = None if lr is None else mean_accuracy(r, rate_key(lr))
            gaps.append(None if acc is None else 100 * (best - acc))
        found = [g for g in gaps if g is not None]
        hits = sum(g <= HIT for g in found)
        rows.append((hits, -np.mean(found) if found else -np.inf, rule, found))
    for hits, _, rule, found in sorted(rows, reverse=True):
        mean, worst = (f"{np.mean(found):.2f}", f"{np.max(found):.2f}") if found else ("-", "-")
        lines.append(f"| {rule} | {len(found)}/{len(names)} | {hits}/{len(names)} ({100 * hits / len(names):.0f}%) "
                     f"| {mean} | {worst} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=["third"])
    p.add_argument("--no-train", action="store_true", help="report the sets whose runs are all stored")
    p.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES),
                   help="train only these rules' suggestions (the others show as not measured)")
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    args = p.parse_args(argv)
    names = [n for s in args.sets for n in SETS[s]]
    results = load_results(names)
    suggestions = {n: scoring.all_suggestions(r) for n, r in results.items()}
    for n in names if not args.no_train else []:
        t0 = time.perf_counter()
        measure(n, results[n], suggestions[n], args.data_dir, args.rules)
        print(f"{n}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    out = [f"Command: `python -m benchmarks.lr_quality.seed_means --sets {' '.join(args.sets)}` "
           f"({time.strftime('%Y-%m-%d')})", f"Machine: {machine()}"]
    complete = []
    for set_name in args.sets:
        done = [n for n in SETS[set_name] if n in results and all(
            mean_accuracy(results[n], k) is not None for k in results[n]["grid"])]
        if len(done) < len(SETS[set_name]):
            out += ["", f"{set_name} set: {len(done)} of {len(SETS[set_name])} setups measured, not reported"]
            continue
        complete.append(set_name)
        out += ["", f"### The {set_name} set ({len(done)} setups)", "", report(results, done, suggestions)]
    if {"third", "fourth"} <= set(complete):  # the two sets held out from every choice, together
        out += ["", f"### Both held-out sets, third and fourth ({len(setups.HELD_OUT)} setups)", "",
                report(results, setups.HELD_OUT, suggestions)]
    text = "\n".join(out)
    print(text)
    REPORT_MD.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
