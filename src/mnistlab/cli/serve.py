"""Serve a web page to draw digits (or upload pictures) and see the model's answer live.

Also a JSON API: POST /api/predict with the picture in the multipart field
`file` (see `mnistlab.serving.server`). Listens on 127.0.0.1:8000 unless told
otherwise; Ctrl+C stops it.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path


def add_arguments(p):
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder holding best.keras")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")


def default_backend(args):
    # Start-up is the same on both backends and JAX answers a request faster on 2 cores
    # (docs/performance.md, "Smaller measurements behind the code").
    return "jax"


def run(args) -> int:
    from mnistlab.errors import MnistlabError
    from mnistlab.evaluation.evaluate import check_run_dir

    check_run_dir(args.run_dir)
    if not 0 <= args.port <= 65535:
        raise MnistlabError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"mnistlab serve: warning: listening on {args.host} makes the page reachable from "
              "other machines; this development server is not hardened", file=sys.stderr)
    from mnistlab.serving.server import serve

    serve(args.run_dir, host=args.host, port=args.port)
    return 0
