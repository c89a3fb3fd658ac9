"""The public API, and what mnistlab changes in the process: nothing, unless asked.

`import mnistlab` and plotting leave the environment, matplotlib and the
backends alone; `mnistlab.configure()` (which the CLI calls before anything
imports TensorFlow) turns on TensorFlow's oneDNN kernels and JAX's cache.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

import mnistlab

TF_ONLY = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="probes run in their own process with TensorFlow; checked in the TensorFlow pass")

PUBLIC = ["lr_range_test", "LRRangeResult", "LRFinder", "make_config", "TrainConfig", "train", "TrainResult",
          "load_dataset", "build_mlp", "build_cnn", "OneCycle", "peak_schedule", "RunCheckpoint",
          "EpochTensorBoard", "TerminateOnNaN", "EarlyStopping", "ReduceLROnPlateau", "CSVLogger",
          "LearningRateLogger", "EpochTimer", "configure", "MnistlabError"]


def test_public_names_resolve():
    for name in PUBLIC:
        assert name in mnistlab.__all__ and name in dir(mnistlab), name
        assert getattr(mnistlab, name) is not None
    assert issubclass(mnistlab.RunCheckpoint, keras.callbacks.Callback)
    assert issubclass(mnistlab.LRFinder, keras.callbacks.Callback)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mnistlab.nope  # noqa: B018


def _run(code, env_changes=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL") and not k.startswith("JAX_")}
    env.update(env_changes or {})
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_and_plotting_change_nothing_global(tmp_path):
    code = f"""
import json, os, sys
before = dict(os.environ)
import matplotlib
backend = matplotlib.get_backend()
import mnistlab, mnistlab.training.plots
import matplotlib.pyplot as plt
fig = mnistlab.training.plots.plot_learning_curves({{"loss": [1.0, 0.5], "accuracy": [0.5, 0.8]}})
mnistlab.training.plots.save_figure(fig, {str(tmp_path / "c.png")!r})
print(json.dumps({{"env": sorted(set(os.environ.items()) ^ set(before.items())), "backend_same":
      matplotlib.get_backend() == backend, "pyplot_figures": plt.get_fignums(),
      "figure_class": type(fig).__name__, "tf": "tensorflow" in sys.modules}}))
"""
    out = _run(code, {"MPLBACKEND": "svg"})  # a backend Agg is not: plotting must keep it
    assert out == {"env": [], "backend_same": True, "pyplot_figures": [], "figure_class": "Figure", "tf": False}
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_configure_sets_only_what_the_user_has_not(tmp_path):
    code = """
import json, os, mnistlab
first = mnistlab.configure()
print(json.dumps({"first": first, "again": mnistlab.configure()}))
"""
    out = _run(code, {"MNISTLAB_CACHE_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert out["first"] == {
        "TF_ENABLE_ONEDNN_OPTS": "1",  # TF_CPP_MIN_LOG_LEVEL was the user's: kept
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    assert out["again"] == {}


def _onednn_probe(setup, env_value=None):
    pytest.importorskip("tensorflow")
    code = setup + """
import json, os
from tensorflow.python.util import _pywrap_util_port
print(json.dumps([os.environ.get("TF_ENABLE_ONEDNN_OPTS"), _pywrap_util_port.IsMklEnabled()]))
"""
    return _run(code, {} if env_value is None else {"TF_ENABLE_ONEDNN_OPTS": env_value})


@TF_ONLY
def test_configure_turns_on_tensorflow_onednn_kernels():
    # TensorFlow's own default leaves them off on CPUs without AVX-512 VNNI/BF16 or AMX.
    assert _onednn_probe("import mnistlab; mnistlab.configure()") == ["1", True]


@TF_ONLY
def test_the_cli_turns_them_on_before_tensorflow_loads():
    # `mnistlab lr-find --max-lr -1` fails on its settings, after the CLI's set-up and Keras' import
    setup = ("import os; os.environ['KERAS_BACKEND'] = 'tensorflow'\n"
             "from mnistlab.cli.main import main\n"
             "assert main(['lr-find', '--max-lr', '-1', '--backend', 'tensorflow']) == 2\n")
    assert _onednn_probe(setup) == ["1", True]


@TF_ONLY
def test_user_choice_to_turn_onednn_off_is_kept():
    assert _onednn_probe("import mnistlab; mnistlab.configure()", "0") == ["0", False]


def test_configure_warns_when_tensorflow_is_already_loaded(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    with pytest.warns(UserWarning, match="already imported"):
        assert mnistlab.configure(quiet_tensorflow=False, compile_cache=False) == {"TF_ENABLE_ONEDNN_OPTS": "1"}
