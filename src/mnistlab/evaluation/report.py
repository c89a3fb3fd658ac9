"""report.html: an evaluation gathered into one self-contained page.

`render_report(run_dir, result)` returns the HTML for an evaluation `result`
(the contents of evaluation.json): summary cards, the per-class table, the
commonest confusions, the figures of the run folder embedded as data URIs
(confusion matrix, most confident mistakes, learning curves, LR range test,
each when present) and the training settings from config.json.
`mnistlab.evaluation.evaluate.evaluate_run` writes it beside the other files.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from mnistlab import runs
from mnistlab.evaluation.finished_runs import CONFUSION, LR_FIND, MISCLASSIFIED, run_config


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
    from mnistlab.evaluation.search_section import report_section

    fig_html += report_section(run_dir)  # a trial of `mnistlab tune`: where it ranks in its search
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

