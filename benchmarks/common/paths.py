"""Where the benchmarks live and write, and the line that lets a fresh process import them.

The scripts run from the repository root as modules (`python -m
benchmarks.GROUP.SCRIPT`) and import one another by full name
(`from benchmarks.common.fresh_process import run_child`). Code run in a fresh
`python -c` process starts with `REPO_ON_PATH`, which puts the repository root
first on its sys.path, so it imports them the same way from any directory.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
OUT_DIR = BENCHMARKS_DIR / "out"          # scratch: run folders, appended .jsonl results (not committed)
RESULTS_DIR = BENCHMARKS_DIR / "results"  # committed tables and records
REPO_ON_PATH = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})"
