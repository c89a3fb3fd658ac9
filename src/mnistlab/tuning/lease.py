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
* **Worker** (`mnistlab.tuning.worker_link`: `LeasedClient`, Keras Tuner's
  `OracleClient` with retries; `Heartbeat`): it sends its tuner id with every call, renews its lease from a
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


__all__ = ["DEFAULT_LEASE", "DEFAULT_CHIEF_WAIT", "Leases", "TrialMovedOn", "make_servicer", "start_reaper",
           "check_port", "seconds", "ensure_search_id"]
