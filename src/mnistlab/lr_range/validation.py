"""The validated suggestion: short trainings at the rates the curve points to, kept by held-out loss.

A range-test curve says where the loss falls and where it blows up, not which
constant rate trains best; every rule that reads one rate off it (ours,
fastai's, Lightning's...) landed within 0.3 points of the best grid rate in
at most half of the setups of `benchmarks/lr_quality/suggestion_quality.py`
(docs/lr-range-test.md, "Rules and the evidence for the default"). So the
default suggestion is checked by training: from the model's starting state,
`PROBE_STEPS` steps at each of a few rates, each scored by its loss on held-out
data, the best kept. The search (`search`), on a quarter-decade lattice of
rates (`10 ** (k / 4)`):

1. `CANDIDATES` rates `SPACING` lattice steps apart, the first `OFFSET` steps
   above the curve's lowest point (`lr_rules` `min`), never above the last
   rate the test reached before it diverged;
2. while the lowest held-out loss lies at an edge of the rates tried, one
   more rate past that edge (at most `EXTEND` times; never above that
   ceiling, nor below the test's first rate);
3. the suggestion is the best rate divided by `SHRINK`: a whole training is
   longer than a probe and wants a lower rate.

A curve too flat to read is searched below its bound instead (`search_below`).

The held-out data is `validation_data` when given (at most `HOLD_OUT`
examples of it are used), else the last tenth of the training arrays (at
most `HOLD_OUT` examples, the slice Keras' `validation_split` takes), which
the probes then do not train on.

The settings are issue 28's, measured on both benchmarks (docs/lr-range-test.md,
"Rules and the evidence for the default" and "Beyond MNIST"). Cheaper settings
(`FAST`) were chosen by replaying this module's own search, with every
combination of them, on probes recorded at six lengths
(`python -m benchmarks.lr_tasks.search_choice`); trained at the rates they
suggest, they hit fewer tasks, so they are an option, not the default. Scored
by training (`search_choice --trained`: 276 settings under 3x the curve, 70
setups), no cheaper setting matched the default (docs/lr-range-test.md, "Cost").
"""

from __future__ import annotations

import math

import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.lr_range.batches import is_arrays, num_examples

PROBE_STEPS = 100   # steps of each probe
CANDIDATES = 3      # lattice rates from OFFSET steps above the curve's lowest point down
SPACING = 1         # lattice steps (quarter decades) between neighbouring probes
OFFSET = 0          # the first probe's rate: this many lattice steps above the lowest point's
EXTEND = 2          # more probes, one at a time, while the best lies at an edge
SHRINK = 1.5        # the suggestion is the best probe's rate / SHRINK
FLAT_PROBE_STEPS = 100  # a flat curve's probes (a short probe hardly moves a flat loss)
FLAT_SPACING = 4    # a flat curve that never blew up: probes a decade apart,
FLAT_EXTEND = 2     # with this many more allowed past the lowest
# `lr_range_test(validate="fast")`: 3-4 probes of 16 steps, about 1.8x the curve instead of 4-6x, chosen
# by replaying every setting on recorded probes; trained, it hits fewer of the benchmark's tasks
# (17 against 23 of 30 on 3-seed means; docs/lr-range-test.md, "Cost"), so it is not the default
FAST = dict(steps=16, candidates=3, spacing=1, offset=1, extend=1, shrink=2.0)
HOLD_OUT = 2000     # held-out examples at most (and a tenth of the training arrays)
EVAL_CHUNK = 1000   # held-out examples per call when scoring a probe
BELOW_DIVERGENCE = 0.5  # decades: no probe nearer than this to the rate a flat curve diverged at


def lattice_rate(k: int) -> float:
    """The k-th rate of the quarter-decade lattice, `10 ** (k / 4)`."""
    return 10 ** (k / 4)


def search(low_point: float, loss_at, *, ceiling: float = math.inf, floor: float = 0.0, steps=None,
           candidates=None, spacing=None, offset=None, extend=None, shrink=None):
    """Pick a rate by held-out loss, probing as few lattice rates as the search needs.

    Args:
        low_point: the rate at the curve's lowest point.
        loss_at: `loss_at(rate, steps)` -> the held-out loss after a probe of `steps`
            steps at `rate` (None or a non-finite value when the probe blew up).
        ceiling, floor: no probe above / below these rates.
        steps, candidates, spacing, offset, extend, shrink: see the module docstring
            (None: the module's `PROBE_STEPS`, `CANDIDATES`... as they are when called).

    Returns:
        `(rate, tried)`: the suggestion (None when every probe blew up) and
        `{rate: held-out loss}` of every probe, in the order run.
    """
    steps = PROBE_STEPS if steps is None else steps
    candidates = CANDIDATES if candidates is None else candidates
    spacing = SPACING if spacing is None else spacing
    offset = OFFSET if offset is None else offset
    extend = EXTEND if extend is None else extend
    shrink = SHRINK if shrink is None else shrink
    top = math.floor(4 * math.log10(low_point) + 1e-9) + offset
    while lattice_rate(top) > ceiling * (1 + 1e-9) and lattice_rate(top - 1) >= floor:
        top -= 1
    tried = {}

    def probe(k):
        loss = loss_at(lattice_rate(k), steps)
        tried[k] = float(loss) if loss is not None and math.isfinite(loss) else math.inf

    for i in reversed(range(candidates)):  # from the lowest up
        if lattice_rate(top - i * spacing) >= floor:
            probe(top - i * spacing)
    for _ in range(extend):
        if not tried:
            break
        finite = {k: v for k, v in tried.items() if math.isfinite(v)}
        best = min(finite, key=finite.get) if finite else min(tried)  # all blew up: go lower
        if finite and best == max(tried) and lattice_rate(best + spacing) <= ceiling * (1 + 1e-9):
            probe(best + spacing)
        elif best == min(tried) and lattice_rate(best - spacing) >= floor:
            probe(best - spacing)
        else:
            break
    finite = {k: v for k, v in tried.items() if math.isfinite(v)}
    rate = lattice_rate(min(finite, key=finite.get)) / shrink if finite else None
    return rate, {lattice_rate(k): v for k, v in tried.items()}


def starting_point(lrs, low_point, info: dict, stopped_early: bool):
    """The rate the probes start from: the curve's lowest point (`low_point`, the `min` rule's
    rate); its last rate when the test completed with the loss still falling there; None when the
    curve shows neither (flat, or too short). `info` is `read_curve`'s."""
    if low_point is not None:
        return low_point
    if not info.get("flat") and not stopped_early and info.get("i_min") == info["n"] - 1:
        return float(lrs[info["n"] - 1])
    return None


def validated(lrs, low_point, info: dict, stopped_early: bool, loss_at, start_loss, why_not: str, **options):
    """The validated suggestion on a read curve, as `lr_range_test` runs it.

    `search_curve` from `starting_point`, or `search_below` on a flat curve (`start_loss()`,
    called only then, is the untrained model's held-out loss). `why_not` is the curve's own
    reason for having no lowest point. `options` go to `search` (`FAST`, for example).

    Returns:
        `(rate, tried, reason)`: reason is None when there is a rate.
    """
    start = starting_point(lrs, low_point, info, stopped_early)
    if start is not None:
        rate, tried = search_curve(lrs, start, info["n"], stopped_early, loss_at, **options)
        why = None if rate is not None else ("every probe's held-out loss was non-finite: the model diverges "
                                             "at these rates; lower min_lr or check the model")
        return rate, tried, why
    if info.get("flat"):
        return search_below(lrs, info["n"], loss_at, start_loss=start_loss(), why_flat=why_not,
                            stopped_early=stopped_early, shrink=options.get("shrink"))
    return None, {}, why_not


def search_curve(lrs, low_point, usable: int, stopped_early: bool, loss_at, **options):
    """`search` bounded by the range test's own curve, as `lr_range_test` runs it: no probe
    above the last usable rate when the test stopped on divergence (else its last rate), nor
    below its first rate. `usable` is `read_curve`'s count of usable points (`info["n"]`)."""
    ceiling = lrs[usable - 1] if stopped_early else lrs[-1]
    return search(low_point, loss_at, ceiling=ceiling, floor=lrs[0], **options)


def search_below(lrs, usable: int, loss_at, *, start_loss: float, why_flat: str, stopped_early: bool = True,
                 shrink=None):
    """The validated search when the curve was too flat to read.

    The curve gives no lowest point. If the test diverged, the rate it diverged at bounds the
    search from above; if it never did, `max_lr` does. A short probe can survive a rate that a
    whole training does not, so no probe runs within `BELOW_DIVERGENCE` decades of that bound
    (where a readable curve's lowest point usually lies). Below a curve that diverged the
    probes go down a quarter of a decade at a time, as `search` does; below one that never
    did, nothing says how far down the model learns, so they go down a decade at a time
    (`FLAT_SPACING`) with `FLAT_EXTEND` more steps allowed. A rate is kept only if its probe
    lowered the held-out loss below the model's starting loss by more than `lr_rules.MIN_DROP`
    of it; otherwise no rate is suggested, since no rate was seen to learn.

    Returns:
        `(rate, tried, reason)`: reason is None when there is a rate.
    """
    from mnistlab.lr_range.rules import MIN_DROP, more_steps

    bound = lrs[usable - 1] if stopped_early else lrs[-1]
    ceiling = bound / 10 ** BELOW_DIVERGENCE
    options = {} if stopped_early else {"spacing": FLAT_SPACING, "extend": EXTEND + FLAT_EXTEND}
    rate, tried = search(ceiling, loss_at, ceiling=ceiling, floor=lrs[0], steps=FLAT_PROBE_STEPS, offset=0,
                         shrink=shrink, **options)
    best = min(tried.values(), default=math.inf)
    learned = start_loss - MIN_DROP * abs(start_loss) if math.isfinite(start_loss) else math.inf
    if rate is not None and best < learned:
        return rate, tried, None
    rates = ", ".join(f"{r:.2g}" for r in sorted(tried))
    longer = more_steps(usable)
    # The plateau clause: a CNN trained with momentum (benchmarks/lr_tasks, stripes32-sepconv-momentum-128)
    # learned only after 100+ steps at one rate; with steps=400 its curve was readable and the suggestion
    # (0.12) next to its best grid rate (0.1) (benchmarks/log/lr-search-trained-2026-12-06.md), so
    # `lr_range_test` runs a default-length test that ends here once more with `LONGER_STEPS` (rules).
    return None, tried, (f"{why_flat}; probes at lr {rates}, below that, did not lower the held-out loss "
                         f"(from {start_loss:.4g}) within {FLAT_PROBE_STEPS} steps either: the model learns "
                         "nothing at the rates it can stand, or only after a plateau longer than that; "
                         "common causes are inputs on very different scales (standardise them), targets "
                         "the loss does not fit (check the loss and the labels), or a slow start (a longer "
                         f"test, steps={longer} or --steps {longer}, shows where it begins to learn)")


def held_out(x, y, validation_data):
    """`(x_fit, y_fit, x_val, y_val, why)`: what the probes train on and are scored on.

    `x_val` is None (and `why` says why) when the probes can't run: batched
    data (a data set or iterable) without `validation_data`, a one-pass
    iterator, or fewer than 10 training examples.
    """
    if y is None and hasattr(x, "__next__"):
        return x, y, None, None, "a one-pass iterator can't be replayed for the probes: pass arrays or a data set"
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            if hasattr(validation_data, "__iter__") or hasattr(validation_data, "as_numpy_iterator"):
                return x, y, validation_data, None, None  # a data set: Keras' evaluate reads it
            raise MnistlabError(
                f"validation_data must be (x_val, y_val) arrays or a data set of (x, y) batches, "
                f"got {type(validation_data).__name__}"
            )
        x_val, y_val = validation_data[0], validation_data[1]
        if not (is_arrays(x_val) and is_arrays(y_val)):
            raise MnistlabError(f"validation_data must hold arrays (x_val, y_val), got "
                                f"{type(x_val).__name__} and {type(y_val).__name__}")
        n_val = num_examples(x_val, y_val, "validation_data")
        if n_val == 0:
            raise MnistlabError("validation_data is empty: pass some held-out examples, or leave it out")
        take = lambda a: a[:HOLD_OUT]  # noqa: E731
        return x, y, _map(take, x_val), _map(take, y_val), None
    if y is None or not is_arrays(x):
        return x, y, None, None, ("no held-out data: batched data needs validation_data=(x_val, y_val) "
                                  "for the validated suggestion")
    n = num_examples(x, y)
    hold = min(HOLD_OUT, n // 10)
    if hold < 1:
        return x, y, None, None, f"only {n} training examples: too few to hold any out (10 needed)"
    head = lambda a: a[:n - hold]  # noqa: E731
    tail = lambda a: a[n - hold:]  # noqa: E731
    return _map(head, x), _map(head, y), _map(tail, x), _map(tail, y), None


def evaluate_loss(model, x_val, y_val) -> float:
    """The model's loss on the held-out data (a non-finite loss stays non-finite).

    Arrays go through `test_on_batch` in chunks of at most `EVAL_CHUNK` examples (the batch
    size `evaluate` used here before), averaged by size: the same loss `evaluate` returns,
    without the data pipeline `evaluate` builds on every call, which on TensorFlow cost more
    than a 16-step probe itself (docs/lr-range-test.md, "Cost"). A data set goes through
    `evaluate`.
    """
    if y_val is None:
        logs = model.evaluate(x_val, verbose=0, return_dict=True)
        return float(np.asarray(logs["loss"]))
    n = num_examples(x_val, y_val, "validation_data")
    chunks = -(-n // EVAL_CHUNK)
    size = -(-n // chunks)  # equal chunks (one shape to compile) but perhaps the last
    total = 0.0
    for start in range(0, n, size):
        part = lambda a: a[start:start + size]  # noqa: E731
        logs = model.test_on_batch(_map(part, x_val), _map(part, y_val), return_dict=True)
        total += float(np.asarray(logs["loss"])) * min(size, n - start)
    return total / n


def _map(fn, tree):
    import keras

    return keras.tree.map_structure(lambda a: fn(np.asarray(a)), tree)

