"""The learning-rate range test: which learning rate should this model train with?

    >>> from mnistlab.lr_range.finder import lr_range_test
    >>> result = lr_range_test(model, x_train, y_train, batch_size=128)
    >>> result.suggestion, result.lr_range, result.default_rule, result.stop_reason
    >>> result.save("runs/mlp")       # lr_find.png, lr_find.csv, lr_find.json, tensorboard/lr_find

How it works (Smith 2015, "Cyclical Learning Rates for Training Neural
Networks"; fastai's `lr_find`): train for `steps` batches while the learning
rate grows exponentially from `min_lr` to `max_lr`, record each batch's loss,
and stop once the loss blows up (`mnistlab.lr_range.rules.diverged`: judged on the
batch losses, not on a lagging average). The rules of `mnistlab.lr_range.rules`
then read rates off the lag-free curve; `lr_range` is the span of rates the
curve supports. The default suggestion then checks them by training: a few
100-step probes at rates at and below the curve's lowest point, kept by
held-out loss (`mnistlab.lr_range.validation`). Which rule is the default, and why,
was measured by `benchmarks/lr_quality/suggestion_quality.py` (docs/lr-range-test.md,
"Rules and the evidence for the default").
Afterwards the model is exactly as it was before: every weight, optimizer
variable (iteration count, moments, learning rate), non-trainable variable
(BatchNorm statistics), metric variable and dropout seed state is restored
bit for bit (on torch, where an unseeded Dropout draws from torch's global
generator, that generator's state too).

Why a loop of single steps (`mnistlab.models.steps.BatchStepper`: `train_on_batch`,
or on JAX the same step without its per-call overhead) and not `fit` with a callback: in
Keras 3 the `loss` a callback sees in `on_train_batch_end` is the running mean
since the epoch began, not the loss of that batch. It could be recovered as
`k * mean_k - (k - 1) * mean_(k-1)`, but the means are float32, so the error
of that difference grows with `k` (about 1e-5 of the loss after 200 steps)
and one NaN poisons every later mean. `train_on_batch` resets the metrics on
every call, so it returns the loss of exactly that batch (the same value `fit`
minimises, regularisation included), on every backend, and the learning rate
can be set on `model.optimizer` between steps without relying on how the JAX
trainer syncs its state with callbacks. Plain `train_on_batch` costs a little
more per step than `fit` (docs/performance.md, "Smaller measurements behind the
code"); the stepper, with the next step started before this one's loss is read,
makes up for it (BENCHMARKS.md, "What made it fast": the LR range test's stepper).
"""

from __future__ import annotations

import math
import numbers
import time

import keras
import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.lr_range import rules as lr_rules
from mnistlab.lr_range import validation as lr_validation
from mnistlab.lr_range.result import ALL_RULES, FILES, LRRangeResult  # noqa: F401  (public names of this module too)
from mnistlab.lr_range.rules import LONGER_STEPS, RULES, read_curve  # noqa: F401  (LONGER_STEPS: public here too)
from mnistlab.lr_range.batches import batch_stream
from mnistlab.lr_range.state import preserved_state
from mnistlab.models.steps import BatchStepper

# Steps of the default test: enough for a readable curve (fastai uses 100 too)
# and fast enough to run before every `--lr auto` training (docs/lr-range-test.md, "Speed").
DEFAULT_STEPS = 100
# The rule `suggestion` reports: short trainings at the rates the curve points to, kept by
# held-out loss (`mnistlab.lr_range.validation`). On setups held out from the choice it lands
# nearer the best rate, on average, than every curve rule, ours and other libraries'
# (docs/lr-range-test.md, "Rules and the evidence for the default").
DEFAULT_RULE = "validated"
# The default without held-out data (or with validate=False): the best curve-only rule there.
CURVE_RULE = "middle"


# --------------------------------------------------------------- the test


def check_settings(min_lr=1e-6, max_lr=10.0, steps=None, batch_size=32, diverge_factor=4.0,
                   smoothing=lr_rules.SMOOTH_STEPS) -> None:
    """Raise `MnistlabError` naming the first bad range-test setting."""
    def ok_number(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    def ok_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if not ok_number(min_lr) or min_lr <= 0:
        raise MnistlabError(f"min_lr must be a positive number, got {min_lr!r}")
    if not ok_number(max_lr) or max_lr <= min_lr:
        raise MnistlabError(f"max_lr must be a number above min_lr={min_lr:g}, got {max_lr!r}")
    if steps is not None and (not ok_int(steps) or steps < 2):
        raise MnistlabError(f"steps must be a whole number >= 2 (default {DEFAULT_STEPS}), got {steps!r}")
    if not ok_int(batch_size) or batch_size < 1:
        raise MnistlabError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if not ok_number(diverge_factor) or diverge_factor <= 1:
        raise MnistlabError(f"diverge_factor must be a number above 1, e.g. 4; got {diverge_factor!r}")
    if not ok_number(smoothing) or smoothing < 0:
        raise MnistlabError(f"smoothing (steps) must be a number >= 0, e.g. 3; got {smoothing!r}")


def lr_range_test(model, x, y=None, *, min_lr=1e-6, max_lr=10.0, steps=None, batch_size=32,
                  diverge_factor=4.0, smoothing=lr_rules.SMOOTH_STEPS, seed=0, validate=True,
                  validation_data=None, verbose=1) -> LRRangeResult:
    """Run the LR range test on a compiled model and restore it exactly afterwards.

    Args:
        model: any compiled Keras 3 model (Sequential, functional or
            subclassed) whose optimizer has a plain float learning rate.
        x: the training inputs (an array, or a list/dict of arrays), or, with
            `y=None`, a `tf.data.Dataset`, a `keras.utils.PyDataset` or any
            iterable of `(x, y)` / `(x, y, sample_weight)` batches.
        y: the targets for array inputs; None for batched data.
        min_lr: the rate of the first step.
        max_lr: the rate of the last step.
        steps: number of steps (batches); default `DEFAULT_STEPS`, and once
            more with `LONGER_STEPS` when that curve is flat and no probe
            below it learns (`settings["flat_at_steps"]` then says so). Arrays
            and data sets are cycled (reshuffled) when shorter; a one-pass
            iterator that runs out ends the test.
        batch_size: examples per step for array inputs (only full batches
            are used, so each step has the same shape; smaller data is one batch).
        diverge_factor: stop once the batch losses (median of the last 3)
            pass this multiple of the lowest point of the lag-free curve, and
            the starting loss (`lr_rules.diverged`).
        smoothing: width in steps of the lag-free curve (`lr_rules.smooth`).
        seed: seeds the shuffling of array inputs.
        validate: after the curve, train a few short probes (3 to 5 x
            `lr_validation.PROBE_STEPS` steps, from the same starting state)
            and suggest by their held-out loss: the `validated` rule, the
            default, 4-6x the time of the curve. `"fast"`: 3-4 probes of 16
            steps (`lr_validation.FAST`), about 1.8x the curve, further from
            the best rate on the benchmark's tasks. False: the curve alone
            (`CURVE_RULE`).
        validation_data: `(x_val, y_val)` arrays (at most 2000 examples are
            used) or a finite data set of batches to score the probes on. None: the
            last tenth of the training arrays (at most 2000), which the probes
            do not train on; batched data without it falls back to the curve
            alone (`reasons["validated"]` says so).
        verbose: 0 silent, 1 a progress bar, 2 one line at the end.

    Returns:
        An `LRRangeResult`.

    Raises:
        MnistlabError: the model is not compiled, its optimizer uses a
            learning-rate schedule, a setting is invalid or the data is unusable.
    """
    check_settings(min_lr, max_lr, steps, batch_size, diverge_factor, smoothing)
    longer_after_flat = steps is None
    if validate not in (True, False, "fast"):
        raise MnistlabError(f'validate must be True, False or "fast", got {validate!r}')
    search_options = lr_validation.FAST if validate == "fast" else {}
    optimizer = _check_model(model)
    steps = DEFAULT_STEPS if steps is None else int(steps)
    batch_size = int(batch_size)
    plan = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    # The rates actually used are the float32 values the optimizer variable holds.
    plan = plan.astype("float32").astype("float64")
    batches = batch_stream(x, y, batch_size, seed)
    first = next(batches, None)
    if first is None:
        raise MnistlabError("the data yielded no batch: pass a non-empty training set")

    lrs, losses = [], []
    stop_reason = None
    bar = keras.utils.Progbar(steps, stateful_metrics=["lr", "loss"]) if verbose == 1 else None
    started = time.perf_counter()
    first_step = None
    with preserved_state(model, optimizer, first[0]), BatchStepper(model) as stepper:
        for i, lr, logs in _one_step_late(stepper, plan, first, batches):
            if logs is None:
                stop_reason = f"data exhausted: the data ran out after {i} steps (pass more data or fewer steps)"
                break
            if first_step is None:
                first_step = time.perf_counter() - started
            if "loss" not in logs:
                raise MnistlabError(
                    f"the model's training step reports no 'loss' (it reported {sorted(logs)}): "
                    "compile it with a loss, or return one from a custom train_step"
                )
            loss = float(np.asarray(logs["loss"]))
            lrs.append(lr)
            losses.append(loss)
            if bar is not None:
                bar.update(i + 1, values=[("lr", lr), ("loss", loss)])
            if not math.isfinite(loss):
                stop_reason = f"non-finite loss: the loss became {loss} at lr {lr:.3g} (step {i})"
                break
            if lr_rules.diverged(losses, diverge_factor):
                stop_reason = (f"diverged: the batch losses passed {diverge_factor:g} x the lowest "
                               f"loss and the starting loss at lr {lr:.3g} (step {i})")
                break
    if stop_reason is None:
        stop_reason = f"completed: reached max_lr {max_lr:g} after {steps} steps without diverging"
    if bar is not None and len(lrs) < steps:
        bar.update(len(lrs), finalize=True)
    lrs, losses = np.asarray(lrs, dtype="float64"), np.asarray(losses, dtype="float64")
    stopped_early = not stop_reason.startswith(("completed", "data exhausted"))
    suggestions, reasons, info = read_curve(lrs, losses, width=smoothing, stopped_early=stopped_early)
    curve_seconds = time.perf_counter() - started
    default_rule, probes, held = DEFAULT_RULE, {}, None
    suggestions = {"validated": None, **suggestions}
    # None: a flat curve (searched below its bound) or one too short to read (no search)
    start = lr_validation.starting_point(lrs, suggestions["min"], info, stopped_early)
    if not validate:
        default_rule, reasons["validated"] = CURVE_RULE, "not run (validate=False)"
    elif start is None and not info.get("flat"):
        reasons["validated"] = reasons.get("min", "the curve shows no lowest point")
    else:
        x_fit, y_fit, x_val, y_val, why = lr_validation.held_out(x, y, validation_data)
        if x_val is None:
            default_rule, reasons["validated"] = CURVE_RULE, why
        else:
            held = ("validation_data" if validation_data is not None
                    else f"the last tenth of x (at most {lr_validation.HOLD_OUT})")
            with preserved_state(model, optimizer, first[0]) as state:
                # A curve too flat to read is still bounded from above (by the rate it blew up
                # at, or max_lr); the probes, judged on held-out data, can tell which rate below
                # that bound learns (docs/lr-range-test.md, "When the curve is flat").
                suggestions["validated"], probes, why = lr_validation.validated(
                    lrs, suggestions["min"], info, stopped_early,
                    _probe(model, state, x_fit, y_fit, x_val, y_val, batch_size, seed),
                    lambda: _start_loss(model, state, x_val, y_val), reasons.get("min", ""), **search_options)
            if why is None:
                reasons.pop("validated", None)
            else:
                reasons["validated"] = why
    probe_steps = (lr_validation.FLAT_PROBE_STEPS if start is None
                   else search_options.get("steps", lr_validation.PROBE_STEPS))
    lr_range = None
    if suggestions[default_rule] is not None:
        lr_range = lr_rules.supported_range(suggestions)
        if lr_range is not None:  # widened to hold the suggestion (a validated rate may lie outside)
            lr_range = (min(lr_range[0], suggestions[default_rule]), max(lr_range[1], suggestions[default_rule]))
    result = LRRangeResult(
        lrs=lrs, losses=losses, smoothed=info["curve"], suggestions=suggestions, reasons=reasons,
        default_rule=default_rule, stop_reason=stop_reason, lr_range=lr_range, probes=probes,
        settings=dict(min_lr=float(min_lr), max_lr=float(max_lr), steps=steps, steps_run=len(lrs),
                      batch_size=batch_size, diverge_factor=float(diverge_factor), smoothing=float(smoothing),
                      seed=int(seed), validate=validate, probe_steps=probe_steps,
                      held_out=held, backend=keras.backend.backend()),
        timings=dict(first_step_seconds=round(first_step or 0.0, 3), curve_seconds=round(curve_seconds, 3),
                     validation_seconds=round(time.perf_counter() - started - curve_seconds, 3),
                     total_seconds=round(time.perf_counter() - started, 3)),
    )
    if longer_after_flat and start is None and info.get("flat") and probes and suggestions[default_rule] is None:
        return _longer(result, model, x, y, dict(min_lr=min_lr, max_lr=max_lr, batch_size=batch_size,
                                                  diverge_factor=diverge_factor, smoothing=smoothing, seed=seed,
                                                  validate=validate, validation_data=validation_data,
                                                  verbose=verbose))
    if verbose:
        lr_text = "none" if result.suggestion is None else f"{result.suggestion:.3g}"
        span = "" if result.lr_range is None else f" (supported {result.lr_range[0]:.2g}-{result.lr_range[1]:.2g})"
        print(f"LR range test: {stop_reason}; suggested lr {lr_text}{span} ({result.default_rule})"
              + (f": {result.reason}" if result.reason else ""))
    return result


def _longer(flat: LRRangeResult, model, x, y, options: dict) -> LRRangeResult:
    """The test again with `LONGER_STEPS` steps, after `flat`: a default-length curve too flat to
    read whose probes learned nothing. Its result, with `settings["flat_at_steps"]`, the first
    test's time counted in `timings`, and a reason naming both lengths if it has no rate either."""
    if options["verbose"]:
        print(f"LR range test: no rate in {flat.settings['steps']} steps (a flat curve, and no probe below it "
              f"learned); trying {LONGER_STEPS} steps")
    longer = lr_range_test(model, x, y, steps=LONGER_STEPS, **options)
    longer.settings["flat_at_steps"] = flat.settings["steps"]
    longer.timings["flat_seconds"] = flat.timings["total_seconds"]
    longer.timings["total_seconds"] = round(longer.timings["total_seconds"] + flat.timings["total_seconds"], 3)
    if longer.suggestion is None and longer.default_rule in longer.reasons:
        longer.reasons[longer.default_rule] = (f"no rate in a {flat.settings['steps']}-step test nor in a "
                                               f"{LONGER_STEPS}-step one: {longer.reasons[longer.default_rule]}")
    return longer


def _probe(model, state, x_fit, y_fit, x_val, y_val, batch_size, seed):
    """`loss_at(lr, steps)` for `lr_validation.search`: from the saved `state` (restored first),
    `steps` steps at `lr`, then the loss on the held-out data."""
    def loss_at(lr, steps):
        state.restore()
        batches = batch_stream(x_fit, y_fit, batch_size, seed)
        with BatchStepper(model) as stepper:
            for _ in range(steps):
                batch = next(batches, None)
                if batch is None:
                    break
                stepper.step(batch, lr)
        return lr_validation.evaluate_loss(model, x_val, y_val)

    return loss_at


def _start_loss(model, state, x_val, y_val) -> float:
    """The held-out loss of the model as it came to the test (restored from `state`)."""
    state.restore()
    return lr_validation.evaluate_loss(model, x_val, y_val)


def _one_step_late(stepper, plan, first, batches):
    """`(i, lr, logs)` for each step of `plan`, yielded once step `i + 1` is under way.

    On JAX a step runs asynchronously: asking for the next batch and starting
    its step before reading this step's loss lets the host's work overlap the
    step's (BENCHMARKS.md, "What made it fast": the LR range test's stepper, and
    its log). The cost is one step the test may not need once its loss
    explodes; the model is restored afterwards anyway. On TensorFlow
    `train_on_batch` waits for its step, and the order changes nothing.
    `logs` is None when the data ran out before step `i`.
    """
    batch, pending = first, None
    for i, lr in enumerate(plan):
        logs = None if batch is None else stepper.step(batch, lr)
        if pending is not None:
            yield pending
        if logs is None:
            yield i, lr, None
            return
        pending = (i, lr, logs)
        batch = next(batches, None) if i + 1 < len(plan) else None
    if pending is not None:
        yield pending


def _check_model(model):
    """The model's optimizer, after checking the model can be range-tested."""
    if not isinstance(model, keras.Model):
        raise MnistlabError(f"the range test needs a keras.Model, got {type(model).__name__}")
    optimizer = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or optimizer is None:
        raise MnistlabError(
            f"model {model.name!r} is not compiled: call model.compile(optimizer=..., loss=...) "
            "before the range test"
        )
    if keras.backend.backend() == "torch" and getattr(model, "steps_per_execution", 1) != 1:
        raise MnistlabError(
            f"model {model.name!r} is compiled with steps_per_execution={model.steps_per_execution}, but Keras' "
            "torch backend runs one step per call (its fit refuses more too): compile it with steps_per_execution=1"
        )
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    rate = getattr(inner, "_learning_rate", None)
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) or (
        callable(rate) and not isinstance(rate, keras.Variable)
    ):
        name = type(inner).__name__
        raise MnistlabError(
            f"model {model.name!r} is compiled with the learning-rate schedule {type(rate).__name__}; "
            f"the range test sets the rate itself: compile it with a plain rate for the test "
            f"(e.g. {name}(1e-3)), then use the suggestion as the schedule's peak rate"
        )
    return optimizer
