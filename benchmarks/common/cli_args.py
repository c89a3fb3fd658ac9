"""Command-line options the benchmark scripts share: `--backend`, and JSON-object options such as `--options`."""

from __future__ import annotations

import json


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
