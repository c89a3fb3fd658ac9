"""Run a benchmark snippet in a fresh Python process on one Keras backend; read back its result.

The backend is fixed when Keras is first imported, so every measurement that
compares backends (or wants a cold start) runs in its own process. The snippet
gets `args` as sys.argv[1:] and reports by printing one line
`RESULT <json>` (its last such line wins; anything else it prints is ignored).
Unless `as_mnistlab=False` (a peer's plain Keras script), the snippet runs after
`mnistlab.configure()`, as our CLI does: TensorFlow's options before TensorFlow
loads, and JAX's compilation cache (mnistlab/environment.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def add_backend_arg(parser, ours="our configs"):
    """The `--backend` option: run `ours` on one backend instead of their measured default."""
    parser.add_argument("--backend", choices=["jax", "tensorflow"], default=None,
                        help=f"run {ours} on this backend instead of their measured default (e.g. jax on a GPU)")


def json_object_arg(parser, flag: str, text: str, example: str = '{"batch_norm": false}') -> dict:
    """The JSON object given as `flag`'s `text`, or exit 2 through `parser` saying why."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        parser.error(f"{flag} {text!r} is not JSON ({e}); write e.g. '{example}'")
    if not isinstance(value, dict):
        parser.error(f"{flag} {text!r} must be a JSON object, e.g. '{example}'")
    return value


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
