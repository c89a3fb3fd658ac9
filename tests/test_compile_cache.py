"""JAX's persistent compilation cache: on where mnistlab says, off when asked."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import cli_env

CHILD = r"""
import json
import keras
from mnistlab.compile_cache import enable_compile_cache
path = enable_compile_cache()
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
model.compile("adam", "mse")
model.fit(keras.ops.ones((8, 4)), keras.ops.ones((8, 2)), verbose=0)
print(json.dumps({"path": str(path) if path else None}))
"""


def run(backend, tmp_path, **env):
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300,
                          env=cli_env(KERAS_BACKEND=backend, MNISTLAB_CACHE_DIR=tmp_path, **env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["path"]


def test_jax_steps_are_stored(tmp_path):
    assert run("jax", tmp_path) == str(tmp_path / "jax")
    assert any((tmp_path / "jax").iterdir())  # the compiled training step is on disk


def test_off_by_env_and_on_tensorflow(tmp_path):
    assert run("jax", tmp_path, MNISTLAB_COMPILE_CACHE=0) is None
    assert run("tensorflow", tmp_path) is None
    assert not (tmp_path / "jax").exists()
