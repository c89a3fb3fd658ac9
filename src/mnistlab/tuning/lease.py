"""Leases: the chief knows which worker is alive, and a silent worker's trial goes to another.

Keras Tuner's oracle hands a trial to a worker (tuner id) and waits for that
worker's `end_trial`, however long: a worker whose machine dies keeps its trial
RUNNING for ever, and the search waits for ever or ends a trial short
(keras-tuner #915). Its client waits an hour for a chief that is not there
(#990), and one lost connection in `end_trial` crashes the worker. Here:

* **Chief** (`Leases`, mixed into the oracle; `LeaseServicer`, Keras Tuner's
  gRPC servicer): every call of a worker renews its lease. A worker that has
  not called for `lease` seconds (default `DEFAULT_LEASE`; `mnistlab tune
  --lease S` or `$MNISTLAB_TUNE_LEASE`) loses its trial: the trial goes back to
  Keras Tuner's retry queue (not counted as a failure) and the next worker to
  ask gets it, continuing from the trial's last checkpoint when the run folder
  is shared. While a trial may still come back to the queue, a worker that asks
  for one is told to wait (IDLE) rather than to stop, so no trial is left
  without a worker. A trial ends once: a second `end_trial` of it is dropped,
  and a worker that no longer holds its trial is refused (gRPC
  FAILED_PRECONDITION, with a message saying where the trial went). A chief
  started again on its run folder gives the trials that were running back to
  the workers that held them, each with a fresh lease.
* **Worker** (`LeasedClient`, Keras Tuner's `OracleClient` with retries;
  `Heartbeat`): it sends its tuner id with every call, renews its lease from a
  thread every `lease / 5` seconds while a trial trains, and retries while the
  chief is away (one message when it goes, one when it is back) for up to
  `chief_wait` seconds (default `DEFAULT_CHIEF_WAIT`; `--chief-wait S` or
  `$MNISTLAB_TUNE_CHIEF_WAIT`); the first contact fails after that long with
  one line. Told that its trial moved on, it stops the trial, reports nothing,
  and asks for another.

The lease travels in Keras Tuner's own gRPC service: the tuner id as call
metadata (`mnistlab-tuner-id`), the lease length, the search's id and notes
as trailing metadata. A plain Keras Tuner worker (no metadata, no heartbeat)
is served too, but renews its lease only when it asks for a trial: give such
workers a lease longer than their longest trial.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from mnistlab import runs
from mnistlab.errors import MnistlabError

DEFAULT_LEASE = 60.0  # seconds a worker may stay silent before its trial goes to another
DEFAULT_CHIEF_WAIT = 300.0  # seconds a worker waits for a chief that does not answer
LEASE_ENV, CHIEF_WAIT_ENV = "MNISTLAB_TUNE_LEASE", "MNISTLAB_TUNE_CHIEF_WAIT"
TUNER_KEY, LEASE_KEY, SEARCH_KEY, NOTE_KEY = "mnistlab-tuner-id", "mnistlab-lease", "mnistlab-search-id", "mnistlab-note"
PER_CALL = 60.0  # the longest one attempt of a call waits before it is tried again


class TrialMovedOn(Exception):
    """The chief gave this worker's trial to another (or ended it): its result is not wanted."""


def seconds(value, env: str, default: float, flag: str) -> float:
    """`value`, else $env, else `default`: a number of seconds > 0."""
    raw = value if value is not None else os.environ.get(env) or default
    try:
        out = float(raw)
    except (TypeError, ValueError):
        out = float("nan")
    if not out > 0 or out == float("inf"):
        raise MnistlabError(f"{flag} (or ${env}) must be a number of seconds > 0, got {raw!r}")
    return out


def _log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------ the chief


class Leases:
    """Mixed into the chief's oracle class (before mnistlab's `_Safe`): see the module docstring."""

    lease_seconds = DEFAULT_LEASE
    keep_holders = False  # on reload: give running trials back to their holders (chief-only mode)
    search_id = None

    def _leases(self):
        if not hasattr(self, "_seen"):
            self._seen = {}  # tuner id -> time.monotonic() of its last call
            self._notes = {}  # tuner id -> what happened to its trial while it was away
            self._moved = {}  # trial id -> tuner id that lost it
        return self

    # -- the lease itself

    def renew(self, tuner_id: str, trial_id: str | None = None) -> str | None:
        """A call from `tuner_id` (about `trial_id`): its lease renewed. Returns None, or why
        `trial_id` is no longer this worker's."""
        from keras_tuner.src.engine import oracle as oracle_module

        with _locked(self, oracle_module):
            self._leases()._seen[tuner_id] = time.monotonic()
            if trial_id is None:
                return None
            held = self.ongoing_trials.get(tuner_id)
            if held is not None and held.trial_id == trial_id:
                return None
            if trial_id in self.end_order and self.workers.get(trial_id) == tuner_id:
                return None  # it ended the trial itself: a call repeated after a lost answer
            if held is None and trial_id in self._retry_queue and self._moved.get(trial_id) == tuner_id:
                # back before another worker took it: it is this worker's again
                self._retry_queue.remove(trial_id)
                self.ongoing_trials[tuner_id] = self.trials[trial_id]
                self.tuner_ids.add(tuner_id)
                self._moved.pop(trial_id, None)
                self.save()
                _log(f"worker {tuner_id} is back: trial {trial_id} is its own again")
                return None
            return self._where(trial_id, tuner_id)

    def _where(self, trial_id: str, tuner_id: str) -> str:
        why = f"{tuner_id} was silent for more than {self.lease_seconds:g} s"
        if trial_id in self.end_order:
            return f"trial {trial_id} already ended ({self.trials[trial_id].status}; {why}): this result is not counted"
        holder = next((t for t, trial in self.ongoing_trials.items() if trial.trial_id == trial_id), None)
        if holder is not None:
            return f"trial {trial_id} moved on to {holder} ({why}): this result is not counted"
        return f"trial {trial_id} went back to the chief's queue ({why}): this result is not counted"

    def expire(self) -> list[str]:
        """Take back the trials of workers silent for longer than the lease; returns the lines said."""
        from keras_tuner.src.engine import oracle as oracle_module

        said = []
        with _locked(self, oracle_module):
            self._leases()
            now = time.monotonic()
            for tuner_id in sorted(set(self.tuner_ids) | set(self.ongoing_trials)):
                last = self._seen.setdefault(tuner_id, now)
                if now - last <= self.lease_seconds:
                    continue
                self._seen.pop(tuner_id)
                self.tuner_ids.discard(tuner_id)
                trial = self.ongoing_trials.pop(tuner_id, None)
                if trial is None:
                    said.append(f"worker {tuner_id} silent for {now - last:.0f} s: no longer counted as a worker")
                    continue
                self._retry_queue.append(trial.trial_id)
                self._moved[trial.trial_id] = tuner_id
                self._notes[tuner_id] = (f"your trial {trial.trial_id} was taken back after {now - last:.0f} s "
                                         f"without a word from you (lease {self.lease_seconds:g} s)")
                said.append(f"worker {tuner_id} silent for {now - last:.0f} s (lease {self.lease_seconds:g} s): "
                            f"trial {trial.trial_id} goes back to the queue, for the next worker to continue")
            if said:
                self.save()
        for line in said:
            _log(line)
        return said

    def take_note(self, tuner_id: str) -> str | None:
        from keras_tuner.src.engine import oracle as oracle_module

        with _locked(self, oracle_module):
            return self._leases()._notes.pop(tuner_id, None)

    # -- Keras Tuner's oracle, with leases

    def create_trial(self, tuner_id):
        from keras_tuner.src.engine import oracle as oracle_module
        from keras_tuner.src.engine import trial as trial_module

        with _locked(self, oracle_module):
            self.renew(tuner_id)
            trial = super().create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED and not getattr(self, "aborted", None) \
                    and (self.ongoing_trials or self._retry_queue):
                # Keras Tuner would send this worker home while another's trial may still come back
                # to the queue (its worker silent): keep it, asking again, until every trial has ended.
                self.tuner_ids.add(tuner_id)
                return trial_module.Trial(self.get_space(), status=trial_module.TrialStatus.IDLE)
            if trial.status == trial_module.TrialStatus.RUNNING and self._leases()._moved.pop(trial.trial_id, None):
                _log(f"trial {trial.trial_id} handed to {tuner_id}: it goes on from its last checkpoint")
        return trial

    def end_trial_as(self, tuner_id: str | None, trial) -> str | None:
        """`end_trial` from `tuner_id`, if the trial is still its own; returns None or why not."""
        from keras_tuner.src.engine import oracle as oracle_module

        with _locked(self, oracle_module):
            if tuner_id is not None:
                refused = self.renew(tuner_id, trial.trial_id)
                if refused:
                    return refused
            self.end_trial(trial)
        return None

    def end_trial(self, trial):
        from keras_tuner.src.engine import oracle as oracle_module

        with _locked(self, oracle_module):
            if trial.trial_id in self.end_order:  # ended already (a retried call): once is enough
                for tuner_id, ongoing in list(self.ongoing_trials.items()):
                    if ongoing.trial_id == trial.trial_id:
                        self.ongoing_trials.pop(tuner_id)
                return
            super().end_trial(trial)
            self.save()  # Keras Tuner saves before it lets go of the trial: the file would still hold it

    def get_state(self):
        return {**super().get_state(), "mnistlab_search_id": self.search_id,
                "mnistlab_moved": dict(self._leases()._moved)}

    def set_state(self, state):
        super().set_state(state)
        self.search_id = state.get("mnistlab_search_id")
        self._leases()._moved.update(state.get("mnistlab_moved", {}))

    def reload(self):
        from keras_tuner.src.engine import trial as trial_module

        held = runs.read_json(self._get_oracle_fname()).get("ongoing_trials", {}) if self.keep_holders else {}
        super().reload()  # Keras Tuner (and _Safe) queue every trial that was running
        now = time.monotonic()
        for tuner_id, trial_id in sorted(held.items()):
            trial = self.trials.get(trial_id)
            if trial is None or trial.status != trial_module.TrialStatus.RUNNING or trial_id not in self._retry_queue:
                continue
            # The chief was away, not the worker: the trial stays its own, with a fresh lease.
            while trial_id in self._retry_queue:
                self._retry_queue.remove(trial_id)
            self.ongoing_trials[tuner_id] = trial
            self.tuner_ids.add(tuner_id)
            self._leases()._seen[tuner_id] = now
            _log(f"trial {trial_id} is still {tuner_id}'s: it has {self.lease_seconds:g} s to check in")


class _locked:
    """The oracle's own lock (Keras Tuner's `synchronized`), re-entrant like it."""

    def __init__(self, oracle, oracle_module):
        self.oracle, self.module = oracle, oracle_module

    def __enter__(self):
        name = threading.current_thread().name
        self.acquired = self.module.THREADS[self.oracle] != name
        if self.acquired:
            self.module.LOCKS[self.oracle].acquire()
            self.module.THREADS[self.oracle] = name

    def __exit__(self, *exc):
        if self.acquired:
            self.module.THREADS[self.oracle] = None
            self.module.LOCKS[self.oracle].release()


def ensure_search_id(oracle) -> str:
    """The search's id (kept in oracle.json): tells a worker's folder of another search from this one's."""
    if not oracle.search_id:
        oracle.search_id = uuid.uuid4().hex[:12]
        oracle.save()
    return oracle.search_id


def make_servicer(oracle):
    """Keras Tuner's `OracleServicer`, with leases (see the module docstring)."""
    import grpc
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine import trial as trial_module

    def tuner_of(context):
        return dict(context.invocation_metadata()).get(TUNER_KEY)

    class LeaseServicer(OracleServicer):
        def GetSpace(self, request, context):
            context.set_trailing_metadata(((LEASE_KEY, f"{self.oracle.lease_seconds:g}"),
                                           (SEARCH_KEY, self.oracle.search_id or "")))
            return super().GetSpace(request, context)

        def CreateTrial(self, request, context):
            response = super().CreateTrial(request, context)
            note = self.oracle.take_note(request.tuner_id)
            if note:
                context.set_trailing_metadata(((NOTE_KEY, note),))
            return response

        def _check(self, context, trial_id):
            tuner_id = tuner_of(context)
            if tuner_id is not None:
                refused = self.oracle.renew(tuner_id, trial_id)
                if refused:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, refused)

        def UpdateTrial(self, request, context):
            self._check(context, request.trial_id)
            if request.trial_id in self.oracle.end_order:  # repeated after the trial ended: change nothing
                from keras_tuner.src import protos

                trial = self.oracle.get_trial(request.trial_id)
                return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
            return super().UpdateTrial(request, context)

        def GetTrial(self, request, context):  # also the workers' heartbeat
            self._check(context, request.trial_id)
            return super().GetTrial(request, context)

        def EndTrial(self, request, context):
            trial = trial_module.Trial.from_proto(request.trial)
            refused = self.oracle.end_trial_as(tuner_of(context), trial)
            if refused:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, refused)
            from keras_tuner.src import protos

            return protos.get_service().EndTrialResponse()

    return LeaseServicer(oracle)


def start_reaper(oracle) -> threading.Event:
    """A thread that takes back silent workers' trials; set the returned event to stop it."""
    stop = threading.Event()
    interval = max(0.1, min(5.0, oracle.lease_seconds / 5))
    from keras_tuner.src.engine import oracle as oracle_module

    with _locked(oracle, oracle_module):  # the leases count from now, when workers can reach the chief
        now = time.monotonic()
        for tuner_id in oracle._leases()._seen:
            oracle._seen[tuner_id] = now

    def reap():
        while not stop.wait(interval):
            oracle.expire()

    threading.Thread(target=reap, daemon=True, name="lease-reaper").start()
    return stop


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, a port something already listens on (gRPC would share it: SO_REUSEPORT)."""
    import socket

    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            why = "in use" if e.errno == 98 else e.strerror
            raise MnistlabError(f"cannot listen on {host}:{port} ({why}): is a chief already running there? "
                                "Stop it, or choose another --chief port") from None


# ------------------------------------------------------------------ the worker


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


__all__ = ["DEFAULT_LEASE", "DEFAULT_CHIEF_WAIT", "Leases", "Heartbeat", "TrialMovedOn", "make_servicer",
           "make_client", "start_reaper", "check_port", "seconds", "ensure_search_id", "check_worker_folder",
           "check_same_search"]
