"""`mnistlab` on the command line: a thin layer over the Python API.

Each subcommand lives in `mnistlab/cli/<name>.py` with two functions:
`add_arguments(parser)` and `run(args) -> int`, plus an optional
`default_backend(args)`. Keras is imported only after the arguments are parsed,
so `--backend` can still choose it, and `mnistlab.configure()` (TensorFlow's
oneDNN kernels and quiet start-up, JAX's compilation cache) runs before that
import: TensorFlow reads its options once, when it is imported. A
`MnistlabError` (bad input) prints one line to stderr and exits with code 2;
argparse's own errors exit 2 as well.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from mnistlab.config import BACKEND_PACKAGES, BACKENDS
from mnistlab.errors import MnistlabError

# subcommand -> module under mnistlab.cli
COMMANDS = {
    "train": "train",
    "lr-find": "lr_find",
    "evaluate": "evaluate",
    "predict": "predict",
    "serve": "serve",
    "ensemble": "ensemble",
    "tune": "tune",
}


def _available_commands():
    """The subcommands whose modules exist (so a partial install still runs)."""
    found = {}
    for name, module in COMMANDS.items():
        try:
            found[name] = importlib.import_module(f"mnistlab.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"mnistlab.cli.{module}":
                raise
    return found


def build_parser():
    from mnistlab import __version__
    parser = argparse.ArgumentParser(
        prog="mnistlab",
        description="Train, tune and inspect MNIST models with Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="Keras backend (default: $KERAS_BACKEND, else the faster one for the job)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = _available_commands()
    for name, module in modules.items():
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, parents=[common], help=doc[0] if doc else None,
                           description=(module.__doc__ or "").strip())
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def select_backend(args) -> str:
    """--backend, else $KERAS_BACKEND, else the command's measured default."""
    if "keras" in sys.modules and args.backend:
        import keras

        if keras.backend.backend() != args.backend:
            raise MnistlabError(
                f"Keras is already loaded with the {keras.backend.backend()} backend; "
                f"start a new process to use {args.backend}"
            )
    backend = args.backend or os.environ.get("KERAS_BACKEND")
    if not backend:
        chooser = getattr(args._module, "default_backend", None)
        backend = chooser(args) if chooser else "tensorflow"
    check_backend_installed(backend)
    os.environ["KERAS_BACKEND"] = backend
    return backend


def check_backend_installed(backend: str) -> None:
    """`MnistlabError` naming what to install when the backend's package is missing.

    PyTorch is not one of mnistlab's dependencies, so `--backend torch` (or
    KERAS_BACKEND=torch) on a plain install would otherwise end in Keras' import error.
    Backends mnistlab does not know (Keras' numpy, openvino) are left to Keras.
    """
    if backend not in BACKEND_PACKAGES:
        return
    module, install = BACKEND_PACKAGES[backend]
    if importlib.util.find_spec(module) is None:
        raise MnistlabError(f"the {backend} backend needs the {module} package, which is not installed: {install}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        select_backend(args)
        from mnistlab.training.environment import configure

        configure()  # the process is the CLI's: its settings before anything imports TensorFlow or JAX
        return int(args._module.run(args) or 0)
    except MnistlabError as e:
        print(f"mnistlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnistlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
