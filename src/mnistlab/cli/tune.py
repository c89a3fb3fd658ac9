"""Search hyperparameters with Keras Tuner; every trial is a real mnistlab run.

Starts Keras Tuner's chief (the oracle) on 127.0.0.1 at a free port and
--workers worker processes, restarts any that dies, and writes into --run-dir:
trials/<id>/ (one run per trial), tune_results.json and .csv,
tune_hyperparameters.png, and HParams data (tensorboard --logdir RUN/trials).
Run the same command again to continue an interrupted search. Across
machines: --chief HOST:PORT on one, --join HOST:PORT --worker-id ID on the
others (docs/tuning.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import time
from pathlib import Path

from mnistlab.config import DEFAULT_BACKEND, MODELS


def add_arguments(p):
    p.add_argument("--model", choices=MODELS, default="mlp")
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    p.add_argument("--tuner", choices=("hyperband", "bayesian", "random"), default="bayesian")
    p.add_argument("--max-trials", type=int, default=10, metavar="N", help="trials in all (default 10)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes on this machine (default 1)")
    p.add_argument("--epochs", type=int, default=10, metavar="E",
                   help="epochs per trial (Hyperband: the most a trial gets; default 10)")
    p.add_argument("--train-limit", type=int, default=None, metavar="M", help="train on M examples only")
    p.add_argument("--space", type=Path, default=None, metavar="FILE",
                   help="TOML or JSON: entries that replace or narrow the default space (docs/tuning.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four IDX files or mnist.npz")
    p.add_argument("--run-dir", type=Path, required=True, help="the search's folder (again: continue it)")
    dist = p.add_argument_group("across machines (docs/tuning.md)")
    dist.add_argument("--chief", default=None, metavar="HOST:PORT",
                      help="run only the oracle, for workers to --join at HOST:PORT")
    dist.add_argument("--host", default=None,
                      help="the address the chief listens on (default 127.0.0.1: this machine only); "
                           "give it to accept workers from other machines")
    dist.add_argument("--join", default=None, metavar="HOST:PORT", help="run a worker of the chief at HOST:PORT")
    dist.add_argument("--worker-id", default=None, metavar="ID",
                      help="this worker's name; restarted with the same one, it gets its unfinished trial back")
    dist.add_argument("--lease", type=float, default=None, metavar="S",
                      help="chief: a worker silent for S seconds loses its trial to the next worker "
                           "(default $MNISTLAB_TUNE_LEASE, else 60)")
    dist.add_argument("--chief-wait", type=float, default=None, metavar="S",
                      help="worker: how long to wait for a chief that does not answer, at the start or after it "
                           "went away (default $MNISTLAB_TUNE_CHIEF_WAIT, else 300)")
    # set by the supervisor for its workers: exit with it; the CPUs to pin to
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--cpus", default=None, help=argparse.SUPPRESS)
    p.add_argument("--verbose", type=int, choices=(0, 1), default=1)


def default_backend(args):
    search = args.run_dir / "search.json"
    if search.is_file():  # the backend the search runs on
        import contextlib

        from mnistlab.runs import read_json

        with contextlib.suppress(Exception):
            return read_json(search)["backend"]
    return DEFAULT_BACKEND[args.model]


def _chief_host(args) -> tuple[str, int]:
    from mnistlab.errors import MnistlabError
    from mnistlab.tuning.worker import split_address

    host, port = split_address(args.chief)
    bind = args.host or "127.0.0.1"
    if args.host is None and not _is_loopback(host):
        raise MnistlabError(f"--chief {args.chief}: the chief listens on 127.0.0.1 unless told otherwise; add "
                            f"--host {host} (or --host 0.0.0.0) to accept workers from other machines on purpose")
    return bind, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    from mnistlab.errors import MnistlabError

    if args.join is not None:
        if args.chief is not None or not args.worker_id:
            raise MnistlabError("--join HOST:PORT runs a worker: give it --worker-id ID (and no --chief)")
        from mnistlab.tuning.worker import run_worker

        cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
        return run_worker(args.join, args.worker_id, args.run_dir, args.data_dir, args.parent_pid, cpus,
                          chief_wait=args.chief_wait)
    if args.worker_id is not None:
        raise MnistlabError("--worker-id goes with --join HOST:PORT")
    host, port = _chief_host(args) if args.chief is not None else (args.host or "127.0.0.1", 0)
    if args.chief is None and not 1 <= args.workers <= 64:
        raise MnistlabError(f"--workers must be from 1 to 64, got {args.workers}")
    from mnistlab.tuning import lease

    lease.seconds(args.lease, lease.LEASE_ENV, lease.DEFAULT_LEASE, "--lease")  # checked before anything starts
    started = time.perf_counter()
    from mnistlab.tuning.results import summary_line
    from mnistlab.tuning.search import make_definition, search

    definition = make_definition(args.space, model=args.model, dataset=args.dataset, tuner=args.tuner,
                                 max_trials=args.max_trials, epochs=args.epochs, train_limit=args.train_limit,
                                 seed=args.seed)
    results = search(definition, args.run_dir, workers=0 if args.chief else args.workers, data_dir=args.data_dir,
                     host=host, port=port, verbose=args.verbose, lease=args.lease)
    if results.get("already_finished"):
        print(f"{args.run_dir} holds a finished search: nothing to do. ", end="")
    print(summary_line(results, args.run_dir, None if results.get("already_finished")
                       else time.perf_counter() - started))
    return 0
