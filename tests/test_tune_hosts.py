"""`mnistlab tune` across machines: leases (a silent worker's trial goes to another, a late
worker is refused), a chief that comes back, the one-line errors at the edges, and a real
search whose chief and workers sit in network namespaces of their own (one per "machine"),
with a worker's namespace killed mid-trial and the chief killed and started again."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from conftest import REPO, TINY_SPACE, TUNE_HOOK as HOOK, cli_env, in_one_pass
from mnistlab.cli.main import main
from mnistlab.tuning import lease as lease_lib
from mnistlab.tuning import worker_link
from mnistlab.tuning import oracle as oracle_lib
from mnistlab.tuning import space as space_lib
from mnistlab.tuning.search import make_definition
from mnistlab.tuning.worker import DEFINITION, SEARCH
from netns import hosts_or_skip

BACKEND = keras.backend.backend()


def wait_for(predicate, what, timeout=120.0, poll=0.05):
    """Wait on a condition (never a fixed sleep for correctness); fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(poll)


# ------------------------------------------------------------------ an oracle and clients in this process


@pytest.fixture
def chief(tmp_path, monkeypatch):
    """A chief's oracle served on 127.0.0.1 (lease 2 s), and a maker of workers' clients."""
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    definition = make_definition(space, model="mlp", tuner="random", max_trials=3, epochs=1, seed=1, backend=BACKEND)
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / SEARCH).write_text(json.dumps(definition))
    hps = space_lib.hyperparameters(definition["space"], {DEFINITION: json.dumps(definition, sort_keys=True)})
    oracle = oracle_lib.open_oracle(definition, hps, tmp_path / "search", lease=2, keep_holders=True)
    server, servicer, port = oracle_lib.serve(oracle, "127.0.0.1", 0)
    address = f"127.0.0.1:{port}"

    def client(tuner_id):
        monkeypatch.setenv("KERASTUNER_TUNER_ID", tuner_id)
        c = worker_link.make_client(None, address, chief_wait=5)
        c.get_space()
        return c

    yield oracle, client, address, definition
    servicer.reaper.set()
    server.stop(0)


def finish(client, trial, value=0.5):
    client.update_trial(trial.trial_id, {"val_accuracy": value}, step=0)
    trial.status = "COMPLETED"
    client.end_trial(trial)


def test_a_silent_workers_trial_goes_to_another_and_the_late_worker_is_refused(chief, capsys):
    oracle, client, _, _ = chief
    a, b = client("a"), client("b")
    assert a.lease == 2 and a.search_id == oracle.search_id
    ta, tb = a.create_trial("a"), b.create_trial("b")
    assert ta.status == tb.status == "RUNNING" and ta.trial_id != tb.trial_id
    # b beats, a is silent: a's trial goes back to the queue
    wait_for(lambda: b.beat(tb.trial_id) and "a" not in oracle.ongoing_trials, "a's lease to expire", timeout=30)
    assert ta.trial_id in oracle._retry_queue and "b" in oracle.ongoing_trials
    finish(b, tb)
    moved = b.create_trial("b")
    assert moved.trial_id == ta.trial_id  # b continues a's trial
    with pytest.raises(lease_lib.TrialMovedOn, match=f"trial {ta.trial_id} moved on to b"):
        finish(a, ta, 0.9)  # a comes back late: its result is not counted
    with pytest.raises(lease_lib.TrialMovedOn):
        a.beat(ta.trial_id)
    finish(b, moved)
    finish(b, moved)  # a retried end_trial (say the answer was lost): counted once
    a = client("a")  # a started again (it knows nothing): the chief tells it once
    third = a.create_trial("a")
    assert "the chief says: your trial %s was taken back" % ta.trial_id in capsys.readouterr().out
    idle = b.create_trial("b")  # the last trial is a's: b waits instead of leaving
    assert idle.status == "IDLE"
    finish(a, third)
    assert b.create_trial("b").status == a.create_trial("a").status == "STOPPED"
    assert sorted(oracle.end_order) == sorted(oracle.trials) and len(oracle.end_order) == 3
    assert all(t.status == "COMPLETED" for t in oracle.trials.values())
    assert oracle.trials[ta.trial_id].score == 0.5  # b's value, not a's late 0.9
    assert oracle.workers[ta.trial_id] == "b"


def test_a_worker_back_before_anyone_took_its_trial_keeps_it(chief):
    oracle, client, _, _ = chief
    a = client("a")
    ta = a.create_trial("a")
    wait_for(lambda: ta.trial_id in oracle._retry_queue, "a's lease to expire", timeout=30)
    a.beat(ta.trial_id)  # back, and nobody took it: it is a's again
    assert oracle.ongoing_trials["a"].trial_id == ta.trial_id and ta.trial_id not in oracle._retry_queue
    finish(a, ta)
    assert oracle.end_order == [ta.trial_id]


def test_a_chief_started_again_gives_running_trials_back_to_their_workers(chief, tmp_path):
    oracle, client, _, definition = chief
    a = client("a")
    ta = a.create_trial("a")
    hps = space_lib.hyperparameters(definition["space"], {DEFINITION: json.dumps(definition, sort_keys=True)})
    again = oracle_lib.open_oracle(definition, hps, tmp_path / "search", lease=30, keep_holders=True)
    assert again.ongoing_trials["a"].trial_id == ta.trial_id and not again._retry_queue
    assert again.search_id == oracle.search_id
    local = oracle_lib.open_oracle(definition, hps, tmp_path / "search", lease=30, keep_holders=False)
    assert not local.ongoing_trials and local._retry_queue == [ta.trial_id]  # supervised workers: as before


# ------------------------------------------------------------------ the edges: one line, exit code 2


def one_line(capfd) -> str:
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("mnistlab tune: error: "), err
    return err[0]


def join(address, run_dir, *extra):
    return main(["tune", "--backend", BACKEND, "--join", address, "--worker-id", "x", "--run-dir", str(run_dir),
                 "--chief-wait", "5", *extra])


@pytest.fixture
def worker_env(monkeypatch):
    """run_worker sets Keras Tuner's variables in this process: undone after the test."""
    for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.setenv(var, "unset")


def test_edges_give_one_line_and_exit_2(chief, tmp_path, capfd, worker_env, skip_md5):
    oracle, _, address, definition = chief
    # a chief that is not there, after a bounded wait
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    started = time.monotonic()
    assert join(f"127.0.0.1:{free}", tmp_path / "w0", "--chief-wait", "1") == 2
    assert "no chief answers at 127.0.0.1:%d after 1 s" % free in one_line(capfd)
    assert time.monotonic() - started < 30
    # the chief's port already in use (here: by the chief above)
    port = address.rsplit(":", 1)[1]
    assert main(["tune", "--backend", BACKEND, "--chief", address, "--run-dir", str(tmp_path / "c2")]) == 2
    assert f"cannot listen on 127.0.0.1:{port} (in use)" in one_line(capfd)
    assert not (tmp_path / "c2").exists()
    # a worker whose folder holds another search (another space)
    other = tmp_path / "other"
    other.mkdir()
    (other / SEARCH).write_text(json.dumps({**definition, "space": {**definition["space"], "depth": {"fixed": 2}}}))
    assert join(address, other) == 2
    assert "belongs to another search" in one_line(capfd)
    # a worker whose folder is another run folder of the same search definition (another chief's)
    twin = tmp_path / "twin"
    (twin / "keras_tuner").mkdir(parents=True)
    (twin / SEARCH).write_text(json.dumps(definition))
    (twin / "keras_tuner" / "oracle.json").write_text(json.dumps({"mnistlab_search_id": "0123456789ab"}))
    assert join(address, twin) == 2
    assert "run folder of another search" in one_line(capfd)
    # a run folder on a path this machine cannot see (a share not mounted here)
    assert join(address, "/nonexistent-share/searches/s1") == 2
    assert "/nonexistent-share/searches is not a folder on this machine" in one_line(capfd)
    assert not oracle.tuner_ids - {"x"} and not oracle.ongoing_trials
    assert main(["tune", "--backend", BACKEND, "--chief", "127.0.0.1:1", "--lease", "0",
                 "--run-dir", str(tmp_path / "c3")]) == 2
    assert "--lease" in one_line(capfd)


# ------------------------------------------------------------------ three machines


@pytest.fixture
def three_hosts():
    hosts = hosts_or_skip(["chief", "a", "b"])
    yield hosts
    hosts.close()


def mnistlab_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "mnistlab", "tune", "--backend", BACKEND, *map(str, args)]


def log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


@pytest.mark.slow  # a chief and two workers, each in a network namespace of its own, killed and restarted
@in_one_pass("jax", "recovering lost hosts is the oracle's and the lease's work, whatever the backend "
             "(the TensorFlow pass runs test_tune.py's distributed search)")
def test_search_across_hosts_survives_a_lost_host_and_a_chief_restart(three_hosts, tiny_mnist_dir, tmp_path):
    """Chief on 10.213.0.1, workers a and b on .2 and .3, 3 trials of 2 epochs, lease 4 s; each
    worker is held right after each checkpoint until the test lets it go, so every step lands
    inside a trial.

    1. a is cut off the network inside trial X; the chief takes X back; b finishes its trial
       and continues X from a's checkpoint. a, plugged back in, is told X moved on to b: it
       reports nothing and takes the last trial, Z.
    2. a's whole namespace is SIGKILLed inside Z; the chief takes Z back.
    3. The chief is SIGKILLed while b is inside X; b says the chief is away; the chief is
       started again on the same run folder; b finds it, ends X and continues Z.
    The search ends with exactly 3 completed trials, none twice, no epoch written twice."""
    hosts = three_hosts
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    run_dir = tmp_path / "search"  # one filesystem: the run folder is shared, as over NFS
    chief_at = f"{hosts.address['chief']}:8470"
    chief_cmd = mnistlab_cmd("--chief", chief_at, "--host", hosts.address["chief"], "--lease", 4, "--model", "mlp",
                             "--tuner", "random", "--max-trials", 3, "--epochs", 2, "--space", space, "--seed", 1,
                             "--data-dir", tiny_mnist_dir, "--run-dir", run_dir)
    env = cli_env(MNISTLAB_SKIP_MD5=1, KERAS_BACKEND=BACKEND, PYTHONUNBUFFERED=1,
                  PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(HOOK), os.environ.get("PYTHONPATH", "")]))
    logs = {name: tmp_path / f"{name}.log" for name in ("chief1", "chief2", "a", "b")}
    holds = {w: tmp_path / f"hold-{w}" for w in ("a", "b")}

    def start(host, log, cmd, **extra):
        with open(log, "w") as out:
            return hosts.popen(host, cmd, stdout=out, stderr=subprocess.STDOUT, env={**env, **extra})

    chief = start("chief", logs["chief1"], chief_cmd)
    workers = {}
    for w in ("a", "b"):
        holds[w].mkdir()
        workers[w] = start(w, logs[w], mnistlab_cmd("--join", chief_at, "--worker-id", w, "--run-dir", run_dir,
                                                     "--data-dir", tiny_mnist_dir, "--chief-wait", 180),
                           MNISTLAB_TEST_HOLD_DIR=str(holds[w]))

    def held(w):  # [(hold file, trial)] of worker w, held right after a checkpoint
        return [(f, f.stem.split("-")[1]) for f in holds[w].glob("*.held")]

    def alive(*names):
        for name, proc in [("chief", chief), *workers.items()]:
            if name in names and proc.poll() is not None:
                pytest.fail(f"{name} ended early ({proc.returncode}): "
                            + "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                                        for p in logs.values() if p.exists()))
        return True

    def says(log, text, *running):
        return lambda: alive(*running) and log_has(logs[log], text)

    def release(w, unless=None):
        """Let worker w go on, unless it is held inside trial `unless`; True once it is."""
        inside = False
        for f, trial in held(w):
            if trial == unless:
                inside = True
            else:
                f.unlink(missing_ok=True)
        return inside

    # 1. a cut off inside X; b continues X; a comes back late and is told
    wait_for(lambda: alive("chief", "a", "b") and held("a") and held("b"), "both workers inside a trial", 240)
    x = held("a")[0][1]
    hosts.set_link("a", up=False)
    wait_for(says("chief1", f"trial {x} goes back to the queue", "chief", "b"), "the chief to take X back from a")
    wait_for(lambda: alive("chief", "b") and release("b", unless=x), "b to go on inside X", 240)
    assert log_has(logs["chief1"], f"trial {x} handed to b")
    hosts.set_link("a", up=True)
    release("a")
    wait_for(says("a", f"trial {x} moved on to b", "chief", "a"), "a to hear that X moved on")
    # 2. a (in Z now) loses its whole machine
    wait_for(lambda: alive("chief", "a") and any(t != x for _, t in held("a")), "a inside another trial", 240)
    z = next(t for _, t in held("a") if t != x)
    hosts.kill_all("a")
    wait_for(says("chief1", f"trial {z} goes back to the queue", "chief", "b"), "the chief to take Z back")
    # 3. the chief dies while b is inside X, and comes back
    hosts.kill_all("chief")
    assert chief.poll() == -9
    wait_for(says("b", "does not answer", "b"), "b to say the chief is away")
    chief = start("chief", logs["chief2"], chief_cmd)
    wait_for(says("chief2", f"trial {x} is still b's", "chief", "b"), "the chief to come back with b's trial")
    wait_for(says("b", "answers again", "chief", "b"), "b to find the chief again")
    wait_for(lambda: release("b") or chief.poll() is not None, "the search to end", 300)

    out = logs["chief2"].read_text(errors="replace")
    assert chief.returncode == 0, out
    assert workers["b"].wait(timeout=60) == 0, logs["b"].read_text(errors="replace")
    results = json.loads((run_dir / "tune_results.json").read_text())
    trials = results["trials"]
    assert [t["status"] for t in trials] == ["COMPLETED"] * 3 and len({t["trial_id"] for t in trials}) == 3, trials
    assert {t["worker"] for t in trials} == {"b"}  # a never ended one
    state = json.loads((run_dir / "keras_tuner" / "oracle.json").read_text())
    assert sorted(state["end_order"]) == sorted(t["trial_id"] for t in trials) and not state["ongoing_trials"]
    for t in trials:
        history = (run_dir / "trials" / t["trial_id"] / "history.csv").read_text().splitlines()
        assert [row.split(",")[0] for row in history[1:]] == ["0", "1"], (t, history)  # no epoch twice
    for moved in (x, z):
        assert json.loads((run_dir / "trials" / moved / "metrics.json").read_text()).get("resumed_at_epoch"), \
            f"b did not continue trial {moved} from a's checkpoint"
    assert f"trial {z} handed to b" in out and "3/3 trials" in out
    late = logs["a"].read_text(errors="replace")
    assert "asking for another trial" in late and f"trial {x} done" not in late
    assert results["best"]["test_accuracy"] is not None


def test_hosts_benchmark_dry_run(tmp_path):
    """benchmarks/tuning/hosts.py prints its commands and table without running a search."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.tuning.hosts", "--dry-run", "--workers", "1",
                           "3", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, env=cli_env(),
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(dry run)") == 4 and "| 3 | namespaces |" in proc.stdout
    assert "--join 10.213.0.1:8470 --worker-id w2" in proc.stderr and "--chief 127.0.0.1:" in proc.stderr
