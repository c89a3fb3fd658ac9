"""The result of an LR range test: its curve, the suggestions, how sure they are, its plot and files.

    >>> result.suggestion, result.lr_range, result.default_rule, result.stop_reason
    >>> result.plot()                  # a matplotlib Figure (nothing global is touched)
    >>> result.save("runs/mlp")        # lr_find.png, lr_find.csv, lr_find.json, tensorboard/lr_find
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from mnistlab import runs
from mnistlab.errors import MnistlabError
from mnistlab.lr_range.rules import RULES

ALL_RULES = ("validated", *RULES)  # the validated suggestion, then the curve rules

FILES = ("lr_find.png", "lr_find.csv", "lr_find.json")


@dataclasses.dataclass(eq=False)
class LRRangeResult:
    """What one range test measured, and the rates read off its curve.

    Args:
        lrs: the learning rate of each step.
        losses: the loss of each step's batch (the last one may be NaN/inf
            when the test stopped on it).
        smoothed: the lag-free curve the rules read (`mnistlab.lr_range.rules.smooth`).
        suggestions: rule name -> suggested rate, or None when the rule could
            not read the curve.
        reasons: rule name -> why that rule gave None (only rules that did).
        default_rule: the rule `suggestion` reports.
        stop_reason: why the test ended: starts with `completed`, `diverged`,
            `non-finite loss` or `data exhausted`.
        lr_range: `(low, high)`, the rates the evidence supports (the suggestion
            lies inside), or None when there is no suggestion.
        settings: the arguments of the test, the backend and `steps_run`.
        timings: seconds for the first step (tracing and compiling), the
            curve, the validation probes and in all.
        probes: the validated rule's probes, `{rate: held-out loss}` (inf for
            a probe that blew up); empty when none ran.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: dict
    reasons: dict
    default_rule: str
    stop_reason: str
    lr_range: tuple | None = None
    settings: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)
    probes: dict = dataclasses.field(default_factory=dict)

    @property
    def suggestion(self) -> float | None:
        """The default rule's rate, or None (see `reason`)."""
        return self.suggestions.get(self.default_rule)

    @property
    def reason(self) -> str | None:
        """Why there is no `suggestion` (None when there is one)."""
        return None if self.suggestion is not None else self.reasons.get(self.default_rule)

    def schedule(self, kind: str, total_steps: int, **options):
        """A Keras `LearningRateSchedule` peaking at `suggestion`: `mnistlab.models.schedules.peak_schedule`.

        Args:
            kind: `onecycle` or `cosine`.
            total_steps: optimizer steps in the whole run (epochs x steps per epoch).
            **options: the kind's options (see `peak_schedule`).

        Raises:
            MnistlabError: there is no suggestion (the message says why, from `reason`).
        """
        from mnistlab.models.schedules import peak_schedule

        if self.suggestion is None:
            raise MnistlabError(f"the LR range test suggested no rate ({self.reason}), so there is no peak "
                                f"for a {kind} schedule: see result.plot() and pass a rate to "
                                "mnistlab.peak_schedule yourself")
        return peak_schedule(kind, self.suggestion, total_steps, **options)

    def __repr__(self):
        sug = "None" if self.suggestion is None else f"{self.suggestion:.3g}"
        span = "None" if self.lr_range is None else f"({self.lr_range[0]:.2g}, {self.lr_range[1]:.2g})"
        return (f"LRRangeResult(steps={len(self.lrs)}, suggestion={sug} ({self.default_rule}), "
                f"lr_range={span}, stop_reason={self.stop_reason!r})")

    def to_dict(self) -> dict:
        """Plain JSON-ready data: the summary, the settings and the curve (NaN/inf as None)."""
        return {
            "suggestion": self.suggestion,
            "default_rule": self.default_rule,
            "reason": self.reason,
            "suggestions": dict(self.suggestions),
            "reasons": dict(self.reasons),
            "stop_reason": self.stop_reason,
            "lr_range": None if self.lr_range is None else [float(v) for v in self.lr_range],
            "settings": dict(self.settings),
            "timings": dict(self.timings),
            "probes": [{"lr": float(lr), "held_out_loss": _json_floats([loss])[0]} for lr, loss in self.probes.items()],
            "curve": {
                "lr": _json_floats(self.lrs),
                "loss": _json_floats(self.losses),
                "smoothed": _json_floats(self.smoothed),
            },
        }

    def plot(self, path=None):
        """The loss against the learning rate (log scale) with a marker per rule.

        The raw batch losses are drawn faintly, the lag-free curve in bold, the
        supported range (`lr_range`) shaded, the validated rule's probes as
        ticks along the bottom; the default rule's marker is larger and has a
        dashed line.
        Uses matplotlib's object API only: no backend or pyplot state changes.

        Args:
            path: where to save the PNG; None returns the `matplotlib.figure.Figure`.
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.2))
        ax = fig.add_subplot()
        ax.plot(self.lrs, self.losses, color="C0", alpha=0.25, lw=1, label="batch loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=2.2, label="lag-free curve")
        if self.lr_range is not None:
            ax.axvspan(*self.lr_range, color="C2", alpha=0.12,
                       label=f"supported: {self.lr_range[0]:.2g}-{self.lr_range[1]:.2g}")
        for k, rule in enumerate(ALL_RULES):
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
        low, high = _plot_ylim(self.losses, self.smoothed)
        ax.set_ylim(low, high)
        if self.probes:  # the validated rule's probes, as ticks along the bottom
            ax.plot(list(self.probes), [low + 0.04 * (high - low)] * len(self.probes), "|", ms=14, mew=2,
                    color="C1", label=f"probes: {len(self.probes)} x {self.settings.get('probe_steps', '?')} steps")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title(f"LR range test: {self.stop_reason.split(':')[0]} after {len(self.lrs)} steps",
                     fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        if path is None:
            return fig
        with runs.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
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
        for rule in ALL_RULES:
            lr = result.suggestions.get(rule)
            text = f"{lr:.3g}" if lr is not None else f"none ({result.reasons.get(rule, '')})"
            lines.append(f"| {rule}{' (default)' if rule == result.default_rule else ''} | {text} |")
        lines.append(f"\nstopped: {result.stop_reason}")
        writer.text("lr_find/suggestions", "\n".join(lines), 0)

