"""The lr_tasks records: where they live, how they are read, and how a setup's process is started.

Each setup of `benchmarks/lr_tasks/setups.py` is recorded once into
benchmarks/results/lr_tasks/SETUP.json (`python -m benchmarks.lr_tasks.benchmark
record`); scoring adds what it trains (suggested rates, LR-free optimizers) to
the same file, so any rule can be scored again without retraining.
"""

from __future__ import annotations

import json

from benchmarks.common.fresh_process import run_child
from benchmarks.common.paths import REPO_ON_PATH, RESULTS_DIR
from benchmarks.lr_tasks import setups

RESULTS = RESULTS_DIR / "lr_tasks"
REPORT_MD = RESULTS_DIR / "lr_tasks.md"
CHILD = REPO_ON_PATH + "\nfrom benchmarks.lr_tasks.trainer import child_main\nchild_main(sys.argv[1:])\n"


def result_path(name: str):
    return RESULTS / f"{name}.json"


def load_results(names=None) -> dict:
    names = names or [s.name for s in setups.SETUPS]
    return {n: json.loads(result_path(n).read_text()) for n in names if result_path(n).exists()}


def save(r: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_path(r["setup"]).write_text(json.dumps(r, indent=1))


def run_task_child(name: str, job: dict) -> dict:
    """`job` (see benchmarks/lr_tasks/trainer.py) for setup `name`, in a fresh process on its backend."""
    return run_child(CHILD, [name, json.dumps(job)], setups.BY_NAME[name].backend, f"lr_tasks setup {name}")
