"""Keras Tuner's oracle, made safe to kill, and served over gRPC.

The oracle is Keras Tuner's own (random search, Bayesian optimisation or
Hyperband) with leases (`mnistlab.tuning.lease`: a silent worker's trial goes
to another) and four additions, all in `_Safe`:

* its state (`oracle.json`) and every `trial.json` are written atomically
  (`mnistlab.runs.atomic_path`): a SIGKILL mid-write leaves the previous
  version, never a truncated file that the next start cannot read;
* on reload, every trial that was running is queued to run again (Keras Tuner
  does this for the trials in `ongoing_trials`; a kill between writing a new
  trial and the oracle's state would otherwise lose that trial for good);
* it records which worker (tuner id) ran each trial;
* when Keras Tuner gives up after consecutive failed trials, it stops handing
  out trials and keeps the reason, instead of raising inside the gRPC server
  (which the worker sees as a crash, is restarted, asks again: a loop).

`serve` starts Keras Tuner's `OracleServicer` on a gRPC server, as Keras
Tuner's chief does, but returns at once (the caller watches the workers) and
can bind port 0 (a free port, reported back).
"""

from __future__ import annotations

import os
import time

import keras_tuner as kt
from keras_tuner.src.engine import oracle as oracle_module
from keras_tuner.src.engine import trial as trial_module

from mnistlab import runs
from mnistlab.errors import MnistlabError

TUNERS = ("hyperband", "bayesian", "random")
OBJECTIVE = "val_accuracy"
PROJECT = "keras_tuner"  # the oracle's folder inside the run folder
RUNNING, STOPPED, COMPLETED = (trial_module.TrialStatus.RUNNING, trial_module.TrialStatus.STOPPED,
                               trial_module.TrialStatus.COMPLETED)


class _Safe:
    """The additions to a Keras Tuner oracle class (see the module docstring)."""

    def _mnistlab_setup(self):
        self.workers = {}  # trial_id -> tuner id of the worker that ran it last
        self.aborted = None  # why the search stopped early
        self.on_end = None  # called with each ended trial (progress lines)

    @oracle_module.synchronized
    def create_trial(self, tuner_id):
        if self.aborted:
            self.tuner_ids.discard(tuner_id)
            return trial_module.Trial(self.get_space(), status=STOPPED)
        trial = super().create_trial(tuner_id)
        if trial.status == RUNNING and self.workers.get(trial.trial_id) != tuner_id:
            self.workers[trial.trial_id] = tuner_id
            self.save()
        return trial

    @oracle_module.synchronized
    def end_trial(self, trial):
        try:
            super().end_trial(trial)
        except RuntimeError as e:  # too many consecutive failures
            self.aborted = str(e).splitlines()[0]
            for tuner_id, ongoing in list(self.ongoing_trials.items()):
                if ongoing.trial_id == trial.trial_id:
                    self.ongoing_trials.pop(tuner_id)
            self._save_trial(self.trials[trial.trial_id])
            self.save()
        if self.on_end is not None:
            self.on_end(self.trials[trial.trial_id])

    def get_state(self):
        return {**super().get_state(), "mnistlab_workers": dict(self.workers), "mnistlab_aborted": self.aborted}

    def set_state(self, state):
        super().set_state(state)
        self.workers = dict(state.get("mnistlab_workers", {}))
        self.aborted = state.get("mnistlab_aborted")

    def save(self):
        runs.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        runs.write_json(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state())

    def reload(self):
        super().reload()  # queues the trials that were in ongoing_trials
        queued = set(self._retry_queue)
        for trial_id in sorted(self.trials):
            if self.trials[trial_id].status == RUNNING and trial_id not in queued:
                self._retry_queue.append(trial_id)


_CLASSES = {}


def _oracle_class(base):
    if base not in _CLASSES:
        from mnistlab.tuning.lease import Leases

        _CLASSES[base] = type(f"Mnistlab{base.__name__}", (Leases, _Safe, base), {})
    return _CLASSES[base]


def make_oracle(definition: dict, hps):
    """The search's oracle (not yet attached to a folder)."""
    kind, n = definition["tuner"], definition["max_trials"]
    common = dict(objective=kt.Objective(OBJECTIVE, "max"), hyperparameters=hps, allow_new_entries=False,
                  tune_new_entries=False, seed=definition["seed"] + 1,  # Keras Tuner takes 0 as "pick one"
                  max_retries_per_trial=1, max_consecutive_failed_trials=3)
    if kind == "random":
        oracle = _oracle_class(kt.oracles.RandomSearchOracle)(max_trials=n, **common)
    elif kind == "bayesian":
        oracle = _oracle_class(kt.oracles.BayesianOptimizationOracle)(
            max_trials=n, num_initial_points=max(2, n // 3), **common)
    elif kind == "hyperband":
        oracle = _oracle_class(kt.oracles.HyperbandOracle)(
            max_epochs=definition["epochs"], factor=3, hyperband_iterations=1, **common)
        oracle.max_trials = n  # Hyperband's own schedule, capped at n trials
    else:
        raise MnistlabError(f"unknown tuner {kind!r}: choose one of {', '.join(TUNERS)}")
    oracle._mnistlab_setup()
    oracle.verbose = 0  # we print our own line per trial
    return oracle


def open_oracle(definition: dict, hps, run_dir, lease: float | None = None, keep_holders: bool = False):
    """The search's oracle in `run_dir`, reloaded when a search was started there. `lease`: seconds a
    worker may stay silent (`mnistlab.tuning.lease`); `keep_holders`: running trials stay their
    workers' on reload (a chief started again while its workers on other machines went on)."""
    from mnistlab.tuning import lease as lease_lib

    oracle = make_oracle(definition, hps)
    oracle.lease_seconds = lease_lib.seconds(lease, lease_lib.LEASE_ENV, lease_lib.DEFAULT_LEASE, "--lease")
    oracle.keep_holders = keep_holders
    oracle._set_project_dir(str(run_dir), PROJECT)
    if os.path.exists(oracle._get_oracle_fname()):
        oracle.reload()
    else:
        oracle.save()
    lease_lib.ensure_search_id(oracle)
    return oracle


def serve(oracle, host: str, port: int):
    """Start Keras Tuner's oracle service on host:port (0: a free one); returns (server, servicer, port)."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos

    from mnistlab.tuning import lease

    lease.check_port(host, port)
    # no SO_REUSEPORT: a second chief on the same port must fail, not share it with the first
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)])
    servicer = lease.make_servicer(oracle)  # Keras Tuner's OracleServicer, with leases
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{_bracket(host)}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise MnistlabError(f"cannot listen on {host}:{port} (address in use, or not an address of this "
                            "machine): choose another --chief port or --host")
    server.start()
    servicer.reaper = lease.start_reaper(oracle)
    return server, servicer, bound


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def chief_done(oracle, servicer) -> bool:
    """Keras Tuner's chief's rule: a worker was told to stop, and no trial nor worker is left."""
    with oracle_module.LOCKS[oracle]:
        return servicer.stop_triggered and not oracle.ongoing_trials and not oracle.tuner_ids


def wait_until(predicate, poll: float = 0.2):
    while not predicate():
        time.sleep(poll)
