"""Running a search: the chief's oracle here, K worker processes, supervised.

    RUN/search.json          what is searched (model, data, tuner, budget, space)
    RUN/keras_tuner/         Keras Tuner's oracle state and trial.json files
    RUN/trials/<id>/         one mnistlab run per trial, and the HParams session
    RUN/logs/<worker>.log    each worker's output
    RUN/workers.json         the worker processes now running (id -> pid)
    RUN/tune_results.{json,csv}, RUN/tune_hyperparameters.png   at the end

`search()` serves the oracle on 127.0.0.1 (or `host`) at a free port, starts
the workers (`python -m mnistlab tune --join ...`) each pinned to its share of
the CPUs, and restarts any that dies with the same tuner id: the oracle hands
it back its unfinished trial, which continues from its last checkpoint. Run
again after a crash, Ctrl-C or SIGKILL, it reloads the oracle and goes on.
With `workers=0` (`--chief`) the workers join from other machines, and leases
(`mnistlab.tuning.lease`) give a silent one's trial to another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mnistlab import runs
from mnistlab.errors import MnistlabError
from mnistlab.tuning import space as space_lib
from mnistlab.tuning.worker import DEFINITION, SEARCH, TRIALS

RESULTS = "tune_results.json"
WORKERS = "workers.json"
MAX_RESTARTS = 3  # crashes in a row of one worker, with no trial ending meanwhile


def make_definition(space, model="mlp", dataset="mnist", tuner="bayesian", max_trials=10, epochs=10,
                    train_limit=None, seed=0, backend=None) -> dict:
    """The search's identity, checked: a run folder holds one search, and only this one."""
    from mnistlab.tuning.oracle import TUNERS

    if tuner not in TUNERS:
        raise MnistlabError(f"unknown tuner {tuner!r}: choose one of {', '.join(TUNERS)}")
    for name, value, low in (("max_trials", max_trials, 1), ("epochs", epochs, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise MnistlabError(f"{name.replace('_', '-')} must be a whole number >= {low}, got {value!r}")
    if tuner == "hyperband" and epochs < 2:
        raise MnistlabError("hyperband needs --epochs >= 2 (it trains most trials for fewer epochs)")
    if isinstance(space, (str, Path)):
        space = space_lib.space_from_file(space, model)
    else:
        space = space_lib.normalize_space(space_lib.default_space(model) if space is None else space, model)
    definition = {"model": model, "dataset": dataset, "tuner": tuner, "max_trials": max_trials, "epochs": epochs,
                  "train_limit": train_limit, "seed": seed, "backend": backend or os.environ.get("KERAS_BACKEND") or _backend(), "space": space}
    for values in _corners(space):  # every value once: a bad combination with the rest fails now
        space_lib.trial_config(definition, values)
    from mnistlab import data as data_lib
    data_lib.spec(dataset)
    return definition


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _corners(space: dict):
    first = {n: space_lib.encode(n, e["fixed"] if "fixed" in e else e["choices"][0] if "choices" in e else e["min"])
             for n, e in space.items()}
    yield first
    for name, e in space.items():
        for v in e.get("choices", [e.get("max")] if "max" in e else []):
            yield {**first, name: space_lib.encode(name, v)}


def check_run_dir(run_dir: Path, definition: dict) -> str:
    """'new', 'resume' or 'finished'; refuses a folder of another search or of something else."""
    search_file = run_dir / SEARCH
    if search_file.is_file():
        saved = runs.read_json(search_file)
        if saved != definition:
            diff = sorted(k for k in set(saved) | set(definition) if saved.get(k) != definition.get(k))
            raise MnistlabError(
                f"{run_dir} holds another search ({', '.join(diff)} differ{'s' if len(diff) == 1 else ''}): "
                "run the same command as before to continue it, or choose another --run-dir")
        results = run_dir / RESULTS
        return "finished" if results.is_file() and runs.read_json(results).get("finished") else "resume"
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise MnistlabError(f"{run_dir} exists and is not a search's run folder (no {SEARCH}): "
                            "choose a new or empty --run-dir")
    return "new"


def _worker_env(share: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, str(share))
    env.setdefault("TF_NUM_INTEROP_THREADS", "1" if share == 1 else "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Workers:
    """K worker processes on this machine, restarted with the same id when one dies."""

    def __init__(self, run_dir: Path, address: str, count: int, backend: str, data_dir=None):
        self.run_dir, self.address, self.backend, self.data_dir = run_dir, address, backend, data_dir
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        self.ids = [f"w{i}" for i in range(count)]
        share = max(1, len(cpus) // count)
        self.cpus = {w: (cpus[i * share:(i + 1) * share] if count <= len(cpus) else None)
                     for i, w in enumerate(self.ids)}
        self.env = _worker_env(share)
        self.procs, self.crashes, self.finished = {}, dict.fromkeys(self.ids, 0), set()
        (run_dir / "logs").mkdir(exist_ok=True)

    def start(self, worker: str) -> None:
        cmd = [sys.executable, "-m", "mnistlab", "tune", "--backend", self.backend, "--join", self.address,
               "--worker-id", worker, "--run-dir", str(self.run_dir), "--parent-pid", str(os.getpid())]
        if self.cpus[worker]:
            cmd += ["--cpus", ",".join(map(str, self.cpus[worker]))]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        log = open(self.run_dir / "logs" / f"{worker}.log", "ab")
        self.procs[worker] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        runs.write_json(self.run_dir / WORKERS, {w: p.pid for w, p in self.procs.items() if w not in self.finished})

    def start_all(self) -> None:
        for w in self.ids:
            self.start(w)

    def check(self, verbose: int = 1) -> bool:
        """Restart the dead; True when every worker has ended cleanly."""
        for w, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None or w in self.finished:
                continue
            if code == 0:
                self.finished.add(w)
                continue
            tail = self.log_tail(w)
            if code == 2:  # bad input: restarting cannot help
                raise MnistlabError(f"worker {w} stopped: {tail}")
            self.crashes[w] += 1
            if self.crashes[w] > MAX_RESTARTS:
                raise MnistlabError(f"worker {w} crashed {self.crashes[w]} times in a row; its log "
                                    f"({self.run_dir / 'logs' / (w + '.log')}) ends: {tail}")
            if verbose:
                print(f"worker {w} died (exit code {code}); restarting it as {w}: the oracle hands it back its trial",
                      flush=True)
            self.start(w)
        return len(self.finished) == len(self.ids)

    def trial_ended(self, worker: str) -> None:
        if worker in self.crashes:
            self.crashes[worker] = 0

    def log_tail(self, worker: str) -> str:
        path = self.run_dir / "logs" / f"{worker}.log"
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.exists() else []
        return lines[-1][-300:] if lines else "(no output)"

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.time() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with_pids = self.run_dir / WORKERS
        with_pids.unlink(missing_ok=True)


class Progress:
    """One line per finished trial: trial, worker, value, best so far, time left at this pace."""

    def __init__(self, oracle, verbose: int, workers: Workers | None = None):
        self.oracle, self.verbose, self.workers = oracle, verbose, workers
        self.started, self.ended_here = time.time(), 0

    def __call__(self, trial) -> None:
        worker = self.oracle.workers.get(trial.trial_id, "?")
        if self.workers is not None:
            self.workers.trial_ended(worker)
        self.ended_here += 1
        ended = len(self.oracle.end_order)
        left = max(0, self.oracle.max_trials - ended)
        pace = (time.time() - self.started) / self.ended_here
        best = self.oracle.get_best_trials(1)
        best = best[0] if best and best[0].status == "COMPLETED" else None
        value = f"val_accuracy {trial.score:.4f}" if trial.score is not None and trial.status == "COMPLETED" \
            else (trial.message or "").strip().splitlines()[-1][:120] if trial.message else "no value"
        if self.verbose:
            print(f"trial {trial.trial_id} {trial.status.lower()} on {worker}: {value} | best "
                  + (f"{best.score:.4f} (trial {best.trial_id})" if best else "none yet")
                  + f" | {ended}/{self.oracle.max_trials} trials, ~{_duration(left * pace)} left at this pace",
                  flush=True)


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def search(definition: dict, run_dir, workers: int = 1, data_dir=None, host: str = "127.0.0.1",
           port: int = 0, verbose: int = 1, lease: float | None = None) -> dict:
    """Run (or continue) the search in `run_dir`; returns the results (see `mnistlab.tuning.results`).

    `workers=0` runs only the oracle (`mnistlab tune --chief`): workers join from
    elsewhere, and it ends when Keras Tuner's chief would. `lease`: seconds a worker
    may stay silent before its trial goes to another (`mnistlab.tuning.lease`).
    """
    from mnistlab.tuning import hparams, lease as lease_lib, oracle as oracle_lib, results as results_lib

    run_dir = Path(run_dir)
    state = check_run_dir(run_dir, definition)
    if state == "finished":
        found = runs.read_json(run_dir / RESULTS)
        found["already_finished"] = True
        return found
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0 or workers > 64:
        raise MnistlabError(f"--workers must be a whole number from 1 to 64, got {workers!r}")
    lease_lib.check_port(host, port)  # a port in use: refused before anything is written
    if workers:  # the workers here read the data: a bad --data-dir fails now, with nothing written
        from mnistlab import data as data_lib
        data_lib.load(definition["dataset"], data_dir=data_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / TRIALS).mkdir(exist_ok=True)
    except OSError as e:
        raise MnistlabError(f"cannot write to run folder {run_dir} ({e.strerror}): choose a writable --run-dir") from None
    if state == "new":
        runs.write_json(run_dir / SEARCH, definition)
        hparams.write_experiment(run_dir / TRIALS, definition["space"])
    hps = space_lib.hyperparameters(definition["space"], {DEFINITION: json.dumps(definition, sort_keys=True)})
    oracle = oracle_lib.open_oracle(definition, hps, run_dir, lease=lease, keep_holders=not workers)
    server, servicer, bound = oracle_lib.serve(oracle, host, port)
    address = f"{host}:{bound}"
    pool = Workers(run_dir, address, workers, definition["backend"], data_dir) if workers else None
    oracle.on_end = Progress(oracle, verbose, pool)
    if verbose:
        done = len(oracle.end_order)
        print(f"{'continuing' if state == 'resume' else 'starting'} the {definition['tuner']} search in {run_dir}: "
              f"{definition['model']} on {definition['dataset']}, {definition['backend']}, "
              f"{done}/{definition['max_trials']} trials done; chief at {address}"
              + (f", {workers} worker{'s' if workers > 1 else ''}" if workers else ": waiting for workers (--join)"),
              flush=True)
    try:
        if pool is not None:
            pool.start_all()
            oracle_lib.wait_until(lambda: pool.check(verbose) and not oracle.ongoing_trials)
        else:
            oracle_lib.wait_until(lambda: oracle_lib.chief_done(oracle, servicer) or oracle.aborted)
    except BaseException:
        if pool is not None:
            pool.stop()
        server.stop(0)
        servicer.reaper.set()  # the leases' thread
        oracle.save()
        if verbose:
            print(f"search stopped; run the same command again to continue it from {run_dir}", file=sys.stderr)
        raise
    if pool is not None:
        pool.stop()
    server.stop(0)
    servicer.reaper.set()
    if oracle.aborted:
        raise MnistlabError(f"the search stopped: {oracle.aborted}; see the trials' messages in "
                            f"{run_dir / 'keras_tuner'} and the workers' logs in {run_dir / 'logs'}")
    return results_lib.finish(oracle, definition, run_dir, data_dir=data_dir, workers=workers)
