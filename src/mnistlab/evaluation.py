"""Evaluating a trained run on the test set, with pictures and a report.

    >>> from mnistlab.evaluation import evaluate_run
    >>> result = evaluate_run("runs/mlp-5")
    >>> result["test_accuracy"], result["per_class"]["9"]["f1"]

`evaluate_run` loads the run's `best.keras`, predicts the whole test set of
the run's dataset and writes into the run folder:

    evaluation.json         accuracy, loss, per-class precision/recall/F1/support
                            (scikit-learn), the confusion matrix, the commonest
                            confusions and the most confident mistakes
    confusion_matrix.png    counts; correct in blue, mistakes in red
    misclassified.png       the test digits the model got wrong most confidently,
                            with true label, prediction and its probability
    report.html             all of it, plus learning_curves.png and lr_find.png
                            when present, in one self-contained page (images
                            embedded as data URIs)
    tensorboard/evaluation/ the figures as TensorBoard images, the accuracy as
                            scalars and the per-class table as text

`load_best_model` is also what `mnistlab predict` and `mnistlab serve` use to
open a run. A missing folder, a missing or corrupt `best.keras`, or a model
that is not a 28x28 -> 10 classifier raises `MnistlabError` naming the file.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import time
from pathlib import Path

import numpy as np

from mnistlab import runs
from mnistlab.errors import MnistlabError

EVALUATION = "evaluation.json"
CONFUSION = "confusion_matrix.png"
MISCLASSIFIED = "misclassified.png"
REPORT = "report.html"
LR_FIND = "lr_find.png"
TB_EVALUATION = "evaluation"  # under tensorboard/


# ------------------------------------------------------------------ the run


def check_run_dir(run_dir) -> Path:
    """`run_dir` as a Path, if it is a folder holding best.keras; else `MnistlabError`."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise MnistlabError(f"run folder {run_dir} does not exist")
    if not run_dir.is_dir():
        raise MnistlabError(f"{run_dir} is a file, not a run folder")
    best = run_dir / runs.BEST
    if not best.is_file():
        raise MnistlabError(
            f"{best} not found: {run_dir} is not a finished mnistlab run "
            "(train one with `mnistlab train --run-dir ...`)"
        )
    return run_dir


def run_config(run_dir) -> dict:
    """The run's config.json, or {} when there is none (a bare model file still works)."""
    path = Path(run_dir) / runs.CONFIG
    return runs.read_json(path) if path.exists() else {}


def run_dataset(run_dir) -> str:
    """The dataset the run was trained on (`mnist` when config.json does not say)."""
    return (run_config(run_dir).get("config") or {}).get("dataset", "mnist")


def class_names(run_dir) -> list[str]:
    from mnistlab.data import spec

    return list(spec(run_dataset(run_dir)).class_names)


def load_best_model(run_dir):
    """The run's best.keras, loaded for inference (not compiled).

    Raises `MnistlabError` naming the file when it is missing, unreadable or
    not a model taking (N, 28, 28) pixels and giving 10 probabilities.
    """
    run_dir = check_run_dir(run_dir)
    path = run_dir / runs.BEST
    import keras

    import mnistlab.models  # noqa: F401  (registers RandomAffine and OneCycle for loading)

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # zipfile, h5py, JSON and deserialisation errors all mean "corrupt"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MnistlabError(
            f"{path} is not a readable Keras model ({reason[:200]}); train the run again"
        ) from None
    in_shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    out_shape = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if in_shape is None or in_shape[1:] != (28, 28) or out_shape is None or out_shape[1:] != (10,):
        raise MnistlabError(
            f"{path} takes {model.input_shape} and gives {model.output_shape}; "
            "an mnistlab model takes (None, 28, 28) pixels and gives (None, 10) probabilities"
        )
    return model


# ------------------------------------------------------------------ metrics


def compute_metrics(y_true, probs, names) -> dict:
    """Accuracy, cross-entropy, per-class scores and the confusion matrix.

    Args:
        y_true: integer labels (N,).
        probs: predicted probabilities (N, K).
        names: a name per class (K).
    """
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=[str(n) for n in names],
        output_dict=True, zero_division=0,
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    off = [(int(cm[i, j]), i, j) for i in labels for j in labels if i != j and cm[i, j]]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return {
        "n_test": int(len(y_true)),
        "test_accuracy": float((y_pred == y_true).mean()),
        "test_loss": float(-np.log(p_true).mean()),
        "errors": int((y_pred != y_true).sum()),
        "class_names": [str(n) for n in names],
        "per_class": {
            str(names[i]): {
                "precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i]),
            }
            for i in labels
        },
        "macro_avg": {k.replace("-score", ""): float(v) for k, v in report["macro avg"].items()},
        "weighted_avg": {k.replace("-score", ""): float(v) for k, v in report["weighted avg"].items()},
        "confusion_matrix": cm.astype(int).tolist(),
        "top_confusions": [
            {"true": i, "predicted": j, "count": c} for c, i, j in off[:10]
        ],
    }


def confident_mistakes(y_true, probs, n: int = 32) -> list[dict]:
    """The `n` wrong predictions with the highest probability, most confident first."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probs[wrong, y_pred[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:n]
    return [
        {"index": int(i), "true": int(y_true[i]), "predicted": int(y_pred[i]),
         "probability": float(probs[i, y_pred[i]]), "probability_true": float(probs[i, y_true[i]])}
        for i in order
    ]


# ------------------------------------------------------------------ figures


def plot_confusion_matrix(cm, names, path=None, title=None):
    """Counts per (true, predicted) pair; the diagonal in blue, mistakes in red.

    Args:
        cm: (K, K) counts, rows true, columns predicted.
        names: a name per class.
        path: where to save the PNG; None returns the figure.
        title: figure title (default: the accuracy).
    """
    from mnistlab.plots import save_figure, subplots

    cm = np.asarray(cm)
    k = len(cm)
    diag = np.where(np.eye(k, dtype=bool), cm, np.nan)
    off = np.where(np.eye(k, dtype=bool) | (cm == 0), np.nan, cm)
    size = max(5.0, 0.55 * k + 2.2)
    fig, ax = subplots(figsize=(size, size * 0.92))
    ax.imshow(diag, cmap="Blues", vmin=0, vmax=max(1, np.nanmax(diag) if k else 1) * 1.15)
    top_off = np.nanmax(off) if np.isfinite(off).any() else 1
    ax.imshow(off, cmap="Reds", vmin=0, vmax=top_off * 1.1)
    for i in range(k):
        for j in range(k):
            v = int(cm[i, j])
            if v == 0:
                continue
            dark = (i == j) or (v > 0.55 * top_off)
            ax.text(j, i, f"{v}", ha="center", va="center", fontsize=8 if v < 1000 else 7,
                    color="white" if dark else "#5a1010", fontweight="bold" if i == j else None)
    short = [str(n) if len(str(n)) <= 8 else str(n)[:7] + "." for n in names]
    ax.set_xticks(range(k), short, rotation=0 if max(map(len, short)) <= 2 else 45,
                  ha="center" if max(map(len, short)) <= 2 else "right")
    ax.set_yticks(range(k), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(np.arange(-0.5, k), minor=True)
    ax.set_yticks(np.arange(-0.5, k), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    total = cm.sum()
    acc = np.trace(cm) / total if total else float("nan")
    ax.set_title(title or f"Confusion matrix: {int(total - np.trace(cm))} mistakes of {int(total)} "
                          f"(accuracy {acc:.2%})", fontsize=10)
    fig.tight_layout()
    if path is None:
        return fig
    save_figure(fig, path)
    return None


def plot_misclassified(images, mistakes, names, path=None, cols: int = 8):
    """A grid of misclassified digits: true label, prediction and its probability.

    Args:
        images: the test images (N, 28, 28), 0..255.
        mistakes: records from `confident_mistakes`.
        names: a name per class.
        path: where to save the PNG; None returns the figure.
        cols: images per row.
    """
    from mnistlab.plots import save_figure, subplots

    n = len(mistakes)
    if n == 0:
        fig, ax = subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No misclassified test images.", ha="center", va="center", fontsize=12)
    else:
        cols = min(cols, n)
        rows = math.ceil(n / cols)
        fig, axes = subplots(rows, cols, figsize=(1.45 * cols, 1.75 * rows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, m in zip(axes.ravel(), mistakes):
            ax.imshow(images[m["index"]], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(
                f"true {names[m['true']]} → {names[m['predicted']]}\n"
                f"p={m['probability']:.3f}  #{m['index']}",
                fontsize=8.5, color="#a31515", linespacing=1.2,
            )
        fig.suptitle("Most confident mistakes on the test set", fontsize=11)
        fig.tight_layout()
    if path is None:
        return fig
    save_figure(fig, path)
    return None


# ------------------------------------------------------------------ TensorBoard


def write_tensorboard(run_dir, figures: dict, result: dict, step: int = 0) -> Path:
    """The figures (name -> PNG path) as images, accuracy/loss as scalars and the
    per-class table as text, under run_dir/tensorboard/evaluation (replacing
    an earlier evaluation's)."""
    from mnistlab.summaries import EventWriter

    log_dir = Path(run_dir) / runs.TENSORBOARD / TB_EVALUATION
    with EventWriter(log_dir, replace=True) as writer:  # the folder holds the latest evaluation only
        for name, png in figures.items():
            writer.image(name, Path(png).read_bytes(), step)
        writer.scalar("test_accuracy", result["test_accuracy"], step)
        writer.scalar("test_loss", result["test_loss"], step)
        writer.text("per_class", markdown_table(result), step)
    return log_dir


def markdown_table(result: dict) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, s in result["per_class"].items():
        lines.append(f"| {name} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ report


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt_seconds(s) -> str:
    if s is None:
        return "–"
    s = float(s)
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _card(label, value, note=""):
    note = f'<div class="note">{html.escape(note)}</div>' if note else ""
    return (f'<div class="card"><div class="label">{html.escape(label)}</div>'
            f'<div class="value">{html.escape(str(value))}</div>{note}</div>')


def _bar_cell(text: str, share: float, worst: bool) -> str:
    """A table cell with `text` after a small bar filled to `share` (0..1)."""
    pct = max(0.0, min(1.0, share)) * 100
    cls = "bar worst" if worst else "bar"
    return f'<td class="num"><div class="{cls}"><span style="width:{pct:.1f}%"></span></div>{text}</td>'


def render_report(run_dir, result: dict) -> str:
    """The self-contained HTML page for an evaluation `result` of `run_dir`."""
    run_dir = Path(run_dir)
    cfg_file = run_config(run_dir)
    cfg = cfg_file.get("config") or {}
    metrics_path = run_dir / runs.METRICS
    train_metrics = runs.read_json(metrics_path) if metrics_path.exists() else {}
    names = result["class_names"]
    esc = html.escape

    f1s = {n: s["f1"] for n, s in result["per_class"].items()}
    worst = min(f1s, key=f1s.get) if f1s else None
    cm = result["confusion_matrix"]
    wrong = {n: result["per_class"][n]["support"] - cm[i][i] for i, n in enumerate(names)}
    most_wrong = max(max(wrong.values()), 1)
    rows = []
    for name, s in result["per_class"].items():
        rows.append(
            f'<tr class="{"worst" if name == worst else ""}"><th scope="row">{esc(name)}</th>'
            f'<td class="num">{s["precision"]:.4f}</td><td class="num">{s["recall"]:.4f}</td>'
            f'<td class="num">{s["f1"]:.4f}</td><td class="num">{s["support"]:,}</td>'
            f"{_bar_cell(f'{wrong[name]:,}', wrong[name] / most_wrong, name == worst)}</tr>"
        )
    for label, avg in (("macro avg", result["macro_avg"]), ("weighted avg", result["weighted_avg"])):
        rows.append(
            f'<tr class="avg"><th scope="row">{label}</th><td class="num">{avg["precision"]:.4f}</td>'
            f'<td class="num">{avg["recall"]:.4f}</td><td class="num">{avg["f1"]:.4f}</td>'
            f'<td class="num">{int(avg["support"]):,}</td><td class="num">{result["errors"]:,}</td></tr>'
        )
    confusions = "".join(
        f'<tr><td>{esc(names[c["true"]])}</td><td>{esc(names[c["predicted"]])}</td>'
        f'<td class="num">{c["count"]}</td>'
        f'<td class="num">{c["count"] / max(1, result["per_class"][names[c["true"]]]["support"]):.2%}</td></tr>'
        for c in result["top_confusions"]
    ) or '<tr><td colspan="4">No mistakes.</td></tr>'

    cards = [
        _card("Test accuracy", f"{result['test_accuracy']:.2%}",
              f"{result['errors']:,} of {result['n_test']:,} wrong"),
        _card("Test loss", f"{result['test_loss']:.4f}", "cross-entropy"),
        _card("Macro F1", f"{result['macro_avg']['f1']:.4f}",
              f"weakest class {worst} ({f1s[worst]:.3f})" if worst is not None else ""),
    ]
    if train_metrics.get("best_epoch") is not None:
        cards.append(_card("Best epoch", f"{train_metrics['best_epoch']} / {train_metrics.get('epochs_run', '?')}",
                           f"val. accuracy {train_metrics.get('best_val_accuracy', float('nan')):.4f}"))
    if train_metrics.get("fit_seconds") is not None:
        cards.append(_card("Training time", _fmt_seconds(train_metrics.get("total_seconds", train_metrics["fit_seconds"])),
                           f"{train_metrics.get('n_train', '?'):,} training examples"
                           if isinstance(train_metrics.get("n_train"), int) else ""))

    figures = [
        ("Confusion matrix", run_dir / CONFUSION,
         "Rows are the true digits, columns the predictions. Blue: correct; red: mistakes, darker is more."),
        ("Most confident mistakes", run_dir / MISCLASSIFIED,
         "The test digits the model got wrong with the highest probability: true label → prediction, "
         "its probability and the test-set index. Some are mislabelled or ambiguous."),
        ("Learning curves", run_dir / runs.CURVES,
         "Loss, accuracy and learning rate per epoch, training against validation; "
         "the dashed line marks the best validation accuracy (the epoch best.keras holds)."),
        ("Learning-rate range test", run_dir / LR_FIND,
         "Loss against learning rate on a throw-away copy of the model; the marked rate was used."),
    ]
    fig_html = "".join(
        f'<section class="figure"><h2>{esc(title)}</h2><p class="caption">{esc(caption)}</p>'
        f'<img src="{_data_uri(path)}" alt="{esc(title)}"></section>'
        for title, path, caption in figures if path.is_file()
    )
    settings = {k: v for k, v in cfg.items() if v not in (None, {}, [])}
    settings_rows = "".join(
        f"<tr><th scope=\"row\">{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in settings.items()
    )
    env_bits = []
    if cfg_file.get("backend"):
        env_bits.append(f"trained with {cfg_file['backend']}")
    versions = cfg_file.get("versions") or {}
    if versions.get("keras"):
        env_bits.append(f"Keras {versions['keras']}")
    env_bits.append(f"evaluated with {result.get('backend', '?')}")
    subtitle = " · ".join([
        f"model <b>{esc(str(cfg.get('model', '?')))}</b>",
        f"dataset <b>{esc(str(result.get('dataset', '?')))}</b>",
        *map(esc, env_bits),
        esc(result.get("evaluated_at", "")),
    ])
    return _PAGE.format(
        title=esc(f"mnistlab evaluation: {run_dir.name}"),
        run=esc(run_dir.name), path=esc(str(run_dir.resolve())), subtitle=subtitle,
        cards="".join(cards), rows="".join(rows), confusions=confusions, figures=fig_html,
        settings=settings_rows or '<tr><td colspan="2">config.json not found</td></tr>',
        version=esc(_version()),
    )


def _version() -> str:
    from mnistlab import __version__

    return __version__


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
:root {{ --ink:#1d2433; --muted:#5c6578; --line:#e3e7ef; --bg:#f6f7fb; --accent:#2f6fde; --bad:#c62828; }}
* {{ box-sizing:border-box; }}
body {{ margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--ink); background:var(--bg); }}
main {{ max-width:1080px; margin:0 auto; padding:28px 24px 48px; }}
header h1 {{ font-size:26px; margin:0 0 4px; letter-spacing:-0.01em; }}
header .sub {{ color:var(--muted); font-size:14px; }}
header .path {{ color:var(--muted); font:12px ui-monospace,"DejaVu Sans Mono",monospace; margin-top:2px; }}
.cards {{ display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:14px; margin:22px 0; }}
.card {{ background:#fff; border:1px solid var(--line); border-radius:12px; padding:14px 16px;
        box-shadow:0 1px 2px rgba(20,30,60,.04); }}
.card .label {{ color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.06em; }}
.card .value {{ font-size:28px; font-weight:650; margin-top:2px; font-variant-numeric:tabular-nums; }}
.card .note {{ color:var(--muted); font-size:13px; }}
section {{ background:#fff; border:1px solid var(--line); border-radius:12px; padding:18px 20px; margin:16px 0; }}
h2 {{ font-size:18px; margin:0 0 6px; }}
.caption {{ color:var(--muted); margin:0 0 12px; font-size:14px; }}
.two {{ display:grid; grid-template-columns:minmax(0,1fr) 330px; gap:16px; align-items:start; }}
.two section {{ overflow-x:auto; }}
.two section {{ margin:0; }}
@media (max-width:860px) {{ .two {{ grid-template-columns:1fr; }} }}
table {{ border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }}
th, td {{ padding:6px 8px; border-bottom:1px solid var(--line); text-align:left; white-space:nowrap; }}
thead th {{ font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.05em; }}
td.num, th.num {{ text-align:right; white-space:nowrap; }}
tbody tr:hover {{ background:#f3f6fc; }}
tr.worst th {{ color:var(--bad); }}
tr.avg th, tr.avg td {{ font-weight:600; background:#fafbfd; }}
.bar {{ display:inline-block; width:80px; height:8px; background:#f4eeee; border-radius:4px;
       margin-right:8px; vertical-align:middle; overflow:hidden; }}
.bar span {{ display:block; height:100%; background:#e58a8a; }}
.bar.worst span {{ background:var(--bad); }}
.figure img {{ max-width:min(100%, 960px); height:auto; display:block; margin:0 auto; }}
details summary {{ cursor:pointer; font-weight:600; }}
footer {{ color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }}
</style></head>
<body><main>
<header><h1>Evaluation of <code>{run}</code></h1>
<div class="sub">{subtitle}</div><div class="path">{path}</div></header>
<div class="cards">{cards}</div>
<div class="two">
<section><h2>Per class</h2><p class="caption">Precision, recall and F1 on the test set (scikit-learn); the class with the lowest F1 in red, bars for the number wrong.</p>
<table><thead><tr><th>class</th><th class="num">precision</th><th class="num">recall</th><th class="num">F1</th>
<th class="num">support</th><th class="num">wrong</th></tr></thead><tbody>{rows}</tbody></table></section>
<section><h2>Commonest confusions</h2><p class="caption">True class taken for another, and the share of that class.</p>
<table><thead><tr><th>true</th><th>predicted</th><th class="num">count</th><th class="num">share</th></tr></thead>
<tbody>{confusions}</tbody></table></section>
</div>
{figures}
<section><details><summary>Training settings (config.json)</summary>
<table>{settings}</table></details></section>
<footer>Generated by mnistlab {version}. Files beside this page: evaluation.json, confusion_matrix.png,
misclassified.png; TensorBoard: <code>tensorboard --logdir tensorboard</code>.</footer>
</main></body></html>
"""


# ------------------------------------------------------------------ the whole job


def evaluate_run(run_dir, data_dir=None, dataset=None, n_mistakes: int = 32,
                 batch_size: int = 1000, tensorboard: bool = True, model=None) -> dict:
    """Evaluate `run_dir`'s best.keras on the test set and write the files listed above.

    Args:
        run_dir: a finished run folder.
        data_dir: where to find the data (see `mnistlab.data.load`).
        dataset: a loaded `mnistlab.data.Dataset` instead (must be the run's).
        n_mistakes: how many confident mistakes to show.
        batch_size: prediction batch size.
        tensorboard: also write TensorBoard summaries.
        model: an already loaded model instead of best.keras.

    Returns the contents of evaluation.json.
    """
    started = time.perf_counter()
    run_dir = check_run_dir(run_dir)
    name = run_dataset(run_dir)
    if model is None:
        model = load_best_model(run_dir)
    if dataset is None:
        from mnistlab import data

        dataset = data.load(name, data_dir=data_dir)
    elif dataset.name != name:
        raise MnistlabError(f"{run_dir} was trained on {name}, not on the {dataset.name} given")
    import keras

    x_test = np.asarray(dataset.x_test, dtype=np.float32)
    probs = np.asarray(model.predict(x_test, batch_size=batch_size, verbose=0), dtype=np.float64)
    names = list(dataset.class_names)
    result = {
        "run_dir": str(run_dir),
        "dataset": name,
        "backend": keras.backend.backend(),
        "evaluated_at": datetime.datetime.now().isoformat(timespec="seconds"),
        **compute_metrics(dataset.y_test, probs, names),
    }
    mistakes = confident_mistakes(dataset.y_test, probs, n_mistakes)
    result["most_confident_mistakes"] = mistakes
    plot_confusion_matrix(result["confusion_matrix"], names, run_dir / CONFUSION)
    plot_misclassified(dataset.x_test, mistakes, names, run_dir / MISCLASSIFIED)
    figures = {"confusion_matrix": run_dir / CONFUSION, "misclassified": run_dir / MISCLASSIFIED}
    for tb_name, file in (("learning_curves", runs.CURVES), ("lr_find", LR_FIND)):
        if (run_dir / file).is_file():
            figures[tb_name] = run_dir / file
    if tensorboard:
        write_tensorboard(run_dir, figures, result)
    result["files"] = {
        "evaluation": EVALUATION, "confusion_matrix": CONFUSION, "misclassified": MISCLASSIFIED,
        "report": REPORT, "tensorboard": f"{runs.TENSORBOARD}/{TB_EVALUATION}" if tensorboard else None,
    }
    result["seconds"] = round(time.perf_counter() - started, 3)
    with runs.atomic_path(run_dir / REPORT) as tmp:
        tmp.write_text(render_report(run_dir, result), encoding="utf-8")
    runs.write_json(run_dir / EVALUATION, result)
    return result


def summary(result: dict) -> str:
    """A few lines for the terminal."""
    f1s = {n: s["f1"] for n, s in result["per_class"].items()}
    worst = min(f1s, key=f1s.get)
    names = result["class_names"]
    lines = [
        f"test accuracy {result['test_accuracy']:.4f} ({result['errors']} of {result['n_test']} wrong), "
        f"loss {result['test_loss']:.4f}, macro F1 {result['macro_avg']['f1']:.4f}",
        f"weakest class {worst} (F1 {f1s[worst]:.4f})",
    ]
    if result["top_confusions"]:
        tops = ", ".join(f"{names[c['true']]}→{names[c['predicted']]} ×{c['count']}"
                         for c in result["top_confusions"][:3])
        lines[-1] += f"; commonest confusions {tops}"
    run_dir = Path(result["run_dir"])
    lines.append(f"report {run_dir / REPORT} | details {run_dir / EVALUATION} | "
                 f"tensorboard --logdir {run_dir / runs.TENSORBOARD}")
    return "\n".join(lines)


__all__ = [
    "check_run_dir", "load_best_model", "run_config", "run_dataset", "class_names",
    "compute_metrics", "confident_mistakes", "plot_confusion_matrix", "plot_misclassified",
    "write_tensorboard", "render_report", "evaluate_run", "summary",
]
