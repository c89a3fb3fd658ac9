"""How sharp is the lr_tasks hit? The noise floor of the benchmark's own measurement (issue 29).

    python -m benchmarks.lr_tasks.noise_floor [--setups NAME ...] [--no-train]

A rule hits a setup when the 3-seed mean at its rate lands within a tolerance
of the best grid rate's 3-seed mean (`benchmarks/lr_tasks/scoring.py`). That
best mean is the highest of 8-11 noisy means, so even a perfect rule cannot
hit every setup. This script measures how often rates no rule could tell
apart from the best grid rate hit, for every recorded setup:

- **jittered**: the best grid rate x 0.9 and x 1.1, trained with the same 3
  seeds as the grid (the same initial weights, data orders and dropout masks a
  suggestion is trained with): a rule that read the best rate to within 10%;
- **re-seeded**: the best grid rate itself with 3 other seeds (`SEEDS_AGAIN`),
  as a user's own training at that rate would differ;
- **grid neighbour**: the better of the two grid rates half a decade either
  side of the best, from the record (nothing trained): a rule half a decade off.

Beside them, what the library's probes could know at most: **every probe**,
the rate a search would suggest if it probed every quarter-decade rate of the
setup's probe table (`benchmarks/lr_tasks/probe_table.py`; 13-25 probes, median 22, about
20x the curve) for the library's `PROBE_STEPS` and kept the lowest held-out loss,
divided by its `SHRINK`: no search probing each rate once for that long sees more
(it could only choose differently). And
what one whole training per rate buys: **grid search**, the grid rate whose run
with the first seed scored best (nothing trained; an optimistic figure, since
that run is one of the three the hit is judged on).

The jittered runs are stored beside the grid (`trained`), the re-seeded ones
under `noise`, in benchmarks/results/lr_tasks/SETUP.json; the table goes to
benchmarks/results/lr_tasks_noise_floor.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from benchmarks.common.paths import RESULTS_DIR
from benchmarks.lr_quality.records import machine, rate_key
from benchmarks.lr_tasks import scoring, setups
from benchmarks.lr_tasks.benchmark import ORDER
from benchmarks.lr_tasks.store import load_results, run_task_child, save
from benchmarks.lr_tasks.trainer import mean_score

SEEDS_AGAIN = (3, 4, 5)
JITTER = (0.9, 1.1)
REPORT_MD = RESULTS_DIR / "lr_tasks_noise_floor.md"
SETS = (*reversed(setups.SETS.items()), ("all", [s.name for s in setups.SETUPS]))  # the newest set first


def jittered_keys(r: dict) -> list[str]:
    key, _, _ = scoring.best(r)
    return [rate_key(float(key) * f) for f in JITTER]


def every_probe_key(r: dict) -> str | None:
    """The rate a search probing every lattice rate of `r`'s probe table would suggest: the rate of
    the lowest held-out loss after `PROBE_STEPS` steps / `SHRINK` (None without a table or a finite loss)."""
    from mnistlab.lr_range.validation import PROBE_STEPS, SHRINK

    table = r.get("probe_table")
    if table is None:
        return None
    i = table["steps"].index(PROBE_STEPS)
    finite = {k: v[i] for k, v in table["losses"].items() if v[i] is not None}
    return rate_key(float(min(finite, key=finite.get)) / SHRINK) if finite else None


def grid_search_key(r: dict) -> str:
    """The grid rate whose run with the record's first seed scored best (finite scores only)."""
    seed, regression = str(r["seeds"][0]), r["spec"]["regression"]
    scores = {k: r["trained"][k][seed]["score"] for k in r["grid"]
              if r["trained"][k].get(seed, {}).get("score") is not None
              and math.isfinite(r["trained"][k][seed]["score"])}
    return (min if regression else max)(scores, key=scores.get)


def measure(r: dict) -> bool:
    """Train what `r` lacks: the jittered rates and the every-probe rate (the record's seeds) and the
    re-seeded best rate. True if trained."""
    name, seeds = r["setup"], [str(s) for s in r["seeds"]]
    key, _, _ = scoring.best(r)
    wanted = jittered_keys(r) + [k for k in [every_probe_key(r)] if k is not None]
    todo = [k for k in dict.fromkeys(wanted) if not all(s in r["trained"].get(k, {}) for s in seeds)]
    trained = False
    if todo:
        for k, runs in run_task_child(name, {"train": todo}).items():
            r["trained"].setdefault(k, {}).update(runs)
        trained = True
    noise = r.get("noise", {})
    if noise.get("rate") != key or len(noise.get("seeds", {})) < len(SEEDS_AGAIN):
        runs = run_task_child(name, {"train": [key], "seeds": list(SEEDS_AGAIN)})[key]
        r["noise"] = {"rate": key, "seeds": runs}
        trained = True
    if trained:
        save(r)
    return trained


def readings(r: dict) -> dict | None:
    """Reading -> (3-seed mean, hit) for the setup; None until everything is trained."""
    regression = r["spec"]["regression"]
    key, best_mean, best_sd = scoring.best(r)
    out = {}
    for f, k in zip(JITTER, jittered_keys(r)):
        value = scoring.value_at(r, r["trained"].get(k))
        if value is None:
            return None
        out[f"x{f:g}"] = value
    noise = r.get("noise", {})
    if noise.get("rate") != key or len(noise.get("seeds", {})) < len(SEEDS_AGAIN):
        return None
    out["re-seeded"] = mean_score(noise["seeds"], regression)
    grid = r["grid"]
    i = grid.index(key)
    neighbours = [grid[j] for j in (i - 1, i + 1) if 0 <= j < len(grid)]
    values = [mean_score(r["trained"][k], regression) for k in neighbours]
    out["grid neighbour"] = min(values) if regression else max(values)
    probed = every_probe_key(r)
    if probed is not None:
        value = scoring.value_at(r, r["trained"].get(probed))
        if value is None:
            return None
        out["every probe"] = value
    out["grid search"] = scoring.value_at(r, r["trained"][grid_search_key(r)])
    suggestion = r["library"]["suggestion"]
    value = None if suggestion is None else scoring.value_at(r, r["trained"].get(rate_key(suggestion)))
    if suggestion is None or value is not None:  # the default as recorded (no rate: a miss)
        out["the default"] = math.inf if value is None else value
    return {k: (v, scoring.is_hit(regression, best_mean, best_sd, v)) for k, v in out.items()}


def report(results: dict) -> str:
    read = {n: readings(r) for n, r in results.items()}
    read = {n: v for n, v in read.items() if v is not None}
    columns = ["x0.9", "x1.1", "re-seeded", "grid neighbour", "every probe", "grid search", "the default"]
    lines = [f"Command: `python -m benchmarks.lr_tasks.noise_floor` ({time.strftime('%Y-%m-%d')})",
             f"Machine: {machine()}", "",
             "How often rates that no rule could tell apart from the best grid rate count as hits by the "
             "benchmark's own rule (`benchmarks/lr_tasks/scoring.py`): the best grid rate x 0.9 and x 1.1 with "
             "the grid's seeds, the best grid rate itself with 3 other seeds, and the better grid neighbour "
             "(half a decade away). \"within 10%\" counts a setup where both jittered rates hit; \"either\" one "
             "where at least one does. A rule's hit rate is bounded, roughly, by these. \"every probe\": the "
             "library's search had it probed every quarter-decade rate (what its probes could know at most); "
             "\"grid search\": the grid rate whose run with the first seed scored best (one whole training per "
             "rate; optimistic, as that run is one of the three judged); \"the default\": the library's "
             "suggestion as recorded.", "",
             "| set | setups | x0.9 | x1.1 | both within 10% | either | re-seeded | grid neighbour | every probe "
             "| grid search | the default |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for title, names in SETS:
        names = [n for n in names if n in read]
        if not names:
            continue

        def pct(k, of=len(names)):
            return f"{k}/{of} ({100 * k / of:.0f}%)" if of else "-"

        def count(c):
            return pct(sum(read[n][c][1] for n in names if c in read[n]), sum(c in read[n] for n in names))

        both = sum(read[n]["x0.9"][1] and read[n]["x1.1"][1] for n in names)
        either = sum(read[n]["x0.9"][1] or read[n]["x1.1"][1] for n in names)
        lines.append(f"| {title} | {len(names)} | {count('x0.9')} | {count('x1.1')} | {pct(both)} | {pct(either)} | "
                     + " | ".join(count(c) for c in columns[2:]) + " |")
    lines += ["", "| setup | family | best grid rate (3-seed mean, SD) | " + " | ".join(columns) + " |",
              "|---|---|---|" + "---|" * len(columns)]
    for n, r in results.items():
        if n not in read:
            continue
        key, mean, sd = scoring.best(r)
        reg = r["spec"]["regression"]
        shown = lambda v: f"{v:.4g}" if reg else f"{v:.1f}"  # noqa: E731
        cells = [f"{shown(read[n][c][0])}{' hit' if read[n][c][1] else ''}" if c in read[n] else "-" for c in columns]
        lines.append(f"| {n} | {r['spec']['family']} | {key} ({shown(mean)}, {sd:.2g}) | " + " | ".join(cells) + " |")
    sds = [scoring.best(r)[2] for n, r in results.items() if n in read and not r["spec"]["regression"]]
    if sds:
        lines += ["", f"Median seed-SD of the best grid rate (classification): {np.median(sds):.2f} points."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setups", nargs="+", choices=[s.name for s in setups.SETUPS])
    p.add_argument("--no-train", action="store_true", help="report only what is already trained")
    args = p.parse_args(argv)
    results = load_results(args.setups or ORDER)
    if not args.no_train:
        for name, r in results.items():
            started = time.perf_counter()
            try:
                if measure(r):
                    print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            except SystemExit as failure:
                print(f"{name}: FAILED {str(failure)[-1500:]}", file=sys.stderr, flush=True)
    text = report(results)
    print(text)
    if not args.setups:
        REPORT_MD.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
