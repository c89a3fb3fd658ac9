"""What `import mnistlab` sets up before TensorFlow loads."""

import os
import subprocess
import sys

import keras
import pytest

# The probe runs in its own process and imports TensorFlow itself, so one pass
# (CI runs the suite once per backend) is enough.
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="checked in the TensorFlow pass")

PROBE = """
import mnistlab, os
from tensorflow.python.util import _pywrap_util_port
print(os.environ["TF_ENABLE_ONEDNN_OPTS"], _pywrap_util_port.IsMklEnabled())
"""


def _probe(env_value):
    pytest.importorskip("tensorflow")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()[-2:]


def test_import_turns_on_tensorflow_onednn_kernels():
    # TensorFlow's own default leaves them off on CPUs without AVX-512 VNNI/BF16 or AMX.
    assert _probe(None) == ["1", "True"]


def test_user_choice_to_turn_onednn_off_is_kept():
    assert _probe("0") == ["0", "False"]
