"""The evaluation stage: a finished run folder in, its metrics, figures and report out.

Read `evaluate.py` first: `evaluate_run(run_dir)` scores `best.keras` on the
test set and writes `evaluation.json`, the confusion matrix, the most
confident mistakes and `report.html`.

- `finished_runs.py`: a run folder opened for use: checked, config read, best model loaded
- `metrics.py`: accuracy, per-class precision/recall/F1 and the confusion matrix (scikit-learn)
- `figures.py`: the confusion matrix and mistakes as pictures
- `report.py`: `report.html`, one self-contained page; `search_section.py`: its part for a trial of `mnistlab tune`
- `ensemble.py`: several runs' probabilities averaged (soft voting) and scored
"""
