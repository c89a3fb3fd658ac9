"""notebooks/exercise_10.ipynb runs end to end: a copy is executed in a fresh kernel with
MNISTLAB_QUICK=1 (a few thousand images, an epoch or two). A cell that errors fails the test."""

from __future__ import annotations

import shutil

import keras
import pytest

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "exercise_10.ipynb"

pytestmark = [
    pytest.mark.slow,
    # one pass is enough: the notebook runs on whichever backend its kernel gets
    pytest.mark.skipif(keras.backend.backend() != "jax", reason="the notebook runs in the JAX pass"),
]


def test_the_exercise_notebook_runs(mnist_dir, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    copy = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:  # a clean start: the committed outputs must not hide an error
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # the kernel inherits this process's environment
    monkeypatch.setenv("MNISTLAB_QUICK", "1")
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(mnist_dir))
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, when one fails
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "test accuracy" in text and "predicted" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plots were drawn
    assert (tmp_path / "runs" / "notebook-mlp" / "best.keras").is_file()
