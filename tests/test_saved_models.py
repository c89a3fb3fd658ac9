"""A model saved before the package moved into subpackages still loads and predicts the same.

`tests/fixtures/pre_layout_cnn.keras` was saved when RandomAffine, the fused
BatchNormalization and OneCycle lived in `mnistlab.augment`,
`mnistlab.batchnorm` and `mnistlab.schedules` (tests/fixtures/README.md). Its
config names those modules; the objects are found by their registered names
("mnistlab>RandomAffine", ...), which the move kept.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD = FIXTURES / "pre_layout_cnn.keras"


def _images():
    return np.random.default_rng(0).integers(0, 256, (64, 28, 28)).astype("uint8")[:8]


def test_the_fixture_names_the_old_modules():
    """The file really is from before the move: its config names the old module paths."""
    with zipfile.ZipFile(OLD) as z:
        config = z.read("config.json").decode()
    for old in ("mnistlab.augment", "mnistlab.batchnorm", "mnistlab.schedules"):
        assert f'"module": "{old}"' in config
    for name in ("mnistlab>RandomAffine", "mnistlab>BatchNormalization", "mnistlab>OneCycle"):
        assert f'"registered_name": "{name}"' in config


def test_a_pre_move_model_loads_with_keras_after_import_mnistlab_models():
    import keras

    import mnistlab.models  # noqa: F401  (registers mnistlab's Keras objects)
    from mnistlab.models.augment import RandomAffine
    from mnistlab.models.batchnorm import BatchNormalization
    from mnistlab.models.schedules import OneCycle

    model = keras.saving.load_model(OLD)
    kinds = {type(layer) for layer in model.layers}
    assert RandomAffine in kinds and BatchNormalization in kinds
    assert isinstance(model.optimizer.learning_rate, OneCycle) or isinstance(
        getattr(model.optimizer, "_learning_rate", None), OneCycle)
    probs = model.predict(_images(), verbose=0)
    np.testing.assert_allclose(probs, np.load(FIXTURES / "pre_layout_cnn_probs.npy"), rtol=1e-4, atol=1e-5)


def test_a_pre_move_model_in_a_run_folder_opens_for_evaluation(tmp_path):
    """The way `mnistlab evaluate/predict/serve` open a run: `load_best_model`."""
    from mnistlab.evaluation.finished_runs import load_best_model

    shutil.copy(OLD, tmp_path / "best.keras")
    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "cnn", "dataset": "mnist"}}))
    model = load_best_model(tmp_path)
    probs = model.predict(_images(), verbose=0)
    np.testing.assert_allclose(probs, np.load(FIXTURES / "pre_layout_cnn_probs.npy"), rtol=1e-4, atol=1e-5)
