"""Ensembles: the average of the runs' probabilities, and clear errors for bad run lists."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import cli_env
from mnistlab import data
from mnistlab.config import make_config
from mnistlab.evaluation.ensemble import average_probabilities, evaluate_ensemble
from mnistlab.errors import MnistlabError
from mnistlab.training.train import train


def test_average_probabilities_is_the_elementwise_mean():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([[0.3, 0.7], [0.4, 0.6]])
    assert np.allclose(average_probabilities([a, b]), [[0.6, 0.4], [0.3, 0.7]])
    with pytest.raises(MnistlabError, match="do not line up"):
        average_probabilities([a, b[:1]])
    with pytest.raises(MnistlabError, match="at least one run"):
        average_probabilities([])


@pytest.fixture(scope="module")
def two_runs(tiny_mnist_dir, tmp_path_factory):
    tiny = data.load_folder(tiny_mnist_dir, verify=False)
    root = tmp_path_factory.mktemp("ensemble")
    dirs = []
    for seed in (1, 2):
        config = make_config("mlp", epochs=1, batch_size=64, seed=seed,
                             model_options={"depth": 1, "width": 16})
        dirs.append(train(config, root / f"run{seed}", dataset=tiny, verbose=0).run_dir)
    return tiny, dirs


def test_ensemble_accuracy_is_that_of_the_mean_probabilities(two_runs):
    tiny, dirs = two_runs
    result = evaluate_ensemble(dirs, dataset=tiny)
    from mnistlab.evaluation.evaluate import load_best_model

    x = tiny.x_test.astype("float32")
    probs = [np.asarray(load_best_model(d).predict(x, verbose=0)) for d in dirs]
    expected = np.mean((probs[0] + probs[1]).argmax(1) == tiny.y_test)
    assert result["ensemble_accuracy"] == pytest.approx(expected)
    for member, p in zip(result["members"], probs):
        assert member["test_accuracy"] == pytest.approx(np.mean(p.argmax(1) == tiny.y_test))
    assert result["n_test"] == 100 and result["ensemble_errors"] == round(100 * (1 - expected))


def test_ensemble_cli(two_runs, tiny_mnist_dir, tmp_path):
    _, dirs = two_runs
    out = tmp_path / "ensemble.json"
    proc = subprocess.run([sys.executable, "-m", "mnistlab", "ensemble", *map(str, dirs),
                           "--data-dir", str(tiny_mnist_dir), "--output", str(out)],
                          capture_output=True, text=True, env=cli_env(MNISTLAB_SKIP_MD5=1), timeout=600)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(out.read_text())
    assert f"ensemble of 2 on mnist: test accuracy {saved['ensemble_accuracy']:.4f}" in proc.stdout


def test_bad_run_lists_exit_2(two_runs, tmp_path):
    _, dirs = two_runs
    fashion = tmp_path / "fashion"
    shutil.copytree(dirs[1], fashion)
    cfg = json.loads((fashion / "config.json").read_text())
    cfg["config"]["dataset"] = "fashion_mnist"
    (fashion / "config.json").write_text(json.dumps(cfg))
    cases = [
        ([dirs[0], tmp_path / "missing"], "does not exist"),
        ([dirs[0], dirs[0]], "named twice"),
        ([dirs[0], fashion], "different datasets"),
        ([dirs[0], "--output", tmp_path / "no" / "such" / "dir.json"], "folder"),
    ]
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "mnistlab", "ensemble", *map(str, args)],
                              capture_output=True, text=True, env=cli_env(), timeout=600)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
