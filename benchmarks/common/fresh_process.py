"""Run a benchmark snippet in a fresh Python process on one Keras backend; read back its result.

The backend is fixed when Keras is first imported, so every measurement that
compares backends (or wants a cold start) runs in its own process. The snippet
gets `args` as sys.argv[1:] and reports by printing one line
`RESULT <json>` (its last such line wins; anything else it prints is ignored).
Unless `as_mnistlab=False` (a peer's plain Keras script), the snippet runs after
`mnistlab.configure()`, as our CLI does: TensorFlow's options before TensorFlow
loads, and JAX's compilation cache (mnistlab/training/environment.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _die_with_parent():
    """In the child, before it runs (Linux): ask for SIGTERM when the parent dies.

    An interrupted benchmark (a `kill` of the parent) otherwise left its
    training child running on the cores, and it spoiled the next measurement.
    """
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # no prctl here: the child outlives an interrupted parent, as before


def run_child(code, args, backend, what, as_mnistlab=True):
    """Run `code` with `args` under KERAS_BACKEND=`backend`; return its RESULT or exit naming `what`."""
    if as_mnistlab:
        code = "import mnistlab\nmnistlab.configure()\n" + code
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                          check=False,  # failures are reported below, with stderr
                          preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{what} on {backend} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])
