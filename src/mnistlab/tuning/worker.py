"""A worker: asks the chief oracle for trials and trains each with `train()`.

A worker is Keras Tuner's own client (`KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`). It learns the search from
the oracle itself (the definition travels as a fixed hyperparameter,
`search/definition`), so a worker on another machine needs only the chief's
address, an id and a folder. Each trial is a real mnistlab run in
`RUN/trials/<trial_id>/`. A worker restarted with the same id gets its
unfinished trial back from the oracle and continues it with `train(...,
resume=True)` from the trial's last checkpoint. While a trial trains, the
worker holds a lease on it (`mnistlab.tuning.lease`): silent too long, it
loses the trial to the next worker, which continues it the same way.

Trials never see the test set: the data set handed to `train()` carries the
trial's own validation split in place of the test set, so `metrics.json`'s
`test_*` in a trial folder are validation numbers. The search measures only
its best trial on the test set, once, at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path

from mnistlab import runs
from mnistlab.errors import MnistlabError

DEFINITION = "search/definition"
SEARCH = "search.json"
TRIALS = "trials"
TRIAL_NOTE = "tune_trial.json"


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MnistlabError(f"expected HOST:PORT (e.g. 127.0.0.1:8470), got {address!r}")
    return host.strip("[]"), int(port)


def watch_parent(parent_pid: int) -> None:
    """Exit when the process that started this worker is gone (SIGKILLed supervisor)."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _definition_from(hps) -> dict:
    for hp in hps.space:
        if hp.name == DEFINITION:
            return json.loads(hp.value)
    raise MnistlabError("the chief's oracle is not a mnistlab search (no search/definition in its space)")


def make_tuner(run_dir: Path):
    """Keras Tuner's BaseTuner, whose trials are mnistlab runs (created lazily: imports Keras)."""
    import keras_tuner as kt
    from keras_tuner.src.engine import base_tuner
    from keras_tuner.src.engine import trial as trial_module

    from mnistlab.tuning import hparams, lease, space, worker_link
    from mnistlab.tuning.oracle import OBJECTIVE

    class MnistlabTuner(base_tuner.BaseTuner):
        def __init__(self):
            local = kt.Oracle(objective=kt.Objective(OBJECTIVE, "max"), max_trials=1)
            super().__init__(oracle=local, hypermodel=None, directory=str(run_dir), project_name="keras_tuner")
            self.definition = None
            self.dataset = None

        def search(self, data_dir=None):
            # BaseTuner.search, but waiting a little when the oracle is IDLE (Hyperband between
            # rounds; the last trials running elsewhere) instead of asking again at once in a busy
            # loop, with a lease on each trial (mnistlab.tuning.lease).
            self.on_search_begin()
            while True:
                trial = self.oracle.create_trial(self.tuner_id)
                if trial.status == trial_module.TrialStatus.STOPPED:
                    break
                if trial.status == trial_module.TrialStatus.IDLE:
                    time.sleep(0.5)
                    continue
                self.on_trial_begin(trial)
                with worker_link.Heartbeat(self.oracle, trial.trial_id) as beat:  # the chief knows we are alive
                    self._try_run_and_update_trial(trial, data_dir=data_dir, beat=beat)
                    if self.oracle.gone:
                        raise MnistlabError(self.oracle.gone)
                    try:
                        if not beat.moved:
                            self.on_trial_end(trial)
                    except lease.TrialMovedOn:  # moved on while it ended: said just below
                        pass
                if beat.moved:  # the chief gave it to another worker: nothing of ours is counted
                    print(f"[{self.tuner_id}] {beat.moved}; asking for another trial", flush=True)
            self.on_search_end()

        def _run_and_update_trial(self, trial, *args, **kwargs):
            try:
                super()._run_and_update_trial(trial, *args, **kwargs)
            except lease.TrialMovedOn:  # no error (no traceback): the loop above says it, and reports nothing
                pass

        def run_trial(self, trial, data_dir=None, beat=None):
            from mnistlab.training.train import train

            values = trial.hyperparameters.values
            config = space.trial_config(self.definition, values)
            folder = run_dir / TRIALS / trial.trial_id
            resume = (folder / runs.CONFIG).is_file()
            started = time.time()
            print(f"[{self.tuner_id}] trial {trial.trial_id} {'resumed' if resume else 'started'}: "
                  f"{space.searched(values)}", flush=True)
            try:
                result = train(config, folder, dataset=self._trial_data(config, data_dir), verbose=2,
                               resume=resume, callbacks=[beat.callback()] if beat else None)
            except MnistlabError as e:  # a deterministic failure (diverged, say): no retry
                hparams.write_session(folder / runs.TENSORBOARD, trial.trial_id, space.searched(values), None,
                                      "FAILED", started)
                raise kt.errors.FailedTrialError(str(e)) from None
            if beat is not None:
                beat.confirm()  # still ours (or TrialMovedOn): write nothing more into a trial moved on
            m = result.metrics
            if m.get("best_val_accuracy") is None:
                raise kt.errors.FailedTrialError("the trial never validated")
            note = {"trial_id": trial.trial_id, "worker": self.tuner_id, "hyperparameters": space.searched(values),
                    "val_accuracy": m["best_val_accuracy"], "epochs": m["epochs_run"],
                    "seconds": m["total_seconds"],
                    "note": "metrics.json's test_* here are on the validation split: trials never see the test set"}
            runs.write_json(folder / TRIAL_NOTE, note)
            hparams.write_session(folder / runs.TENSORBOARD, trial.trial_id, space.searched(values),
                                  m["best_val_accuracy"], "COMPLETED", started, m.get("learning_rate"))
            print(f"[{self.tuner_id}] trial {trial.trial_id} done: val_accuracy {m['best_val_accuracy']:.4f}",
                  flush=True)
            return {OBJECTIVE: float(m["best_val_accuracy"]), "epochs": float(m["epochs_run"]),
                    "seconds": float(m["total_seconds"])}

        def _trial_data(self, config, data_dir):
            from mnistlab import data as data_lib
            if self.dataset is None:
                self.dataset = data_lib.load(config.dataset, data_dir=data_dir)
            ds = self.dataset
            _, _, x_val, y_val = data_lib.split_validation(ds.x_train, ds.y_train, config.val_fraction, config.seed)
            return dataclasses.replace(ds, x_test=x_val, y_test=y_val)

    return MnistlabTuner()


def run_worker(address: str, worker_id: str, run_dir, data_dir=None, parent_pid: int | None = None,
               cpus: list[int] | None = None, chief_wait: float | None = None) -> int:
    """Join the search at `address` as `worker_id`; run trials until the oracle says stop.
    `chief_wait`: seconds to wait for a chief that does not answer (`mnistlab.tuning.lease`)."""
    from mnistlab.tuning import lease, worker_link

    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    if parent_pid:
        watch_parent(parent_pid)
    host, port = split_address(address)
    if not worker_id or worker_id == "chief" or "chief" in worker_id:
        raise MnistlabError(f"--worker-id {worker_id!r}: give each worker its own name without 'chief' (e.g. w1)")
    run_dir = Path(run_dir)
    wait = lease.seconds(chief_wait, lease.CHIEF_WAIT_ENV, lease.DEFAULT_CHIEF_WAIT, "--chief-wait")
    worker_link.check_worker_folder(run_dir)
    os.environ.update(KERASTUNER_TUNER_ID=worker_id, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))
    import keras

    # The chief first, the folder after: a worker started before its chief writes nothing into
    # the (shared) run folder the chief is about to create.
    client = worker_link.make_client(None, f"{host}:{port}", wait)  # leases, retries, a bounded first wait
    print(f"[{worker_id}] joining the search at {host}:{port}", flush=True)
    definition = _definition_from(client.get_space())
    if definition["backend"] != keras.backend.backend():
        raise MnistlabError(f"the search runs on {definition['backend']}: start this worker with "
                            f"--backend {definition['backend']}")
    local = run_dir / SEARCH
    if local.is_file():
        if runs.read_json(local) != definition:
            raise MnistlabError(f"{local} belongs to another search than the chief's at {host}:{port}: "
                                "give this worker another --run-dir")
        worker_link.check_same_search(run_dir, client.search_id, f"{host}:{port}")
    else:  # a folder of this worker's own (no shared filesystem): its trials, their HParams sessions
        from mnistlab.tuning import hparams

        run_dir.mkdir(exist_ok=True)
        runs.write_json(local, definition)
        hparams.write_experiment(run_dir / TRIALS, definition["space"])
    tuner = make_tuner(run_dir)
    client._oracle = tuner.oracle._oracle  # Keras Tuner's local oracle behind its client
    tuner.oracle = client
    tuner.definition = definition
    tuner.search(data_dir=data_dir)
    print(f"[{worker_id}] the oracle has no more trials: done", flush=True)
    sys.stdout.flush()
    return 0
