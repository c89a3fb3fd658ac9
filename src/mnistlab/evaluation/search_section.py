"""The "Hyperparameter search" section of `mnistlab evaluate`'s report.

When the evaluated run is a trial of a search (`RUN/trials/<id>/`, with
`RUN/tune_results.json`), the report shows where it ranks, the best trials
with their values, the best trial's test accuracy and command, and the
figure of validation accuracy against each searched value.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

TOP = 10


def search_of(run_dir) -> Path | None:
    """The search folder `run_dir` is a trial of, or None."""
    run_dir = Path(run_dir).resolve()
    root = run_dir.parent.parent
    return root if run_dir.parent.name == "trials" and (root / "tune_results.json").is_file() else None


def report_section(run_dir) -> str:
    """HTML for the report, or "" when `run_dir` is not a trial of a finished search."""
    root = search_of(run_dir)
    if root is None:
        return ""
    try:
        results = json.loads((root / "tune_results.json").read_text())
    except (OSError, ValueError):
        return ""
    esc = html.escape
    me = Path(run_dir).resolve().name
    done = sorted((t for t in results["trials"] if t.get("val_accuracy") is not None),
                  key=lambda t: -t["val_accuracy"])
    rank = next((i + 1 for i, t in enumerate(done) if t["trial_id"] == me), None)
    s, best = results.get("search", {}), results.get("best") or {}
    rows = "".join(
        f'<tr class="{"worst" if t["trial_id"] == me else ""}"><th scope="row">{esc(t["trial_id"])}</th>'
        f'<td class="num">{t["val_accuracy"]:.4f}</td><td>{esc(str(t.get("worker")))}</td>'
        f'<td>{esc(", ".join(f"{k}={v}" for k, v in t["hyperparameters"].items()))}</td></tr>'
        for t in done[:TOP] + [t for t in done[TOP:] if t["trial_id"] == me])
    test = f", test accuracy {best['test_accuracy']:.4f}" if best.get("test_accuracy") is not None else ""
    figure = root / "tune_hyperparameters.png"
    img = (f'<img src="data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode()}" '
           f'alt="validation accuracy against each hyperparameter">' if figure.is_file() else "")
    return (
        '<section class="figure"><h2>Hyperparameter search</h2>'
        f'<p class="caption">Trial {esc(me)} of a {esc(str(s.get("tuner", "?")))} search in {esc(str(root))}: '
        f'{len(done)} completed trials, this one ranked {rank or "-"} by validation accuracy. Best: trial '
        f'{esc(str(best.get("trial_id", "-")))} (validation {best.get("val_accuracy", float("nan")):.4f}{test}); '
        f'again with <code>{esc(best.get("command", "-"))}</code>. In a trial folder, metrics.json\'s test '
        'numbers are on the validation split: trials never see the test set.</p>'
        '<table><thead><tr><th>trial</th><th>val accuracy</th><th>worker</th><th>hyperparameters</th></tr>'
        f'</thead><tbody>{rows}</tbody></table>{img}</section>'
    )
