"""mnistlab.evaluation.evaluate and `mnistlab evaluate`: metrics, figures, TensorBoard images, report.html."""

from __future__ import annotations

import contextlib
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import digit_images
from mnistlab import runs
from mnistlab.evaluation import evaluate as evaluation
from mnistlab.errors import MnistlabError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ------------------------------------------------------------------ no model needed


def test_compute_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.9, 0.1, 0.0], [0.2, 0.7, 0.1],  # 0 right; 0 taken for 1
        [0.1, 0.8, 0.1], [0.0, 0.6, 0.4],  # both 1 right
        [0.3, 0.0, 0.7], [0.0, 0.0, 1.0],  # both 2 right
    ])
    m = evaluation.compute_metrics(y, probs, ["a", "b", "c"])
    assert m["test_accuracy"] == pytest.approx(5 / 6)
    assert m["errors"] == 1 and m["n_test"] == 6
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["test_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.8, 0.6, 0.7, 1.0])))
    assert m["macro_avg"]["f1"] == pytest.approx(np.mean([2 / 3, 0.8, 1.0]))
    assert m["top_confusions"] == [{"true": 0, "predicted": 1, "count": 1}]
    mistakes = evaluation.confident_mistakes(y, probs, n=5)
    assert mistakes == [{"index": 1, "true": 0, "predicted": 1, "probability": 0.7, "probability_true": 0.2}]


def test_figures_without_mistakes(tmp_path):
    evaluation.plot_confusion_matrix(np.diag([5, 7, 9]), ["x", "y", "z"], tmp_path / "cm.png")
    evaluation.plot_misclassified(np.zeros((1, 28, 28)), [], ["0"], tmp_path / "mis.png")
    for name in ("cm.png", "mis.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width > 200


@pytest.mark.parametrize("case", ["missing", "file", "no model", "corrupt", "not a model", "wrong shape"])
def test_bad_run_folders_raise_errors_naming_the_file(case, tmp_path):
    run = tmp_path / "run"
    named = run / runs.BEST
    if case == "missing":
        named = run
    elif case == "file":
        run.write_text("x")
        named = run
    else:
        run.mkdir()
        if case == "no model":
            (run / runs.CONFIG).write_text("{}")
        elif case == "corrupt":
            named.write_bytes(b"PK\x03\x04 definitely not a whole zip file")
        elif case == "not a model":
            named.write_text("hello")
        else:
            import keras

            tiny = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
            tiny.save(named)
    with pytest.raises(MnistlabError) as e:
        evaluation.load_best_model(run)
    assert str(named) in str(e.value)


# ------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The trained run, with a stand-in LR plot, evaluated through the CLI in this process."""
    run_dir = digit_images.trained_run(tmp_path_factory)
    shutil.copy(run_dir / runs.CURVES, run_dir / evaluation.LR_FIND)  # any PNG will do as lr_find.png
    from mnistlab.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["evaluate", str(run_dir), "--data-dir", str(digit_images.require_data_dir())])
    assert code == 0
    return run_dir, out.getvalue()


def test_evaluation_json(evaluated):
    run_dir, printed = evaluated
    result = json.loads((run_dir / evaluation.EVALUATION).read_text())
    trained = json.loads((run_dir / runs.METRICS).read_text())
    # The same model on the same test set as training's final Keras evaluate.
    assert result["test_accuracy"] == pytest.approx(trained["test_accuracy"], abs=2e-4)
    assert result["test_loss"] == pytest.approx(trained["test_loss"], rel=2e-3)
    assert result["test_accuracy"] > 0.9
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10000
    assert cm.sum(axis=1).tolist() == MNIST_TEST_COUNTS
    assert np.trace(cm) / cm.sum() == pytest.approx(result["test_accuracy"])
    assert result["errors"] == cm.sum() - np.trace(cm)
    for i, name in enumerate(result["class_names"]):
        s = result["per_class"][name]
        assert s["support"] == MNIST_TEST_COUNTS[i]
        assert s["recall"] == pytest.approx(cm[i, i] / cm[i].sum())
        assert s["precision"] == pytest.approx(cm[i, i] / cm[:, i].sum())
    counts = [c["count"] for c in result["top_confusions"]]
    assert counts == sorted(counts, reverse=True) and counts[0] == (cm - np.diag(np.diag(cm))).max()
    assert f"test accuracy {result['test_accuracy']:.4f}" in printed and "report.html" in printed


def test_mistakes_are_real_and_most_confident_first(evaluated, tmp_path_factory):
    run_dir, _ = evaluated
    result = json.loads((run_dir / evaluation.EVALUATION).read_text())
    mistakes = result["most_confident_mistakes"]
    assert len(mistakes) == 32
    probs = [m["probability"] for m in mistakes]
    assert probs == sorted(probs, reverse=True)
    ds = digit_images.dataset()
    model = digit_images.trained_model(tmp_path_factory)
    idx = [m["index"] for m in mistakes]
    p = np.asarray(model.predict_on_batch(ds.x_test[idx].astype("float32")))
    assert (p.argmax(axis=1) == [m["predicted"] for m in mistakes]).all()
    assert (ds.y_test[idx] == [m["true"] for m in mistakes]).all()
    assert (p.argmax(axis=1) != ds.y_test[idx]).all()
    assert np.allclose(p.max(axis=1), probs, atol=1e-4)


def test_figures_are_written(evaluated):
    run_dir, _ = evaluated
    for name in (evaluation.CONFUSION, evaluation.MISCLASSIFIED):
        with Image.open(run_dir / name) as im:
            assert im.format == "PNG" and im.width >= 500 and im.height >= 300
            assert len(np.unique(np.asarray(im.convert("L")))) > 20  # not a blank canvas


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


def test_report_html_is_self_contained(evaluated):
    run_dir, _ = evaluated
    page = (run_dir / evaluation.REPORT).read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(page)
    assert len(parser.images) == 4  # confusion matrix, mistakes, learning curves, LR range test
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
    assert all(link.startswith("data:") for link in parser.links), "nothing to fetch from elsewhere"
    assert not re.search(r"url\((?!data:)", page) and "<script" not in page
    assert parser.tags.count("table") == 3
    result = json.loads((run_dir / evaluation.EVALUATION).read_text())
    assert f"{result['test_accuracy']:.2%}" in page
    for name, s in result["per_class"].items():
        assert f"{s['f1']:.4f}" in page


def test_tensorboard_images(evaluated):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = evaluated
    log_dir = run_dir / runs.TENSORBOARD / evaluation.TB_EVALUATION
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"confusion_matrix", "misclassified", "learning_curves", "lr_find", "test_accuracy"} <= tags
    assert acc.SummaryMetadata("confusion_matrix").plugin_data.plugin_name == "images"
    width, height, png = acc.Tensors("confusion_matrix")[0].tensor_proto.string_val
    with Image.open(io.BytesIO(png)) as im, Image.open(run_dir / evaluation.CONFUSION) as original:
        assert im.size == original.size == (int(width), int(height))


def test_cli_evaluate_bad_run_exits_2(tmp_path):
    import keras

    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    for target in (tmp_path / "missing", tmp_path):
        done = subprocess.run([sys.executable, "-m", "mnistlab", "evaluate", str(target)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("mnistlab evaluate: error:") and str(target) in done.stderr
        assert "Traceback" not in done.stderr
