"""Scoring LR suggestion rules on the recorded setups (`suggestion_quality.py score`).

Every rule is applied to each setup's recorded range-test curve as the
library (or the anchor's library) would have seen it, its suggestion is
looked up among the trained rates (trained first when missing), and its gap
to the best grid rate is tabulated separately for the half the default was
chosen on and the held-out half.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from mnistlab.lr_range import validation as lr_validation
from mnistlab.lr_range.finder import DEFAULT_RULE

from benchmarks.common.paths import RESULTS_DIR
from benchmarks.lr_quality import anchors, setups
from benchmarks.lr_quality.records import (HIT, best_rate_key, load_results, machine, probe_missing, rate_key,
                                           train_missing)

REPORT_MD = RESULTS_DIR / "lr_suggestion_quality.md"


def library_view(r: dict, factor: float = 4.0):
    """The curve as `lr_range_test` would have recorded it: up to its own stop."""
    from mnistlab.lr_range.rules import diverged

    lrs = np.asarray(r["curve"]["lr"], dtype="float64")
    losses = np.asarray([np.nan if v is None else v for v in r["curve"]["loss"]], dtype="float64")
    for i in range(len(losses)):
        if not np.isfinite(losses[i]) or diverged(losses[:i + 1], factor):
            return lrs[:i + 1], losses[:i + 1], True
    return lrs, losses, False


MISSING_PROBES = {}  # setup -> rates the validated search wanted that `record` did not train


def probe_losses(r: dict, steps: int) -> dict:
    """{lattice index k: held-out loss} of the recorded probes of `steps` steps: `record`'s (read after
    `PROBE_STEPS`) or `short-probes`' (after `SHORT_PROBE_STEPS`); {} when neither read them then."""
    for table, read_at in ((r["probes"], r.get("probe_steps", [])),
                           (r.get("short_probes", {}).get("probes", {}), r.get("short_probes", {}).get("steps", []))):
        if steps in read_at:
            i = read_at.index(steps)
            return {round(4 * math.log10(float(k))): v["val_loss"][i] for k, v in table.items()}
    return {}


def validated(r: dict, **options):
    """mnistlab's `validated` rule (`mnistlab.lr_range.validation.validated`, as `lr_range_test` runs
    it) on the recorded probes: `record` trained probes at every quarter-decade rate from the
    curve's blow-up down 3.5 decades, on the same held-out slice the library uses, and read
    them after `PROBE_STEPS` steps (`short-probes` after `SHORT_PROBE_STEPS`). A rate the search
    wants that was not recorded counts as a probe that blew up (and is listed). `options` go to
    the search as `lr_range_test` passes them (`mnistlab.lr_range.validation.FAST`, for example)."""
    from mnistlab.lr_range import rules as lr_rules
    lrs, losses, stopped = library_view(r)
    suggestions, reasons, info = lr_rules.read_curve(lrs, losses, stopped_early=stopped)
    tables = {}

    def loss_at(lr, steps):
        if steps not in tables:
            tables[steps] = probe_losses(r, steps)
            if not tables[steps]:
                raise SystemExit(f"{r['setup']}: no probes of {steps} steps recorded: run "
                                 "`python -m benchmarks.lr_quality.suggestion_quality short-probes`")
        k = round(4 * math.log10(lr))
        if k not in tables[steps]:
            MISSING_PROBES.setdefault(r["setup"], []).append(lr)
        return tables[steps].get(k)

    # `record` did not store the untrained model's held-out loss, which the library's check "did
    # the best probe learn at all?" on a flat curve compares with; every recorded setup learns at
    # some rate, so the check is taken as passed here.
    return lr_validation.validated(lrs, suggestions["min"], info, stopped, loss_at, lambda: math.inf,
                                   reasons.get("min", ""), **options)[0]


def library_suggestions(r: dict) -> dict:
    """mnistlab's rules on the recorded curve, as `lr_range_test` would have read it."""
    from mnistlab.lr_range import rules as lr_rules
    lrs, losses, stopped = library_view(r)
    return lr_rules.read_curve(lrs, losses, stopped_early=stopped)[0]


def all_suggestions(r: dict) -> dict:
    out = {"mnistlab validated": validated(r),
           # lr_range_test(validate="fast"): 16-step probes (docs/lr-range-test.md, "Cost")
           "mnistlab validate=\"fast\"": validated(r, **lr_validation.FAST)}
    out.update({f"mnistlab {k}": v for k, v in library_suggestions(r).items()})
    for name, fn in anchors.ANCHORS.items():
        out[name] = fn(r["curve"]["lr"], r["curve"]["loss"])
    return out


def best_grid(r: dict):
    key = best_rate_key(r)
    return float(key), r["trained"][key]["val_accuracy"]


def accuracy_at(r: dict, lr):
    """Validation accuracy at `lr` if trained, else None."""
    if lr is None:
        return None
    t = r["trained"].get(rate_key(lr))
    return None if t is None else t["val_accuracy"]


def seed_floor(r: dict):
    """The lowest accuracy the best grid rate itself reached with another seed
    (`benchmarks/lr_quality/noise_floor.py`), or None where it was not measured."""
    noise = r.get("noise")
    if not noise or noise.get("rate") != best_rate_key(r):
        return None
    return min(v["val_accuracy"] for v in noise["seeds"].values())


def table(results: dict, names: list[str], suggestions: dict) -> tuple[str, dict]:
    """Markdown: per rule how often it suggested a rate, its hits (a setup without a
    suggestion is a miss), and its mean and worst gap where it suggested one; and how
    often it did at least as well as the best grid rate's own worst re-run with another
    seed, or within 0.3 points ("as good as a re-run"), where the noise floor was measured."""
    stats = {}
    measured = [n for n in names if seed_floor(results[n]) is not None]
    for rule in next(iter(suggestions.values())):
        gaps, rerun = [], 0
        for n in names:
            _, best = best_grid(results[n])
            acc = accuracy_at(results[n], suggestions[n][rule])
            if acc is not None:
                gaps.append(100 * (best - acc))
                floor = seed_floor(results[n])
                rerun += floor is not None and 100 * (best - acc) <= max(HIT, 100 * (best - floor))
        hits = sum(g <= HIT for g in gaps)
        stats[rule] = (hits, float(np.mean(gaps)) if gaps else math.inf,
                       float(np.max(gaps)) if gaps else math.inf, len(gaps), rerun)
    order = sorted(stats, key=lambda k: (-stats[k][0], stats[k][1]))
    lines = [f"| rule | suggested a rate | within {HIT} points of the best grid rate | mean gap (points) | worst gap "
             f"| as good as a re-run of the best rate ({len(measured)} setups) |",
             "|---|---:|---:|---:|---:|---:|"]
    for rule in order:
        hits, mean, worst, found, rerun = stats[rule]
        lines.append(f"| {rule} | {found}/{len(names)} | {hits}/{len(names)} ({100 * hits / len(names):.0f}%) | "
                     f"{mean:.2f} | {worst:.2f} | {rerun}/{len(measured)} |")
    return "\n".join(lines), stats


def detail(results: dict, names: list[str], suggestions: dict, rules: list[str]) -> str:
    lines = ["| setup | best grid rate (acc %) | " + " | ".join(rules) + " |",
             "|---|---|" + "---|" * len(rules)]
    for n in names:
        lr, best = best_grid(results[n])
        cells = []
        for rule in rules:
            s = suggestions[n][rule]
            acc = accuracy_at(results[n], s)
            cells.append("none" if s is None else f"{s:.2g} (not trained)" if acc is None
                         else f"{s:.2g} ({100 * acc:.1f})")
        lines.append(f"| {n} | {lr:.2g} ({100 * best:.2f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_score(args) -> int:
    scored = [s.name for s in setups.SETUPS]
    results = load_results(scored)
    missing = [name for name in scored if name not in results]
    if missing:
        print(f"not recorded yet (run `record`): {', '.join(missing)}", file=sys.stderr)
    suggestions = {n: all_suggestions(r) for n, r in results.items()}
    for _ in range(lr_validation.EXTEND + 1):  # record probes the search wanted, then search again
        if not MISSING_PROBES or args.no_train:
            break
        probe_missing(results, dict(MISSING_PROBES), args.data_dir)
        MISSING_PROBES.clear()
        suggestions = {n: all_suggestions(r) for n, r in results.items()}
    if not args.no_train:
        train_missing(results, {n: [v for v in s.values() if v is not None] for n, s in suggestions.items()},
                      args.data_dir)
    out = [f"Command: `python -m benchmarks.lr_quality.suggestion_quality record && "
           f"python -m benchmarks.lr_quality.suggestion_quality score` ({time.strftime('%Y-%m-%d')})",
           f"Machine: {machine()}", "",
           "A hit: validation accuracy within 0.3 points of the best grid rate's. \"As good as a re-run\": within "
           "0.3 points, or at least the lowest accuracy the best grid rate itself reached with one of 3 other "
           "seeds (`python -m benchmarks.lr_quality.noise_floor`); the best rate itself would score 100% there.", ""]
    for title, names, per_setup in (
            ("Fourth set: recorded before a screen of variants of the search (none was taken), used for no "
             "choice", setups.FOURTH, True),
            ("Third set: held out from every choice (the `validated` default's report)", setups.NEXT, True),
            ("Second set: held out when `middle` was chosen; with the first, where `validated`'s search "
             "was chosen", setups.REPORT, True),
            ("First set: where the defaults were chosen", setups.CHOOSE, True),
            ("Both held-out sets (third and fourth)", setups.HELD_OUT, False),
            ("All four sets", scored, False)):
        names = [n for n in names if n in results]
        if not names:
            continue
        text, stats = table(results, names, {n: suggestions[n] for n in names})
        rules = sorted(stats, key=lambda k: (-stats[k][0], stats[k][1]))
        out += [f"### {title}: {len(names)} setups", "", text, ""]
        if per_setup:
            default = f"mnistlab {DEFAULT_RULE}"  # always a column, ranked where it is or not
            cols = rules[:6] if default in rules[:6] else [default, *rules[:5]]
            out += [detail(results, names, suggestions, cols), ""]
    missing = [f"{n} ({', '.join(f'{lr:.3g}' for lr in lrs)})" for n, lrs in MISSING_PROBES.items()]
    out.append("Probes the validated search wanted that `record` had not trained (counted as blown up): "
               + ("; ".join(missing) if missing else "none") + ".")
    report = "\n".join(out)
    print(report)
    REPORT_MD.write_text(report + "\n")
    return 0

