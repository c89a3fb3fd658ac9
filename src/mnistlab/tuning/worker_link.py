"""The worker's side of the leases: its client of the chief, its heartbeat, and its checks.

`make_client` wraps Keras Tuner's `OracleClient`: it sends the worker's id
with every call, retries while the chief is away (one message when it goes,
one when it is back) for up to `chief_wait` seconds, and turns "your trial
moved on" into `TrialMovedOn`. `Heartbeat` renews the lease from a thread
while a trial trains. `check_worker_folder` and `check_same_search` refuse a
run folder this machine cannot see or that belongs to another search. The
chief's side, and why leases exist: `mnistlab.tuning.lease`.
"""

from __future__ import annotations

import os
import threading
import time

from mnistlab import runs
from mnistlab.errors import MnistlabError
from mnistlab.tuning.lease import (DEFAULT_LEASE, LEASE_KEY, NOTE_KEY, PER_CALL, SEARCH_KEY, TUNER_KEY,
                                   TrialMovedOn, _log)


def make_client(oracle_client, address: str, chief_wait: float):
    """Keras Tuner's `OracleClient` on the worker, with leases, retries and a bounded first wait."""
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_client import OracleClient
    from keras_tuner.src.engine import hyperparameters as hp_module
    from keras_tuner.src.engine import trial as trial_module

    retry = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

    class LeasedClient(OracleClient):
        def __init__(self, oracle):
            # Not OracleClient.__init__: its channel backs off for up to two minutes between
            # reconnection attempts, so a worker would notice a chief that came back late.
            self._oracle = oracle
            options = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                       ("grpc.max_reconnect_backoff_ms", 1000)]
            self.channel = grpc.insecure_channel(f"{_bracket(address)}", options=options)
            self.stub = protos.get_service_grpc().OracleStub(self.channel)
            self.tuner_id = os.environ["KERASTUNER_TUNER_ID"]
            self.multi_worker, self.should_report = False, True
            self.address, self.wait = address.strip(), chief_wait
            self.lease, self.search_id = DEFAULT_LEASE, None
            self.contacted, self.away_since = False, None
            self.moved = {}  # trial id -> why it is no longer this worker's
            self.gone = None  # why this worker stops: its chief has been away too long
            self._say = threading.Lock()

        def _away(self, code) -> None:
            with self._say:
                if self.away_since is None:
                    self.away_since = time.monotonic()
                    if self.contacted:
                        _log(f"[{self.tuner_id}] the chief at {self.address} does not answer ({code.name.lower()}); "
                             f"retrying for up to {self.wait:g} s; a trial in progress goes on while its lease lasts")

        def _back(self) -> None:
            with self._say:
                if self.away_since is not None and self.contacted:
                    _log(f"[{self.tuner_id}] the chief at {self.address} answers again "
                         f"(after {time.monotonic() - self.away_since:.0f} s)")
                self.away_since, self.contacted = None, True

        def call(self, name, request, trial_id=None, once=False, timeout=None):
            """One RPC with our metadata, retried while the chief is away; returns (response, call)."""
            method = getattr(self.stub, name)
            deadline = time.monotonic() + self.wait
            while True:
                left = deadline - time.monotonic()
                try:
                    out = method.with_call(request, metadata=((TUNER_KEY, self.tuner_id),), wait_for_ready=not once,
                                           timeout=timeout or max(0.5, min(PER_CALL, left)))
                    self._back()
                    return out
                except grpc.RpcError as e:
                    code = e.code()
                    if code == grpc.StatusCode.FAILED_PRECONDITION:
                        self._back()
                        if trial_id is not None:
                            self.moved[trial_id] = e.details()
                        raise TrialMovedOn(e.details()) from None
                    if code not in retry:
                        raise
                    self._away(code)
                    if once:
                        return None, None
                    if time.monotonic() >= deadline:
                        if not self.contacted:
                            raise MnistlabError(
                                f"no chief answers at {self.address} after {self.wait:g} s: start it first "
                                f"(mnistlab tune --chief {self.address} --host ...), check the address and port, "
                                "or wait longer with --chief-wait S") from None
                        raise MnistlabError(
                            f"the chief at {self.address} has not answered for {self.wait:g} s: this worker stops "
                            "(the chief keeps its trial; run the same command again when the chief is back)") from None
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

        def get_space(self):
            response, call = self.call("GetSpace", protos.get_service().GetSpaceRequest())
            meta = dict(call.trailing_metadata() or ())
            if meta.get(LEASE_KEY):
                self.lease = float(meta[LEASE_KEY])
            self.search_id = meta.get(SEARCH_KEY) or None
            return hp_module.HyperParameters.from_proto(response.hyperparameters)

        def update_space(self, hyperparameters):
            self.call("UpdateSpace", protos.get_service().UpdateSpaceRequest(hyperparameters=hyperparameters.to_proto()))

        def create_trial(self, tuner_id):
            response, call = self.call("CreateTrial", protos.get_service().CreateTrialRequest(tuner_id=tuner_id))
            note = dict(call.trailing_metadata() or ()).get(NOTE_KEY)
            if note and not any(f"trial {t} " in note for t in self.moved):  # not said already
                _log(f"[{self.tuner_id}] the chief says: {note}")
            return trial_module.Trial.from_proto(response.trial)

        def update_trial(self, trial_id, metrics, step=0):
            request = protos.get_service().UpdateTrialRequest(trial_id=trial_id, metrics=metrics, step=step)
            response, _ = self.call("UpdateTrial", request, trial_id=trial_id)
            return trial_module.Trial.from_proto(response.trial)

        def end_trial(self, trial):
            self.call("EndTrial", protos.get_service().EndTrialRequest(trial=trial.to_proto()), trial_id=trial.trial_id)

        def get_trial(self, trial_id):
            response, _ = self.call("GetTrial", protos.get_service().GetTrialRequest(trial_id=trial_id),
                                    trial_id=trial_id)
            return trial_module.Trial.from_proto(response.trial)

        def get_best_trials(self, num_trials=1):
            response, _ = self.call("GetBestTrials", protos.get_service().GetBestTrialsRequest(num_trials=num_trials))
            return [trial_module.Trial.from_proto(t) for t in response.trials]

        def beat(self, trial_id) -> bool:
            """One heartbeat for `trial_id` (no retry: the next beat is the retry); True if answered."""
            timeout = max(0.5, self.lease / 5)
            response, _ = self.call("GetTrial", protos.get_service().GetTrialRequest(trial_id=trial_id),
                                    trial_id=trial_id, once=True, timeout=timeout)
            return response is not None

    return LeasedClient(getattr(oracle_client, "_oracle", oracle_client))


def _bracket(address: str) -> str:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Heartbeat:
    """While a trial trains: renew the worker's lease every lease/5 seconds from a thread; stop the
    trial (a Keras callback raising `TrialMovedOn`) once the chief says it moved on.

    A worker cut off from its chief cannot know whether its lease ran out. So once it has not
    been heard for `FENCE` of the lease (before the chief could give its trial away), the
    trial waits before its next batch, writing nothing, until the chief answers: then it goes on
    (its own still: a chief that came back) or stops (moved on). Two workers never write into
    one trial's folder at the same time, save for a checkpoint already being written.
    """

    FENCE = 0.8

    def __init__(self, client, trial_id: str):
        self.client, self.trial_id = client, trial_id
        self.interval = max(0.1, client.lease / 5)
        self.confirmed = time.monotonic()  # when the last call the chief answered was sent
        self._stop = threading.Event()

    @property
    def moved(self) -> str | None:
        return self.client.moved.get(self.trial_id)

    def __enter__(self):
        def beat():
            while not self._stop.wait(self.interval):
                sent = time.monotonic()
                try:
                    if self.client.beat(self.trial_id):
                        self.confirmed = sent
                except TrialMovedOn:
                    return
                except Exception:  # noqa: BLE001 (anything else: the next beat tries again)
                    pass

        self._thread = threading.Thread(target=beat, daemon=True, name="lease-heartbeat")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def confirm(self) -> None:
        """Raise `TrialMovedOn` unless the trial is still this worker's (waits while the chief is away)."""
        if self.moved:
            raise TrialMovedOn(self.moved)
        self.client.get_trial(self.trial_id)

    def check(self) -> None:
        """Before a batch: raise `TrialMovedOn` if the trial moved on; wait while its lease is in doubt."""
        if not self.moved and time.monotonic() - self.confirmed <= self.FENCE * self.client.lease:
            return
        waited = time.monotonic()
        if not self.moved:
            _log(f"[{self.client.tuner_id}] trial {self.trial_id} waits: no answer from the chief for "
                 f"{waited - self.confirmed:.0f} s, and another worker may get it after {self.client.lease:g} s")
        while not self.moved and time.monotonic() - self.confirmed > self.FENCE * self.client.lease:
            if time.monotonic() - waited > self.client.wait:
                self.client.gone = (f"the chief at {self.client.address} has not answered for {self.client.wait:g} s: "
                                    "this worker stops (run the same command again when the chief is back)")
                raise TrialMovedOn(self.client.gone)
            time.sleep(0.05)
        if self.moved:
            raise TrialMovedOn(self.moved)

    def callback(self):
        import keras

        beat = self

        class LeaseCheck(keras.callbacks.Callback):
            # Batch *begin* hooks only: a batch-end hook would stop Keras from dispatching batch
            # hooks in the background (and sync every step on JAX); begin hooks get no logs.
            def on_train_batch_begin(self, batch, logs=None):
                beat.check()

            on_test_batch_begin = on_train_batch_begin

            def on_epoch_end(self, epoch, logs=None):  # before the checkpoint is written (it runs last)
                beat.check()

        return LeaseCheck()


def check_worker_folder(run_dir) -> None:
    """A worker's --run-dir: the chief's shared folder, or a new or existing folder of its own; not a
    path whose parent this machine cannot see (a shared folder not mounted here)."""
    from pathlib import Path

    run_dir = Path(run_dir)
    if run_dir.is_dir():
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise MnistlabError(f"--run-dir {run_dir}: this worker cannot write there: it writes its trials' "
                                "folders into it; fix the permissions or the mount")
        return
    parent = run_dir.parent
    if run_dir.exists() or not parent.is_dir():
        raise MnistlabError(f"--run-dir {run_dir}: {parent if not parent.is_dir() else run_dir} is not a folder "
                            "on this machine: mount the chief's run folder here (NFS or any shared path) "
                            "at that path, or give a folder of this machine's own")


def check_same_search(run_dir, search_id: str | None, address: str) -> None:
    """A folder that holds a chief's oracle must be this chief's (the same search id)."""
    from pathlib import Path

    state = Path(run_dir) / "keras_tuner" / "oracle.json"
    if not search_id or not state.is_file():
        return
    try:
        found = runs.read_json(state).get("mnistlab_search_id")
    except Exception:  # noqa: BLE001 (unreadable: the definition check already passed)
        return
    if found != search_id:
        raise MnistlabError(f"--run-dir {run_dir} is the run folder of another search than the chief's at "
                            f"{address} (search id {found}, the chief's {search_id}): give the chief's own "
                            "--run-dir (shared) or a folder of this machine's own")


__all__ = ["Heartbeat", "make_client", "check_worker_folder", "check_same_search"]
