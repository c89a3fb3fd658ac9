"""Does the LR range test suggest good rates beyond MNIST? 50 setups in 5 task families (issue 29).

    python -m benchmarks.lr_tasks.benchmark record [--setups NAME ...] [--again]
    python -m benchmarks.lr_tasks.benchmark score [--setups NAME ...] [--no-train] [--rerun-library]
    python -m benchmarks.lr_tasks.benchmark probes [--setups NAME ...] [--again]

`record` runs, per setup of `benchmarks/lr_tasks/setups.py` (each in its own
process, on its own backend), and stores in benchmarks/results/lr_tasks/SETUP.json:

- the range test's raw curve at the library's default range (1e-6 to 10 in
  100 steps), run on past divergence so any rule can re-read it
  (`benchmarks.lr_quality.anchors` and the library's curve rules apply their own stops);
- the library's default `mnistlab.lr_range_test(model, x, y, batch_size=...)`
  as a user calls it (the validated rule, probes scored on the last tenth of
  the training data, never on the validation split): its suggestion, every
  rule's, its stop reason and its time, and the time of the curve alone
  (`validate=False`);
- the grid: rates half a decade apart (extended past an edge holding the
  best), each trained for the setup's budget with each of 3 seeds (the seed
  draws the initial weights, the data order and the dropout masks; every rate
  starts from the same weights for a seed), scored on the validation split:
  accuracy in points, or the validation loss for regression.

`score` applies every rule to the stored records, trains each suggested rate
with the same 3 seeds (once: stored beside the grid; `--no-train` only
reports), runs the learning-rate-free optimizers of
`benchmarks/lr_tasks/lr_free/` at their defaults on the same budget, and
writes per set (`FRESH3` is the report, `FRESH2` was the report of the
search's settings, `FRESH` was the report of the first choice of the search,
`HELD_OUT` was held out from the first choice of rules, `CHOOSE` where rules
may be tuned)
and per family the hits and mean gaps (`benchmarks/lr_tasks/scoring.py`) to
stdout and benchmarks/results/lr_tasks.md. `--rerun-library` runs the
current library's `lr_range_test` again on every setup first (the previous
result is kept under "library_history"), so a changed algorithm is scored
without retraining the grid.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.lr_quality.records import machine, rate_key
from benchmarks.lr_tasks import scoring, setups
from benchmarks.lr_tasks.store import REPORT_MD, load_results, result_path, run_task_child, save

# the recording order: the two halves interleaved, so a partial recording covers both
ORDER = [n for pair in zip(setups.CHOOSE, setups.HELD_OUT) for n in pair] + setups.FRESH + setups.FRESH2 + setups.FRESH3


def cmd_record(args) -> int:
    for name in args.setups or ORDER:
        if result_path(name).exists() and not args.again:
            continue
        started = time.perf_counter()
        try:
            out = run_task_child(name, {"record": True})
        except SystemExit as failure:  # one setup's failure is reported; the others still record
            print(f"{name}: FAILED {str(failure)[-1500:]}", flush=True)
            continue
        out["machine"] = machine()
        out["record_seconds"] = round(time.perf_counter() - started, 1)
        save(out)
        key, mean, sd = scoring.best(out)
        lib = out["library"]
        shown = "none" if lib["suggestion"] is None else f"{lib['suggestion']:.3g}"
        print(f"{name}: {out['record_seconds']:.0f} s, best grid rate {key} (mean {mean:.4g}, SD {sd:.2g}), "
              f"library {shown} ({lib['stop_reason'].split(':')[0]}, {lib['cost']}x the curve)", flush=True)
    return 0


def train_missing(r: dict, rules: dict, with_lr_free: bool) -> None:
    """Train, with every seed, the suggested rates and LR-free optimizers `r` lacks; store them."""
    name = r["setup"]
    seeds = [str(s) for s in r["seeds"]]
    keys = sorted({rate_key(lr) for lr in rules.values() if lr is not None}
                  - {k for k, v in r["trained"].items() if all(s in v for s in seeds)}, key=float)
    started = time.perf_counter()
    if keys:
        for k, runs in run_task_child(name, {"train": keys}).items():
            r["trained"].setdefault(k, {}).update(runs)
        save(r)
    free = [n for n in scoring.LR_FREE if not all(s in r.get("lr_free", {}).get(n, {}) for s in seeds)
            and "error" not in r.get("lr_free", {}).get(n, {})]
    if with_lr_free and free:
        for n, runs in run_task_child(name, {"lr_free": free}).items():
            r.setdefault("lr_free", {}).setdefault(n, {}).update(runs)
        save(r)
    if keys or (with_lr_free and free):
        print(f"  {name}: trained {', '.join(keys) or 'no rate'}"
              f"{' and ' + ', '.join(free) if with_lr_free and free else ''} "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def complete(outcomes: dict) -> bool:
    """Every rule's suggested rate trained with every seed, and the LR-free optimizers run."""
    return (all(value is not None or lr is None for lr, value, _, _ in outcomes.values())
            and all(f"lr-free: {n}" in outcomes for n in scoring.LR_FREE))


def cmd_score(args) -> int:
    names = args.setups or ORDER
    results = load_results(names)
    missing = [n for n in names if n not in results]
    if missing:
        print(f"not recorded yet (run `record`): {', '.join(missing)}", file=sys.stderr)
    if args.no_lr_free:
        scoring.LR_FREE = ()  # neither trained nor required
    for n, r in results.items():
        if args.rerun_library:
            r.setdefault("library_history", []).append(r["library"])
            r["library"] = run_task_child(n, {"library": True})
            save(r)
        if not args.no_train:
            try:
                train_missing(r, scoring.suggestions(r), not args.no_lr_free)
            except SystemExit as failure:
                print(f"{n}: training FAILED {str(failure)[-1500:]}", file=sys.stderr, flush=True)
    per_setup = {n: scoring.outcomes(r, scoring.suggestions(r)) for n, r in results.items()}
    out = [f"Command: `python -m benchmarks.lr_tasks.benchmark record && python -m benchmarks.lr_tasks.benchmark "
           f"score{' --rerun-library' if args.rerun_library else ''}` ({time.strftime('%Y-%m-%d')})",
           f"Machine: {machine()}", "",
           f"A hit: the 3-seed mean at the suggested rate within max({scoring.HIT_POINTS} points, one seed-SD of "
           f"the best grid rate) of the best grid rate's 3-seed mean accuracy; for regression a validation loss "
           f"at most {1 + scoring.HIT_RELATIVE:g} x the best grid rate's. No suggestion is a miss. Gaps are in "
           "tolerances (a hit is <= 1), averaged where the suggestion trained to a finite score; the family "
           "columns give hits and (mean gap). Cost: the library's default `lr_range_test` time over the curve "
           "alone (1 for rules read off the curve). LR-free optimizers: `benchmarks/lr_tasks/lr_free/` at "
           "their defaults, the same budget and seeds.", ""]
    columns = [scoring.DEFAULT, scoring.FAST, "mnistlab middle", "fastai valley", "fastai minimum", "lightning",
               "torch-lr-finder", *(f"lr-free: {n}" for n in scoring.LR_FREE)]
    for title, half in (("FRESH3: declared and recorded after FRESH2 was read, the noise floor measured and the longer "
                         "test after a flat one added (the report for the library as it stands)", setups.FRESH3),
                        ("FRESH2: declared and recorded after the search's settings were chosen on the other 30 "
                         "(the report; read since for one change, the longer test after a flat one, which can "
                         "only give a rate where there was none)", setups.FRESH2),
                        ("FRESH: declared and recorded after the first choice of the search's settings on "
                         "CHOOSE and HELD_OUT, read since", setups.FRESH),
                        ("HELD_OUT: held out from the first choice of rules, read since", setups.HELD_OUT),
                        ("CHOOSE: where rules may be chosen or tuned", setups.CHOOSE),
                        ("All setups", [s.name for s in setups.SETUPS])):
        done = [n for n in half if n in results and complete(per_setup[n])]
        if not done:
            continue
        out += [f"### {title}: {len(done)} of {len(half)} setups scored", "",
                scoring.summary(results, done, per_setup), ""]
        if half not in setups.SETS.values():  # the whole benchmark gets its summary only
            continue
        out += [scoring.detail(results, done, per_setup, columns), ""]
    out += ["### What looks wrong in the library's default suggestion", ""]
    out += [f"- {line}" for line in scoring.flags(results, list(results))] or ["- nothing flagged"]
    out += ["", "### The setups", "", scoring.setups_table(results)]
    times = [(n, r.get("record_seconds")) for n, r in results.items()]
    out += ["", "Record time per setup (s): " + ", ".join(f"{n} {t:.0f}" for n, t in times if t)]
    report = "\n".join(out)
    print(report)
    REPORT_MD.write_text(report + "\n")
    return 0


def cmd_probes(args) -> int:
    """Record the probe table of every setup that lacks one (`benchmarks.lr_tasks.probe_table`)."""
    for n, r in load_results(args.setups or ORDER).items():
        if "probe_table" in r and not args.again:
            continue
        started = time.perf_counter()
        r["probe_table"] = run_task_child(n, {"probe_table": r["curve"]})
        save(r)
        print(f"{n}: probe table of {len(r['probe_table']['losses'])} rates in {time.perf_counter() - started:.0f} s",
              flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="record curves, the library's suggestion and the grid (skips recorded ones)")
    rec.add_argument("--again", action="store_true", help="record setups that have results again")
    sc = sub.add_parser("score", help="score every rule on the recorded setups")
    sc.add_argument("--no-train", action="store_true", help="report only what is already trained")
    sc.add_argument("--no-lr-free", action="store_true", help="train no LR-free optimizer")
    sc.add_argument("--rerun-library", action="store_true",
                    help="run the current library's lr_range_test on every setup first")
    pr = sub.add_parser("probes", help="record the probe table of setups that lack one")
    pr.add_argument("--again", action="store_true", help="record it again where it exists")
    for q in (rec, sc, pr):
        q.add_argument("--setups", nargs="+", choices=[s.name for s in setups.SETUPS])
    args = p.parse_args(argv)
    return {"record": cmd_record, "score": cmd_score, "probes": cmd_probes}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
