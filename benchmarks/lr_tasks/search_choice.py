"""How `validate="fast"`'s settings were chosen: every setting, replayed on recorded probes (issue 29).

    python -m benchmarks.lr_tasks.search_choice [--top 15]
    python -m benchmarks.lr_tasks.search_choice --trained [--racing] [--max-cost 3.0] [--data-dir DIR] [--no-train]

The validated suggestion (`mnistlab.lr_range.validation`) trains a few short
probes and keeps the best by held-out loss. Its settings (probe length, how
many probes, where they start, how far they extend, the final division) trade
the suggestion's quality against its cost, so cheaper ones were chosen by replaying
`mnistlab.lr_range.validation.validated` itself, with each setting, on
recorded probes:

- the 20 CHOOSE and HELD_OUT setups of `benchmarks/lr_tasks` (their probe
  tables, `benchmarks/lr_tasks/probe_table.py`: every lattice rate read after
  10, 16, 25, 33, 50 and 100 steps);
- the 40 setups of `benchmarks/lr_quality` (probes read after 25, 50 and 100
  steps by `record`, after 10, 16, 25 and 33 by `short-probes`).

The FRESH setups of `benchmarks/lr_tasks` are never read here: they are the
report for whatever is chosen.

A suggestion's quality is read off the setup's grid (rates half a decade
apart), interpolated linearly in log-rate between the two grid rates around
it: cheap, the same for every setting, and a little pessimistic near the best
rate (where the truth curves above the straight line), so it ranks settings;
the reported figures come from training the chosen setting's rates
(`benchmark score`, `suggestion_quality score`). Trained, the chosen setting
(`mnistlab.lr_range.validation.FAST`) fell further behind the 100-step search
than this replay said (17 against 23 of the 30 `lr_tasks` setups on 3-seed
means), so it is an option, not the default. Per setup the gap to the best
grid rate is counted in tolerances (`benchmarks/lr_tasks/scoring.py`; 0.3
points on the MNIST family), capped at 3 so one wild setup does not decide;
a hit is a gap of at most 1. The cost is estimated as 1 + 0.75 x (probe steps
/ curve steps): a probe's step, which reads no loss, took 0.46-0.73 of a
curve's step in the measurements of docs/lr-range-test.md ("Cost"), and the
held-out loss is a few milliseconds. The measured cost is in BENCHMARKS.md.

`--trained` scores by training instead: every setting of `TRAINED_GRID`
estimated under `--max-cost`, replayed on the 30 read lr_tasks setups (CHOOSE,
HELD_OUT, FRESH; FRESH2 and FRESH3, the reports, are never read) and, with `--data-dir`,
the 40 MNIST-family setups. Every rate a setting suggests is trained there
(3 seeds; one on the MNIST family) and stored beside the grid, and each
setting is scored by the report's own hit rule. No setting under 3x matched
the default (benchmarks/results/lr_search_trained.md).

`--trained --racing` scores the races of `RACE_GRID` the same way (`raced`:
the search's short probes, the best 2-3 continued to a longer length, each
step run once); none beat the plain search (benchmarks/results/lr_search_racing.md).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys

import numpy as np

from benchmarks.lr_quality import setups as quality_setups
from benchmarks.lr_quality.records import HIT as QUALITY_HIT  # points, on the MNIST family
from benchmarks.lr_quality.records import best_rate_key, rate_key
from benchmarks.lr_quality.records import load_results as load_quality
from benchmarks.lr_quality.scoring import best_grid, library_view, probe_losses
from benchmarks.lr_tasks import setups
from benchmarks.lr_tasks.probe_table import Replay as ProbeReplay
from benchmarks.lr_tasks.scoring import best, gap, is_hit, tolerance, value_at
from benchmarks.lr_tasks.store import load_results
from benchmarks.lr_tasks.trainer import mean_score
from mnistlab.lr_range import validation as lr_validation

CAP = 3.0              # tolerances: a setup's gap counts at most this much
PROBE_STEP_SHARE = 0.75  # a probe's step over a curve's step, at most (see the docstring)
DEFAULT = dict(steps=lr_validation.PROBE_STEPS, candidates=lr_validation.CANDIDATES,  # the default search's settings
               spacing=lr_validation.SPACING, offset=lr_validation.OFFSET, extend=lr_validation.EXTEND,
               shrink=lr_validation.SHRINK)
GRID = dict(steps=(10, 16, 25, 33, 50), candidates=(2, 3, 4), spacing=(1, 2), offset=(0, 1, 2), extend=(0, 1, 2),
            shrink=(1.5, 2, 3, 4))
# `--trained`: fewer settings, since every rate one of them suggests is trained with 3 seeds
TRAINED_GRID = dict(steps=(16, 25, 33, 50), candidates=(2, 3, 4), spacing=(1, 2), offset=(0, 1), extend=(0, 1, 2),
                    shrink=(1.5, 2))
# `--trained --racing`: short probes, then the `keep` best continued to `then` steps (`raced`)
RACE_GRID = dict(steps=(10, 16, 25, 33, 50), then=(33, 50, 100), keep=(2, 3), candidates=(3, 4), extend=(1, 2))


def interpolated(points: dict, lr: float) -> float:
    """The score at `lr`, linear in log10(rate) between the grid points {rate: score} around it."""
    xs = sorted(points)
    x = math.log10(lr)
    logs = [math.log10(r) for r in xs]
    if x <= logs[0]:
        return points[xs[0]]
    if x >= logs[-1]:
        return points[xs[-1]]
    i = int(np.searchsorted(logs, x))
    a, b = points[xs[i - 1]], points[xs[i]]
    if not (math.isfinite(a) and math.isfinite(b)):
        return a if x - logs[i - 1] < logs[i] - x else b
    return a + (b - a) * (x - logs[i - 1]) / (logs[i] - logs[i - 1])


def probe_search(r: dict, tasks: bool) -> ProbeReplay:
    """The library's search on the probes of record `r` (lr_tasks if `tasks`, else the MNIST family,
    whose untrained held-out loss was not recorded: every one of those setups learns at some rate)."""
    if tasks:
        return ProbeReplay.of(r)
    return ProbeReplay(*library_view(r), {n: probe_losses(r, n) for n in (10, 16, 25, 33, 50, 100)})


def estimated_cost(search: ProbeReplay, steps_run: list) -> float:
    """The search's cost over the curve alone, estimated from its probe steps (see the docstring)."""
    return 1 + PROBE_STEP_SHARE * sum(steps_run) / len(search.lrs)


class Replay:
    """One recorded setup: the library's search on its probes (`probe_table.Replay`), its grid, its tolerance."""

    def __init__(self, r: dict, tasks: bool):
        self.search = probe_search(r, tasks)
        if tasks:
            regression = r["spec"]["regression"]
            _, self.best, sd = best(r)
            self.tol = tolerance(regression, self.best, sd)
            self.sign = 1 if regression else -1  # the gap is sign * (value - best)
            self.grid = {float(k): mean_score(r["trained"][k], regression) for k in r["grid"]}
        else:
            self.best, self.tol, self.sign = 100 * r["trained"][best_rate_key(r)]["val_accuracy"], 0.3, -1
            self.grid = {float(k): 100 * r["trained"][k]["val_accuracy"] for k in r["grid"]}

    def run(self, options: dict):
        """`(gap in tolerances, estimated cost)` of the validated search with `options`."""
        rate, steps_run = self.search.run(**options)
        cost = estimated_cost(self.search, steps_run)
        if rate is None:
            return math.inf, cost
        value = interpolated(self.grid, rate)
        gap = self.sign * (value - self.best) if math.isfinite(value) else math.inf
        return max(gap, 0.0) / self.tol, cost


def evaluate(replays: list, options: dict) -> tuple:
    """`(mean capped gap, hits, median estimated cost)` over `replays`."""
    gaps, costs = zip(*(rp.run(options) for rp in replays))
    return (float(np.mean([min(g, CAP) for g in gaps])), sum(g <= 1 + 1e-9 for g in gaps),
            float(np.median(costs)))


class Trained:
    """One recorded setup scored by training: the library's search on its probes, the rate it suggests
    looked up among the rates trained for the setup (3 seeds on lr_tasks, one on the MNIST family)."""

    def __init__(self, r: dict, tasks: bool):
        self.r, self.tasks = r, tasks
        self.search = probe_search(r, tasks)
        if tasks:
            self.regression = r["spec"]["regression"]
            _, self.best_mean, self.best_sd = best(r)
            self.tol = tolerance(self.regression, self.best_mean, self.best_sd)
        else:
            self.best_accuracy = best_grid(r)[1]

    def run(self, options: dict):
        """`(rate, gap in tolerances or None where the rate is not trained yet, hit, estimated cost)`."""
        rate, steps_run = raced(self.search, **options) if "keep" in options else self.search.run(**options)
        cost = estimated_cost(self.search, steps_run)
        r = self.r
        if self.tasks:
            value = None if rate is None else value_at(r, r["trained"].get(rate_key(rate)))
            hit = is_hit(self.regression, self.best_mean, self.best_sd, value)
            g = None if rate is not None and value is None else gap(self.regression, self.best_mean, value) / self.tol
        else:
            run = None if rate is None else r["trained"].get(rate_key(rate))
            g = None if rate is not None and run is None else (
                math.inf if rate is None else 100 * (self.best_accuracy - run["val_accuracy"]) / QUALITY_HIT)
            hit = g is not None and g <= 1 + 1e-9
        return rate, g, hit, cost


def raced(search: ProbeReplay, *, keep: int, then: int, **options):
    """`(rate, probe steps run)` of a race on the replayed probes: the library's search with `options` (its short
    probes), then the `keep` best of them continued to `then` steps (from where they stopped: no step is
    run twice), the best of those kept and divided by the search's shrink. A flat curve's search is left as
    it is (its probes are already long)."""
    tried, steps_run = {}, []

    def loss_at(lr, steps):
        steps_run.append(steps)
        tried[lr] = search.loss(lr, steps)
        return tried[lr]

    rate = lr_validation.validated(search.lrs, search.found["min"], search.info, search.stopped, loss_at,
                                   lambda: search.start_loss, "", **options)[0]
    finite = sorted((v, lr) for lr, v in tried.items() if v is not None and math.isfinite(v))
    if rate is None or len(finite) < 2 or steps_run[0] != options["steps"]:
        return rate, steps_run
    longer = {}
    for _, lr in finite[:keep]:
        steps_run.append(then - options["steps"])
        v = search.loss(lr, then)
        longer[lr] = v if v is not None and math.isfinite(v) else math.inf
    best = min(longer, key=longer.get)
    return (best if math.isfinite(longer[best]) else finite[0][1]) / options.get("shrink", lr_validation.SHRINK), \
        steps_run


def train_suggestions(trained: dict, settings: list, data_dir=None) -> None:
    """Train, with every seed, each rate that one of `settings` suggests and that is not trained."""
    from benchmarks.lr_quality.records import train_missing as train_quality
    from benchmarks.lr_tasks.benchmark import train_missing

    for n, t in trained.items():
        rates = sorted({rate_key(rate) for o in settings for rate in [t.run(o)[0]] if rate is not None},
                       key=float)
        if t.tasks:
            train_missing(t.r, {f"rate {i}": float(k) for i, k in enumerate(rates)}, False)
        elif data_dir is not None:
            train_quality({n: t.r}, {n: [float(k) for k in rates]}, data_dir)


def trained_table(trained: dict, settings: list, top: int, sets: list) -> str:
    """Markdown: `settings` ranked by hits on `trained` (then mean capped gap), with each of `sets`
    ((title, names)) on its own."""
    rows = []
    for options in settings:
        out = {n: t.run(options) for n, t in trained.items()}
        untrained = sum(g is None for _, g, _, _ in out.values())
        hits = sum(h for _, _, h, _ in out.values())
        gaps = [min(g, CAP) for _, g, _, _ in out.values() if g is not None]
        per_set = [f"{sum(out[n][2] for n in names)}/{len(names)}" for _, names in sets]
        cost = float(np.median([c for *_, c in out.values()]))
        rows.append((-hits, float(np.mean(gaps)), cost, per_set, untrained, options))
    rows.sort(key=lambda row: row[:3])
    lines = [f"| hits ({len(trained)}) | mean capped gap | cost (est.) | " + " | ".join(n for n, _ in sets)
             + " | not trained | settings |", "|---:|---:|---:|" + "---:|" * len(sets) + "---:|---|"]
    for neg, g, c, per_set, untrained, options in rows[:top]:
        lines.append(f"| {-neg} | {g:.3f} | {c:.2f}x | " + " | ".join(per_set) + f" | {untrained} | {options} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--top", type=int, default=15, help="settings to list (default 15)")
    p.add_argument("--max-cost", type=float, default=2.0, help="list only settings estimated under this cost")
    p.add_argument("--trained", action="store_true",
                   help="score by training instead: the settings of TRAINED_GRID estimated under --max-cost, "
                        "on the 30 lr_tasks CHOOSE, HELD_OUT and FRESH setups (FRESH2 and FRESH3 never read)")
    p.add_argument("--racing", action="store_true",
                   help="with --trained: the races of RACE_GRID instead (short probes, the best continued)")
    p.add_argument("--no-train", action="store_true", help="with --trained: score only what is trained")
    p.add_argument("--data-dir", help="with --trained: MNIST's files, to score the MNIST family too")
    args = p.parse_args(argv)
    if args.trained:
        return main_trained(args)
    tasks = load_results(setups.CHOOSE + setups.HELD_OUT)
    quality = load_quality()
    missing = [n for n, r in tasks.items() if "probe_table" not in r] + \
        [n for n, r in quality.items() if "short_probes" not in r]
    if missing or len(tasks) < 20:
        raise SystemExit(f"probe records missing for {', '.join(missing) or 'some lr_tasks setups'}: run "
                         "`benchmark probes` and `suggestion_quality short-probes` first")
    replays = [Replay(r, True) for r in tasks.values()] + [Replay(r, False) for r in quality.values()]
    n = len(replays)
    print(f"{n} setups ({len(tasks)} lr_tasks CHOOSE + HELD_OUT, {len(quality)} lr_quality); FRESH not read\n")
    mean_gap, hits, cost = evaluate(replays, DEFAULT)
    print(f"the default search {DEFAULT}: mean capped gap {mean_gap:.3f}, hits {hits}/{n}, cost ~{cost:.2f}x\n")
    rows = []
    for values in itertools.product(*GRID.values()):
        options = dict(zip(GRID, values))
        rows.append((*evaluate(replays, options), options))
    rows = sorted((r for r in rows if r[2] <= args.max_cost), key=lambda r: (r[0], -r[1]))
    print(f"| mean capped gap | hits ({n}) | cost (est.) | settings |\n|---:|---:|---:|---|")
    for mean_gap, hits, cost, options in rows[:args.top]:
        print(f"| {mean_gap:.3f} | {hits} | {cost:.2f}x | {options} |")
    return 0


def main_trained(args) -> int:
    """`--trained`: every setting of `TRAINED_GRID` under the cost cap, scored by training its rates."""
    tasks = load_results(setups.CHOOSE + setups.HELD_OUT + setups.FRESH)
    if len(tasks) < 30 or any("probe_table" not in r for r in tasks.values()):
        raise SystemExit("run `benchmark record` and `benchmark probes` first")
    trained = {n: Trained(r, True) for n, r in tasks.items()}
    quality = {n: Trained(r, False) for n, r in load_quality().items()} if args.data_dir else {}
    settings, grid = [], RACE_GRID if args.racing else TRAINED_GRID
    for values in itertools.product(*grid.values()):
        options = dict(zip(grid, values))
        if options.get("then", math.inf) <= options["steps"]:
            continue
        if np.median([t.run(options)[3] for t in trained.values()]) <= args.max_cost:
            settings.append(options)
    if not args.no_train:
        train_suggestions({**trained, **quality}, settings + [DEFAULT], args.data_dir)
    print(f"{len(settings)} settings estimated under {args.max_cost}x, scored by training (lr_tasks: 3-seed means; "
          "FRESH2 and FRESH3 not read)\n")
    task_sets = [(name, [n for n in names if n in tasks]) for name, names in
                 (("CHOOSE", setups.CHOOSE), ("HELD_OUT", setups.HELD_OUT), ("FRESH", setups.FRESH))]
    for title, group, sets in (("lr_tasks", trained, task_sets),
                               ("MNIST family (one seed)", quality, [("set 1", quality_setups.CHOOSE),
                                                                     ("set 2", quality_setups.REPORT),
                                                                     ("held out (3, 4)", quality_setups.HELD_OUT)])):
        if group:
            print(f"### {title}\n\n" + trained_table(group, [DEFAULT], 1, sets) + "\n")
            print(trained_table(group, settings, args.top, sets) + "\n")
    if quality:
        sets = [("lr_tasks", list(trained)), ("MNIST family", list(quality)),
                ("MNIST held out", quality_setups.HELD_OUT)]
        print("### Both benchmarks\n\n" + trained_table({**trained, **quality}, [DEFAULT], 1, sets) + "\n")
        print(trained_table({**trained, **quality}, settings, args.top, sets) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
