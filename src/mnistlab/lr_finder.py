"""The learning-rate range test: which learning rate should this model train with?

    >>> from mnistlab.lr_finder import lr_range_test
    >>> result = lr_range_test(model, x_train, y_train, batch_size=128)
    >>> result.suggestion, result.default_rule, result.stop_reason
    >>> result.save("runs/mlp")       # lr_find.png, lr_find.csv, lr_find.json, tensorboard/lr_find

How it works (Smith 2015, "Cyclical Learning Rates for Training Neural
Networks"; fastai's `lr_find`): train for `steps` batches while the learning
rate grows exponentially from `min_lr` to `max_lr`, record each batch's loss
and its bias-corrected exponential moving average, and stop once the smoothed
loss explodes. Several rules then read a rate off the curve (`RULES`); the
default rule is the one that won `benchmarks/lr_suggestion_quality.py`.
Afterwards the model is exactly as it was before: every weight, optimizer
variable (iteration count, moments, learning rate), non-trainable variable
(BatchNorm statistics) and dropout seed state is restored bit for bit.

Why a loop of single steps (`mnistlab.steps.BatchStepper`: `train_on_batch`,
or on JAX the same step without its per-call overhead) and not `fit` with a callback: in
Keras 3 the `loss` a callback sees in `on_train_batch_end` is the running mean
since the epoch began, not the loss of that batch. It could be recovered as
`k * mean_k - (k - 1) * mean_(k-1)`, but the means are float32, so the error
of that difference grows with `k` (about 1e-5 of the loss after 200 steps)
and one NaN poisons every later mean. `train_on_batch` resets the metrics on
every call, so it returns the loss of exactly that batch (the same value `fit`
minimises, regularisation included), on every backend, and the learning rate
can be set on `model.optimizer` between steps without relying on how the JAX
trainer syncs its state with callbacks. Plain `train_on_batch` costs about 10%
more per step than `fit` (the default MLP: 11.7 against 10.2 ms at batch size
128); the stepper, with the next step started before this one's loss is read,
brought the default MLP's test from 16-19 to 12-15 ms per step (BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
import time
from pathlib import Path

import keras
import numpy as np

from mnistlab import runs
from mnistlab.errors import MnistlabError
from mnistlab.steps import BatchStepper

# Steps of the default test: enough for a readable curve (fastai uses 100 too)
# and fast enough to run before every `--lr auto` training (benchmarks/lr_find_speed.py).
DEFAULT_STEPS = 100
# Every rule, in the order they are printed. See `suggest_lrs` for each one.
RULES = ("valley", "steepest", "min_div10", "half_shootup", "min")
# The rule `suggestion` reports: the measured winner of benchmarks/lr_suggestion_quality.py
# (MLP+SGD, MLP+Adam, CNN+Adam at batch sizes 32 and 256): validation accuracy 0.33 points
# below the best of 8 grid rates on average, 0.78 at worst; next best min_div10 (4.2 / 16.1),
# valley (5.6 / 31.1); half_shootup and min miss by 29-43 points on average.
DEFAULT_RULE = "steepest"
# Fewer usable points than this after the skipped start is "too short to read".
MIN_POINTS = 10
# The loss must fall by this share of its starting level (and by more than the
# batch-to-batch noise) before any rule trusts the curve.
MIN_DROP = 0.03
# `half_shootup`: the loss "shoots up" once it has climbed back this share of its fall.
SHOOTUP = 0.25

FILES = ("lr_find.png", "lr_find.csv", "lr_find.json")


@dataclasses.dataclass(eq=False)
class LRRangeResult:
    """What one range test measured, and the rates read off its curve.

    Args:
        lrs: the learning rate of each step.
        losses: the loss of each step's batch (the last one may be NaN/inf
            when the test stopped on it).
        smoothed: the bias-corrected exponential moving average of `losses`.
        suggestions: rule name -> suggested rate, or None when the rule could
            not read the curve.
        reasons: rule name -> why that rule gave None (only rules that did).
        default_rule: the rule `suggestion` reports.
        stop_reason: why the test ended: starts with `completed`, `diverged`,
            `non-finite loss` or `data exhausted`.
        settings: the arguments of the test, the backend and `steps_run`.
        timings: seconds for the first step (tracing and compiling) and in all.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: dict
    reasons: dict
    default_rule: str
    stop_reason: str
    settings: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)

    @property
    def suggestion(self) -> float | None:
        """The default rule's rate, or None (see `reason`)."""
        return self.suggestions.get(self.default_rule)

    @property
    def reason(self) -> str | None:
        """Why there is no `suggestion` (None when there is one)."""
        return None if self.suggestion is not None else self.reasons.get(self.default_rule)

    def schedule(self, kind: str, total_steps: int, **options):
        """A Keras `LearningRateSchedule` peaking at `suggestion`: `mnistlab.schedules.peak_schedule`.

        Args:
            kind: `onecycle` or `cosine`.
            total_steps: optimizer steps in the whole run (epochs x steps per epoch).
            **options: the kind's options (see `peak_schedule`).

        Raises:
            MnistlabError: there is no suggestion (the message says why, from `reason`).
        """
        from mnistlab.schedules import peak_schedule

        if self.suggestion is None:
            raise MnistlabError(f"the LR range test suggested no rate ({self.reason}), so there is no peak "
                                f"for a {kind} schedule: see result.plot() and pass a rate to "
                                "mnistlab.peak_schedule yourself")
        return peak_schedule(kind, self.suggestion, total_steps, **options)

    def __repr__(self):
        sug = "None" if self.suggestion is None else f"{self.suggestion:.3g}"
        return (f"LRRangeResult(steps={len(self.lrs)}, suggestion={sug} ({self.default_rule}), "
                f"stop_reason={self.stop_reason!r})")

    def to_dict(self) -> dict:
        """Plain JSON-ready data: the summary, the settings and the curve (NaN/inf as None)."""
        return {
            "suggestion": self.suggestion,
            "default_rule": self.default_rule,
            "reason": self.reason,
            "suggestions": dict(self.suggestions),
            "reasons": dict(self.reasons),
            "stop_reason": self.stop_reason,
            "settings": dict(self.settings),
            "timings": dict(self.timings),
            "curve": {
                "lr": _json_floats(self.lrs),
                "loss": _json_floats(self.losses),
                "smoothed": _json_floats(self.smoothed),
            },
        }

    def plot(self, path=None):
        """The loss against the learning rate (log scale) with a marker per rule.

        The raw batch losses are drawn faintly, the smoothed loss in bold; the
        default rule's marker is larger and has a dashed line.

        Args:
            path: where to save the PNG; None returns the figure unsaved.
        """
        from mnistlab.plots import save_figure, subplots

        fig, ax = subplots(figsize=(7, 4.2))
        ax.plot(self.lrs, self.losses, color="C0", alpha=0.25, lw=1, label="batch loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=2.2, label="smoothed loss")
        for k, rule in enumerate(RULES):
            lr = self.suggestions.get(rule)
            if lr is None:
                continue
            y = float(np.interp(np.log(lr), np.log(self.lrs), _finite_or(self.smoothed)))
            default = rule == self.default_rule
            ax.plot([lr], [y], "*" if default else "o", ms=15 if default else 7, color=f"C{k + 1}",
                    mec="black" if default else None, zorder=5,
                    label=f"{rule}: {lr:.2g}" + (" (default)" if default else ""))
            if default:
                ax.axvline(lr, color=f"C{k + 1}", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(*_plot_ylim(self.losses, self.smoothed))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title(f"LR range test: {self.stop_reason.split(':')[0]} after {len(self.lrs)} steps",
                     fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        if path is None:
            return fig
        save_figure(fig, path)
        return None

    def save(self, run_dir, tensorboard: bool = True) -> Path:
        """Write lr_find.png, lr_find.csv, lr_find.json and tensorboard/lr_find into `run_dir`.

        Each file is written atomically (see `mnistlab.runs`). The CSV has
        columns step, lr, loss, smoothed. TensorBoard gets the loss, smoothed
        loss and learning rate per step, and the suggestions as text.

        Args:
            run_dir: a folder, created if missing.
            tensorboard: also write the TensorBoard event file.
        """
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MnistlabError(f"cannot create {run_dir} ({e.strerror}): choose a writable --run-dir") from None
        runs.write_json(run_dir / "lr_find.json", self.to_dict())
        with runs.atomic_path(run_dir / "lr_find.csv") as tmp:
            rows = ["step,lr,loss,smoothed"]
            rows += [f"{i},{lr!r},{loss!r},{sm!r}" for i, (lr, loss, sm) in
                     enumerate(zip(self.lrs.tolist(), self.losses.tolist(), self.smoothed.tolist()))]
            tmp.write_text("\n".join(rows) + "\n")
        self.plot(run_dir / "lr_find.png")
        if tensorboard:
            _write_tensorboard(self, run_dir / runs.TENSORBOARD / "lr_find")
        return run_dir


# --------------------------------------------------------------- the test


def check_settings(min_lr=1e-6, max_lr=10.0, steps=None, batch_size=32, beta=0.98,
                   diverge_factor=4.0) -> None:
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
    if not ok_number(beta) or not 0 <= beta < 1:
        raise MnistlabError(f"beta (the smoothing) must be in [0, 1), e.g. 0.98; got {beta!r}")
    if not ok_number(diverge_factor) or diverge_factor <= 1:
        raise MnistlabError(f"diverge_factor must be a number above 1, e.g. 4; got {diverge_factor!r}")


def lr_range_test(model, x, y=None, *, min_lr=1e-6, max_lr=10.0, steps=None, batch_size=32,
                  beta=0.98, diverge_factor=4.0, seed=0, verbose=1) -> LRRangeResult:
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
        steps: number of steps (batches); default `DEFAULT_STEPS`. Arrays and
            data sets are cycled (reshuffled) when shorter; a one-pass
            iterator that runs out ends the test.
        batch_size: examples per step for array inputs (only full batches
            are used, so each step has the same shape; smaller data is one batch).
        beta: smoothing of the moving average of the loss (0 for none).
        diverge_factor: stop once the smoothed loss exceeds this multiple of
            its lowest value.
        seed: seeds the shuffling of array inputs.
        verbose: 0 silent, 1 a progress bar, 2 one line at the end.

    Returns:
        An `LRRangeResult`.

    Raises:
        MnistlabError: the model is not compiled, its optimizer uses a
            learning-rate schedule, a setting is invalid or the data is unusable.
    """
    check_settings(min_lr, max_lr, steps, batch_size, beta, diverge_factor)
    optimizer = _check_model(model)
    steps = DEFAULT_STEPS if steps is None else int(steps)
    batch_size = int(batch_size)
    plan = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    # The rates actually used are the float32 values the optimizer variable holds.
    plan = plan.astype("float32").astype("float64")
    batches = _batch_stream(x, y, batch_size, seed)
    first = next(batches, None)
    if first is None:
        raise MnistlabError("the data yielded no batch: pass a non-empty training set")

    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    stop_reason = None
    bar = keras.utils.Progbar(steps, stateful_metrics=["lr", "loss", "smoothed"]) if verbose == 1 else None
    started = time.perf_counter()
    first_step = None
    with _preserved_state(model, optimizer, first[0]), BatchStepper(model) as stepper:
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
            if not math.isfinite(loss):
                smoothed.append(math.nan)
                stop_reason = f"non-finite loss: the loss became {loss} at lr {lr:.3g} (step {i})"
                break
            avg = beta * avg + (1 - beta) * loss
            smooth = avg / (1 - beta ** (i + 1))
            smoothed.append(smooth)
            best = min(best, smooth)
            if bar is not None:
                bar.update(i + 1, values=[("lr", lr), ("loss", loss), ("smoothed", smooth)])
            if smooth > diverge_factor * best:
                stop_reason = (f"diverged: the smoothed loss {smooth:.4g} passed {diverge_factor:g} x "
                               f"its lowest {best:.4g} at lr {lr:.3g} (step {i})")
                break
    if stop_reason is None:
        stop_reason = f"completed: reached max_lr {max_lr:g} after {steps} steps without diverging"
    if bar is not None and len(lrs) < steps:
        bar.update(len(lrs), finalize=True)

    lrs, losses, smoothed = (np.asarray(a, dtype="float64") for a in (lrs, losses, smoothed))
    suggestions, reasons = suggest_lrs(
        lrs, losses, smoothed, steps=steps,
        stopped_early=not stop_reason.startswith(("completed", "data exhausted")),
    )
    result = LRRangeResult(
        lrs=lrs, losses=losses, smoothed=smoothed, suggestions=suggestions, reasons=reasons,
        default_rule=DEFAULT_RULE, stop_reason=stop_reason,
        settings=dict(min_lr=float(min_lr), max_lr=float(max_lr), steps=steps, steps_run=len(lrs),
                      batch_size=batch_size, beta=float(beta), diverge_factor=float(diverge_factor),
                      seed=int(seed),
                      backend=keras.backend.backend()),
        timings=dict(first_step_seconds=round(first_step or 0.0, 3),
                     total_seconds=round(time.perf_counter() - started, 3)),
    )
    if verbose:
        lr_text = "none" if result.suggestion is None else f"{result.suggestion:.3g}"
        print(f"LR range test: {stop_reason}; suggested lr {lr_text} ({DEFAULT_RULE})"
              + (f": {result.reason}" if result.reason else ""))
    return result


def _one_step_late(stepper, plan, first, batches):
    """`(i, lr, logs)` for each step of `plan`, yielded once step `i + 1` is under way.

    On JAX a step runs asynchronously: asking for the next batch and starting
    its step before reading this step's loss lets the host's work overlap the
    step's (the default MLP's test: 14-16 against 17-18 ms per step,
    BENCHMARKS.md). The cost is one step the test may not need once its loss
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


class _preserved_state:
    """Context manager: snapshot every variable the test can change; restore them on exit.

    That is the model's variables (trainable, non-trainable such as BatchNorm
    statistics, and the seed generators' state), the optimizer's variables
    (iteration count, learning rate, moments) and the metrics' variables.
    An unbuilt model is built first (called on one batch in inference mode)
    and an unbuilt optimizer built on the model's trainable variables, the
    way `fit` would build them, so that what is restored is their first state.
    Restoring happens even when the test fails or is interrupted.
    """

    def __init__(self, model, optimizer, x_batch):
        self.model, self.optimizer, self.x_batch = model, optimizer, x_batch

    def __enter__(self):
        if not self.model.built:
            self.model(self.x_batch)
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)
        seen, self.saved = set(), []
        for v in [*self.model.variables, *self.optimizer.variables, *self.model.metrics_variables]:
            if id(v) not in seen:
                seen.add(id(v))
                self.saved.append((v, np.array(v.numpy(), copy=True)))
        return self

    def __exit__(self, *exc):
        for v, value in self.saved:
            v.assign(value)
        known = {id(v) for v, _ in self.saved}
        if any(id(v) not in known for v in self.model.metrics_variables):
            self.model.reset_metrics()  # metrics first built by the test start from zero
        return False


def _is_arrays(x) -> bool:
    leaves = keras.tree.flatten(x) if isinstance(x, (list, tuple, dict)) else [x]
    return bool(leaves) and all(hasattr(a, "shape") and hasattr(a, "__array__") for a in leaves)


def _batch_stream(x, y, batch_size, seed):
    """An iterator of `(x, y, sample_weight)` batches, cycling where the data allows."""
    if y is None and isinstance(x, (list, tuple)) and x and all(isinstance(b, (list, tuple)) for b in x):
        return _repeating(lambda: iter(x))  # a list of (x, y) batches
    if y is not None or _is_arrays(x):
        if y is None:
            raise MnistlabError(
                "x is an array but y is None: pass the targets as y, or pass x as a "
                "tf.data.Dataset or an iterable of (x, y) batches"
            )
        if not _is_arrays(x) or not _is_arrays(y):
            raise MnistlabError(
                f"with y given, x and y must be arrays (or lists/dicts of arrays); "
                f"got x={type(x).__name__}, y={type(y).__name__}"
            )
        return _array_batches(x, y, batch_size, seed)
    if isinstance(x, keras.utils.PyDataset):
        return _pydataset_batches(x)
    if hasattr(x, "as_numpy_iterator"):  # tf.data.Dataset, without importing TensorFlow here
        return _repeating(lambda: x.as_numpy_iterator())
    try:
        it = iter(x)
    except TypeError:
        raise MnistlabError(
            f"cannot read batches from a {type(x).__name__}: pass arrays x and y, a "
            "tf.data.Dataset, a keras.utils.PyDataset or an iterable of (x, y) batches"
        ) from None
    return (_unpack(b) for b in it)


def _array_batches(x, y, batch_size, seed):
    to_np = lambda tree: keras.tree.map_structure(np.asarray, tree)  # noqa: E731
    x, y = to_np(x), to_np(y)
    sizes = {len(a) for a in keras.tree.flatten(x) + keras.tree.flatten(y)}
    if len(sizes) != 1:
        raise MnistlabError(f"x and y disagree on the number of examples: {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise MnistlabError("the training set is empty: the range test needs at least one example")
    size = min(batch_size, n)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - size + 1, size):
            idx = np.sort(order[start:start + size])
            take = lambda a: a[idx]  # noqa: E731
            yield keras.tree.map_structure(take, x), keras.tree.map_structure(take, y), None


def _pydataset_batches(ds):
    n = ds.num_batches

    def one_pass():
        for i in range(n) if n is not None else itertools.count():
            yield ds[i]
        ds.on_epoch_end()

    return _repeating(one_pass)


def _repeating(make_iterator):
    while True:
        empty = True
        for batch in make_iterator():
            empty = False
            yield _unpack(batch)
        if empty:
            return


def _unpack(batch):
    if not isinstance(batch, (tuple, list)) or not 1 <= len(batch) <= 3:
        raise MnistlabError(
            f"each batch must be a tuple (x, y) or (x, y, sample_weight), got {type(batch).__name__}"
        )
    return keras.utils.unpack_x_y_sample_weight(tuple(batch))


# --------------------------------------------------------------- the rules


def suggest_lrs(lrs, losses, smoothed, *, steps=None, stopped_early=False):
    """Read a learning rate off a range-test curve with every rule.

    The rules (all look at the smoothed loss, after skipping its first
    `steps // 10` points where the moving average has seen few batches):

    - `steepest`: the rate where the smoothed loss falls fastest per decade of
      rate, searched only on the main descent: before the minimum (the climb
      after it is no use) and after the loss last stood within 10% of its
      fall from the starting level (a noise dip on the flat start is no use).
    - `valley`: fastai's rule (fastai.callback.schedule.valley, reimplemented
      here as fastai is not a dependency): the longest stretch over which the
      loss keeps decreasing, and the rate two thirds of the way down it. Like
      fastai it ignores the last 5 recorded points.
    - `min_div10`: the rate at the lowest smoothed loss, divided by 10.
    - `half_shootup`: half the rate at which the loss shoots up, i.e. climbs
      back `SHOOTUP` of its fall after the minimum (or the test stops on
      divergence or NaN first). The rule of Geron's MNIST exercise.
    - `min`: the rate at the lowest smoothed loss.

    A curve that is too short, never falls by more than its noise, or does
    not show what a rule needs gives that rule None and a reason.

    Args:
        lrs, losses, smoothed: the curve, one value per step.
        steps: the steps the test planned (sets the skipped start).
        stopped_early: the test ended on divergence or a NaN/inf loss.

    Returns:
        `(suggestions, reasons)`: rule -> rate or None, and rule -> why None.
    """
    lrs, losses, smoothed = (np.asarray(a, dtype="float64") for a in (lrs, losses, smoothed))
    suggestions, reasons = dict.fromkeys(RULES), {}

    def give_up(rules, why):
        for rule in rules:
            if suggestions[rule] is None:
                reasons[rule] = why

    finite = np.isfinite(losses) & np.isfinite(smoothed) & np.isfinite(lrs) & (lrs > 0)
    n = len(lrs) if finite.all() else int(np.argmin(finite))
    skip = (steps or len(lrs)) // 10
    if n - skip < MIN_POINTS:
        give_up(RULES, f"too short: {n} usable steps ({skip} skipped at the start) where "
                       f"{skip + MIN_POINTS} are needed: raise steps, or lower max_lr if the loss "
                       "blew up early")
        return suggestions, reasons
    lr, raw, s = lrs[:n], losses[:n], smoothed[:n]
    i_min = skip + int(np.argmin(s[skip:]))
    peak = float(s[skip:i_min + 1].max())
    fall = peak - s[i_min]
    # Batch-to-batch noise of the raw loss (robust: from the median step-to-step change).
    noise = 1.4826 * float(np.median(np.abs(np.diff(raw[skip:i_min + 1])))) / math.sqrt(2) if i_min > skip else 0.0
    if fall <= max(MIN_DROP * abs(peak), noise):
        give_up(RULES, f"flat: the smoothed loss never fell by more than {fall:.3g} from {peak:.4g} "
                       f"(noise {noise:.2g}) between lr {lr[skip]:.2g} and {lr[-1]:.2g}: "
                       "widen the range (min_lr/max_lr) or check the model learns")
        return suggestions, reasons

    # steepest: the most negative slope of the smoothed loss against log10(lr), on the main
    # descent: before the minimum, and after the loss last stood within 10% (of its whole fall)
    # of its starting level, so a noise dip on the flat start cannot win.
    start = skip + int(np.nonzero(s[skip:i_min + 1] >= s[i_min] + 0.9 * fall)[0][-1])
    if i_min - start >= 2:
        slope = np.gradient(s[start:i_min + 1], np.log10(lr[start:i_min + 1]))
        j = int(np.argmin(slope))
        if slope[j] < 0:
            suggestions["steepest"] = float(lr[start + j])
    give_up(["steepest"], "no falling stretch before the minimum of the loss")

    # valley: fastai's window (skip the first steps//10, the last 5 recorded), then its rule.
    end = min(n, len(lrs) - 5)
    if end - skip >= 2:
        idx = _valley_index(s[skip:end])
        if idx is not None:
            suggestions["valley"] = float(lr[skip + idx])
    give_up(["valley"], "no stretch of falling loss (the curve is too short or never decreases)")

    still_falling = i_min == n - 1 and not stopped_early
    if still_falling:
        give_up(["min", "min_div10"], f"no minimum: the loss was still falling at the last rate "
                                       f"({lr[-1]:.2g}): raise max_lr or steps")
    else:
        suggestions["min"] = float(lr[i_min])
        if lr[i_min] / 10 >= lrs[0]:
            suggestions["min_div10"] = float(lr[i_min] / 10)
        give_up(["min_div10"], f"the minimum is at {lr[i_min]:.2g}, so /10 is below min_lr "
                                f"{lrs[0]:.2g}: lower min_lr")

    # half_shootup: first point after the minimum that climbed back SHOOTUP of the fall.
    above = np.nonzero(s[i_min + 1:] > s[i_min] + SHOOTUP * fall)[0]
    if len(above):
        suggestions["half_shootup"] = float(lr[i_min + 1 + above[0]] / 2)
    elif stopped_early:  # the test stopped on divergence or NaN: that is the shoot-up
        suggestions["half_shootup"] = float(lrs[min(n, len(lrs) - 1)] / 2)
    give_up(["half_shootup"], f"the loss never shot up after its minimum at {lr[i_min]:.2g} "
                              "(it stayed low up to max_lr): raise max_lr")
    for rule, value in suggestions.items():
        if value is not None and value < lrs[0]:
            suggestions[rule] = None
            reasons[rule] = f"{value:.2g} is below min_lr {lrs[0]:.2g}: lower min_lr"
    return suggestions, reasons


def _valley_index(loss):
    """fastai's `valley` on one curve: the index two thirds down the longest valley.

    `lds[i]` is the length of the longest strictly decreasing subsequence
    ending at `i`; fastai records the start of the best one when `lds[i]` first
    overtakes the best so far while scanning `j`, and so do we, to give the
    same index. Vectorised per `i` (the original is a double Python loop).
    """
    n = len(loss)
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        # running value of lds[i] after each j of fastai's inner loop
        cand = np.where(loss[i] < loss[:i], lds[:i] + 1, 1)
        running = np.maximum.accumulate(cand)
        lds[i] = running[-1]
        over = np.nonzero(running > lds[max_end])[0]
        if len(over):
            max_end, max_start = i, i - int(running[over[0]])
    if lds[max_end] < 2:
        return None
    sections = (max_end - max_start) / 3
    return max(0, max_start + int(sections) + int(sections / 2))


# --------------------------------------------------------------- helpers


def _json_floats(values):
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype="float64")]


def _finite_or(values):
    values = np.asarray(values, dtype="float64")
    good = np.isfinite(values)
    if good.all() or not good.any():
        return np.nan_to_num(values)
    return np.where(good, values, values[good].max())


def _plot_ylim(losses, smoothed):
    """Y range: from just under the lowest loss to a bit above the starting level."""
    raw = np.asarray(losses, dtype="float64")
    s = np.asarray(smoothed, dtype="float64")
    good_raw, good_s = raw[np.isfinite(raw)], s[np.isfinite(s)]
    if not len(good_raw):
        return 0.0, 1.0
    low = float(good_raw.min())
    top_level = float(good_s[: max(1, np.argmin(good_s) + 1)].max()) if len(good_s) else float(good_raw.max())
    high = max(top_level, float(good_raw[:max(1, len(good_raw) // 10)].max()))
    pad = 0.08 * max(high - low, 1e-12)
    return low - pad, high + 2 * pad


def _write_tensorboard(result, logdir: Path) -> None:
    """Loss, smoothed loss and rate against the step, and the suggestions as text.

    Old event files in `logdir` are removed so one test is one run.
    """
    from mnistlab.summaries import EventWriter

    with EventWriter(logdir, replace=True) as writer:
        for i, (lr, loss, sm) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
            writer.scalar("lr_find/loss", loss, i)
            writer.scalar("lr_find/smoothed_loss", sm, i)
            writer.scalar("lr_find/learning_rate", lr, i)
        lines = ["| rule | lr |", "|---|---|"]
        for rule in RULES:
            lr = result.suggestions.get(rule)
            text = f"{lr:.3g}" if lr is not None else f"none ({result.reasons.get(rule, '')})"
            lines.append(f"| {rule}{' (default)' if rule == result.default_rule else ''} | {text} |")
        lines.append(f"\nstopped: {result.stop_reason}")
        writer.text("lr_find/suggestions", "\n".join(lines), 0)
