"""JAX's persistent compilation cache: on where mnistlab says, only when asked, and used by the next process."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import cli_env, in_one_pass

# Every test here runs child processes on the backend it names.
pytestmark = in_one_pass("jax")

CHILD = r"""
import json, sys
route = sys.argv[1]
import mnistlab
if route == "configure":  # before JAX is imported: through JAX's environment variables
    mnistlab.configure()
import keras
hits = []
if keras.backend.backend() == "jax":
    import jax
    jax.monitoring.register_event_listener(
        lambda event, *a, **k: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
path = None
if route == "enable":  # JAX already imported: through jax.config
    from mnistlab.training.compile_cache import enable_compile_cache
    path = enable_compile_cache()
elif route == "configure" and keras.backend.backend() == "jax":
    path = jax.config.jax_compilation_cache_dir
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
model.compile("adam", "mse")
model.fit(keras.ops.ones((8, 4)), keras.ops.ones((8, 2)), verbose=0)
print(json.dumps({"path": str(path) if path else None, "hits": len(hits)}))
"""


def run(backend, tmp_path, route="configure", **env):
    proc = subprocess.run([sys.executable, "-c", CHILD, route], capture_output=True, text=True, timeout=300,
                          env=cli_env(KERAS_BACKEND=backend, MNISTLAB_CACHE_DIR=tmp_path, **env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_second_process_gets_the_compiled_steps_from_the_cache(tmp_path):
    first = run("jax", tmp_path, "configure")
    assert first == {"path": str(tmp_path / "jax"), "hits": 0}
    stored = {p.name for p in (tmp_path / "jax").iterdir()}
    assert stored  # the compiled training step is on disk
    second = run("jax", tmp_path, "enable")  # the other route to the same folder
    assert second["path"] == str(tmp_path / "jax") and second["hits"] >= 1, second


def test_off_unless_asked_off_by_env_and_on_tensorflow(tmp_path):
    assert run("jax", tmp_path, "none") == {"path": None, "hits": 0}  # import mnistlab alone: no cache
    assert run("jax", tmp_path, "enable", MNISTLAB_COMPILE_CACHE=0)["path"] is None
    assert run("jax", tmp_path, "configure", MNISTLAB_COMPILE_CACHE=0)["path"] is None
    assert run("tensorflow", tmp_path, "enable")["path"] is None
    assert not (tmp_path / "jax").exists()
