"""Scoring LR suggestions on the lr_tasks records: the hit rule, every rule's suggestion, the tables.

A setup's ground truth is its grid: each rate trained with every seed of
`setups.SEEDS`; the best grid rate is the one with the best 3-seed mean. A
suggestion (trained with the same seeds, at exactly the suggested rate) hits when
its 3-seed mean is

- classification: within max(`HIT_POINTS`, one seed-SD of the best grid rate)
  points of accuracy of the best grid rate's mean;
- regression: a validation loss within `HIT_RELATIVE` of the best grid rate's
  mean loss (at most 1.1 x it).

No suggestion (None) is a miss. A gap is measured in units of that tolerance
("tolerances": a hit is a gap of at most 1), so classification and regression
setups average together; the per-setup tables give points and percent.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.lr_quality import anchors
from benchmarks.lr_quality.records import rate_key
from benchmarks.lr_tasks import setups
from benchmarks.lr_tasks.trainer import best_key, mean_score

HIT_POINTS = 0.3      # points of validation accuracy, at least
HIT_RELATIVE = 0.10   # of the best validation loss, for regression
DEFAULT = "mnistlab default (validated)"
LR_FREE = ("prodigy", "dadapt_adam", "schedulefree_adamw")


def tolerance(regression: bool, best_mean: float, best_sd: float) -> float:
    """How far below the best grid rate a hit may be: points (classification) or loss (regression)."""
    return HIT_RELATIVE * best_mean if regression else max(HIT_POINTS, best_sd)


def gap(regression: bool, best_mean: float, value) -> float:
    """How much worse `value` (a 3-seed mean) is than the best: points of accuracy, or excess loss."""
    if value is None or not math.isfinite(value):
        return math.inf
    return value - best_mean if regression else best_mean - value


def is_hit(regression: bool, best_mean: float, best_sd: float, value) -> bool:
    return gap(regression, best_mean, value) <= tolerance(regression, best_mean, best_sd) + 1e-12


def best(r: dict) -> tuple[str, float, float]:
    """The best grid rate's key, its 3-seed mean and its seed-SD."""
    regression = r["spec"]["regression"]
    key = best_key(r["grid"], r["trained"], regression)
    scores = [v["score"] for v in r["trained"][key].values()]
    return key, mean_score(r["trained"][key], regression), float(np.std(scores, ddof=1))


def value_at(r: dict, runs: dict | None):
    """The 3-seed mean of `runs` ({seed: run}), or None when not every seed ran."""
    if not runs or any(str(s) not in runs for s in r["seeds"]):
        return None
    return mean_score({s: runs[str(s)] for s in r["seeds"]}, r["spec"]["regression"])


FAST = "mnistlab validate=\"fast\" (replayed)"


def replayed(r: dict, **options):
    """The library's validated search with `options` (`mnistlab.lr_range.validation.validated`), replayed on
    the setup's probe table (`benchmarks/lr_tasks/probe_table.py`): the rate `lr_range_test` would suggest
    with those settings, without running it. None without a probe table."""
    from benchmarks.lr_tasks.probe_table import Replay

    replay = Replay.of(r)
    return None if replay is None else replay.run(**options)[0]


def suggestions(r: dict) -> dict:
    """Rule -> suggested rate (None where the rule can't read the curve): the library's default as recorded
    (or re-run: `score --rerun-library`), the library's curve rules and the anchors on the stored raw curve."""
    from benchmarks.lr_quality.scoring import library_suggestions

    from mnistlab.lr_range.validation import FAST as fast

    out = {DEFAULT: r["library"]["suggestion"], FAST: replayed(r, **fast)}
    out.update({f"mnistlab {k}": v for k, v in library_suggestions(r).items()})
    for name, fn in anchors.ANCHORS.items():
        out[name] = fn(r["curve"]["lr"], r["curve"]["loss"])
    return out


def outcomes(r: dict, rules: dict) -> dict:
    """Rule (or `lr-free: NAME`) -> (suggested rate or None, 3-seed mean or None, gap, hit)."""
    regression = r["spec"]["regression"]
    _, best_mean, best_sd = best(r)
    out = {}
    for rule, lr in rules.items():
        value = None if lr is None else value_at(r, r["trained"].get(rate_key(lr)))
        out[rule] = (lr, value, gap(regression, best_mean, value), is_hit(regression, best_mean, best_sd, value))
    for name in LR_FREE:
        runs = r.get("lr_free", {}).get(name)
        value = value_at(r, runs)
        if value is not None or (runs and "error" in runs):  # an optimizer that failed: a miss
            out[f"lr-free: {name}"] = (None, value, gap(regression, best_mean, value),
                                       is_hit(regression, best_mean, best_sd, value))
    return out


def cost(r: dict, rule: str) -> float:
    """Time of the rule over the curve alone: the default's measured ratio; 1 for curve rules."""
    return r["library"]["cost"] if rule == DEFAULT else 1.0


def _in_tolerances(r: dict, g: float) -> float:
    regression = r["spec"]["regression"]
    _, best_mean, best_sd = best(r)
    return g / tolerance(regression, best_mean, best_sd)


def summary(results: dict, names: list[str], per_setup: dict) -> str:
    """Markdown: per rule, hits overall and per family, mean gap (tolerances; misses without a rate left out)."""
    family = {n: results[n]["spec"]["family"] for n in names}
    families = [f for f in setups.FAMILIES if f in family.values()]
    rules = []
    for n in names:
        rules += [k for k in per_setup[n] if k not in rules]
    rows = []
    for rule in rules:
        measured = [n for n in names if rule in per_setup[n] and (per_setup[n][rule][1] is not None
                                                                   or per_setup[n][rule][0] is None)]
        if len(measured) < len(names):
            continue  # not every setup has this rule's runs yet
        hits = sum(per_setup[n][rule][3] for n in names)
        gaps = [_in_tolerances(results[n], per_setup[n][rule][2]) for n in names
                if math.isfinite(per_setup[n][rule][2])]
        fam = []
        for f in families:
            in_f = [n for n in names if family[n] == f]
            g = [_in_tolerances(results[n], per_setup[n][rule][2]) for n in in_f
                 if math.isfinite(per_setup[n][rule][2])]
            fam.append(f"{sum(per_setup[n][rule][3] for n in in_f)}/{len(in_f)}"
                       + (f" ({np.mean(g):.1f})" if g else ""))
        # a replayed search was not timed here (the fast search's cost: docs/lr-range-test.md, "Cost")
        costs = [] if rule.startswith("lr-free") or rule == FAST else [cost(results[n], rule) for n in names]
        rows.append((-hits, np.mean(gaps) if gaps else math.inf, rule, hits, len(gaps), fam,
                     f"{np.median(costs):.1f}x" if costs else "-"))
    lines = [f"| rule | hits ({len(names)} setups) | mean gap (tolerances) | finite | "
             + " | ".join(f"{f}: hits (mean gap)" for f in families) + " | cost (median, x curve) |",
             "|---|---:|---:|---:|" + "---:|" * len(families) + "---:|"]
    for _, mean_gap, rule, hits, found, fam, c in sorted(rows, key=lambda t: t[:3]):
        lines.append(f"| {rule} | {hits}/{len(names)} ({100 * hits / len(names):.0f}%) | {mean_gap:.2f} | "
                     f"{found}/{len(names)} | " + " | ".join(fam) + f" | {c} |")
    return "\n".join(lines)


def _cell(r: dict, outcome) -> str:
    lr, value, _, hit = outcome
    regression = r["spec"]["regression"]
    rate = "" if lr is None else f"{lr:.2g} "
    if lr is None and value is None:
        return "none"
    if value is None:
        return f"{rate}(not trained)"
    shown = f"{value:.4g}" if regression else f"{value:.1f}"
    return f"{rate}({shown}){' hit' if hit else ''}"


def detail(results: dict, names: list[str], per_setup: dict, columns: list[str]) -> str:
    lines = ["| setup | family | backend | best grid rate (3-seed mean, SD) | library stop | "
             + " | ".join(columns) + " |", "|---|---|---|---|---|" + "---|" * len(columns)]
    for n in names:
        r = results[n]
        key, mean, sd = best(r)
        shown = f"{mean:.4g}, {sd:.2g} (loss)" if r["spec"]["regression"] else f"{mean:.1f}, {sd:.2f} (acc %)"
        stop = r["library"]["stop_reason"].split(":")[0]
        cells = [_cell(r, per_setup[n][c]) if c in per_setup[n] else "-" for c in columns]
        lines.append(f"| {n} | {r['spec']['family']} | {r['backend']} | {key} ({shown}) | {stop} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def flags(results: dict, names: list[str]) -> list[str]:
    """What looks wrong in the library's default suggestion: none, a 'flat' curve, far from the best rate."""
    out = []
    for n in names:
        lib = results[n]["library"]
        key, _, _ = best(results[n])
        s = lib["suggestion"]
        if s is None:
            out.append(f"{n}: no suggestion ({lib.get('reason')}); stop: {lib['stop_reason']}")
        elif abs(math.log10(s / float(key))) >= 1:
            out.append(f"{n}: suggested {s:.3g}, {abs(math.log10(s / float(key))):.1f} decades from the best grid "
                       f"rate {key}; stop: {lib['stop_reason']}")
        flat = [k for k, v in lib.get("reasons", {}).items() if v and "flat" in v]
        if flat:
            out.append(f"{n}: curve rules {', '.join(flat)} read the curve as flat")
    return out


def setups_table(results: dict) -> str:
    """Markdown: every setup as declared, its half, and its budget in steps where recorded."""
    lines = ["| setup | half | family | backend | loss | optimizer | batch | epochs (steps) | train / val examples "
             "| also |", "|---|---|---|---|---|---|---:|---|---|---|"]
    for s in setups.SETUPS:
        r = results.get(s.name)
        steps = f" ({s.epochs * math.ceil(r['n_train'] / s.batch_size)})" if r else ""
        sizes = f"{r['n_train']} / {r['n_val']}" if r else "not recorded"
        extra = [t for t in s.traits if t not in ("gradient clipping", "weight decay")] + ([f"clipnorm {s.clipnorm:g}"] if s.clipnorm else []) + (
            [f"weight decay {s.weight_decay:g}"] if s.weight_decay else [])
        half = next(h for h, names in setups.SETS.items() if s.name in names)
        lines.append(f"| {s.name} | {half} | {s.family} | {s.backend} "
                     f"| {s.loss} | {s.optimizer} | {s.batch_size} | {s.epochs}{steps} | {sizes} | "
                     f"{', '.join(extra)} |")
    return "\n".join(lines)
