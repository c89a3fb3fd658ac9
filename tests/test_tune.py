"""`mnistlab tune`: the space, its checks, and real distributed searches (chief + 2 workers
on 127.0.0.1) that are SIGKILLed at observed moments and must still end with exactly N
completed trials."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from conftest import REPO, TINY_SPACE, TUNE_HOOK as HOOK, cli_env
from mnistlab.cli.main import build_parser, main
from mnistlab.cli.train import config_from_args
from mnistlab.errors import MnistlabError
from mnistlab.tuning import default_space, hparams, normalize_space
from mnistlab.tuning import space as space_lib
from mnistlab.tuning.search import make_definition

BACKEND = keras.backend.backend()


# ------------------------------------------------------------------ the space


def test_default_spaces_are_plain_valid_dicts():
    for model in ("mlp", "cnn"):
        space = default_space(model)
        assert json.loads(json.dumps(space)) == space  # plain data: editable, writable
        normalize_space(space, model)
        space["lr"] = "auto"
        assert normalize_space(space, model)["lr"] == {"fixed": "auto"}
    assert default_space("mlp") != space  # a fresh copy each time


@pytest.mark.parametrize("entry, words", [
    ({"depht": [2, 3]}, ["'depht'", "unknown", "depth"]),
    ({"filters": [[16, 32]]}, ["'filters'", "unknown for the mlp"]),
    ({"dropout": {"min": 0.4, "max": 0.1}}, ["'dropout'", "empty range"]),
    ({"width": []}, ["'width'", "empty list"]),
    ({"width": [256, "wide"]}, ["'width'", "'wide'", "whole number"]),
    ({"batch_norm": ["yes"]}, ["'batch_norm'", "true or false"]),
    ({"l2": {"min": 0, "max": 1e-2, "sampling": "log"}}, ["'l2'", "min > 0"]),
    ({"optimizer": ["adam", "adagrad"]}, ["'optimizer'", "adagrad"]),
    ({"depth": {"min": 2, "max": 4, "stride": 1}}, ["'depth'", "stride"]),
])
def test_bad_entries_are_named(entry, words):
    with pytest.raises(MnistlabError) as e:
        normalize_space({**default_space("mlp"), **entry}, "mlp")
    for w in words:
        assert w in str(e.value)


def test_bad_space_file_exits_2_before_anything_starts(tmp_path, capsys):
    bad = tmp_path / "space.toml"
    bad.write_text('dropout = {min = 0.5, max = 0.2}\n')
    run_dir = tmp_path / "search"
    assert main(["tune", "--space", str(bad), "--run-dir", str(run_dir), "--backend", BACKEND]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'dropout'" in err and "empty range" in err
    assert not run_dir.exists()
    broken = tmp_path / "space.json"
    broken.write_text("{depth: 2")
    assert main(["tune", "--space", str(broken), "--run-dir", str(run_dir), "--backend", BACKEND]) == 2
    assert "not valid JSON" in capsys.readouterr().err and not run_dir.exists()


def test_space_file_narrows_the_default(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('width = [128, 256]\nlr = "auto"\n')
    space = space_lib.space_from_file(f, "mlp")
    assert space["width"] == {"choices": [128, 256]} and space["lr"] == {"fixed": "auto"}
    assert set(space) == set(default_space("mlp"))


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_train_command_reproduces_the_trial_config(model):
    definition = make_definition(None, model=model, epochs=7, train_limit=500, seed=3, backend=BACKEND)
    hps = space_lib.hyperparameters(definition["space"])
    rng = random.Random(0)
    for _ in range(5):
        values = {hp.name: hp.random_sample(rng.randrange(10**6)) for hp in hps.space}
        config = space_lib.trial_config(definition, values)
        command = space_lib.train_command(config, BACKEND, run_dir="x").split()
        args = build_parser().parse_args(command[1:])
        assert config_from_args(args) == config, command


def test_hparams_events_parse(tmp_path):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata

    space = normalize_space(default_space("cnn"), "cnn")
    hparams.write_experiment(tmp_path, space)
    hparams.write_session(tmp_path / "0" / "tensorboard", "0", {"filters": [16, 32, 64], "lr": 1e-3}, 0.97)
    (exp,) = list(tmp_path.glob("events.*"))
    tags = [v for e in EventFileLoader(str(exp)).Load() for v in e.summary.value]
    experiment = metadata.parse_experiment_plugin_data(tags[0].metadata.plugin_data.content)
    assert {h.name for h in experiment.hparam_infos} == set(space)
    (sess,) = list((tmp_path / "0" / "tensorboard").glob("events.*"))
    values = [v for e in EventFileLoader(str(sess)).Load() for v in e.summary.value]
    start = metadata.parse_session_start_info_plugin_data(values[0].metadata.plugin_data.content)
    assert start.hparams["filters"].string_value == "16-32-64" and start.hparams["lr"].number_value == 1e-3
    assert [v.tag for v in values][1] == "tune/val_accuracy"


# ------------------------------------------------------------------ real searches


def tune_cmd(run_dir, data_dir, space_file, trials=3, epochs=2, workers=2):
    return [sys.executable, "-m", "mnistlab", "tune", "--backend", BACKEND, "--model", "mlp", "--tuner", "random",
            "--max-trials", str(trials), "--workers", str(workers), "--epochs", str(epochs),
            "--data-dir", str(data_dir), "--space", str(space_file), "--run-dir", str(run_dir), "--seed", "1"]


def hold_env(hold_dir):
    path = os.pathsep.join([str(REPO / "src"), str(HOOK), os.environ.get("PYTHONPATH", "")])
    return cli_env(MNISTLAB_SKIP_MD5=1, KERAS_BACKEND=BACKEND, MNISTLAB_TEST_HOLD_DIR=hold_dir, PYTHONPATH=path)


def watch(proc, hold_dir, act, timeout=240):
    """Until the search ends, ask act(pid, trial, n) about each process held after a checkpoint
    (n: the order the holds appeared in): "release" it, "keep" it held, or it "killed" it."""
    deadline, order = time.time() + timeout, {}
    while proc.poll() is None:
        assert time.time() < deadline, "the search did not end"
        for held in sorted(Path(hold_dir).glob("*.held"), key=lambda p: p.stat().st_mtime_ns):
            n = order.setdefault(held.name, len(order))
            pid, trial, _ = held.stem.split("-")
            if act(int(pid), trial, n) == "release":
                held.unlink(missing_ok=True)
        time.sleep(0.02)
    return proc.returncode


def check_search(run_dir, n, epochs):
    results = json.loads((run_dir / "tune_results.json").read_text())
    trials = results["trials"]
    assert [t["status"] for t in trials] == ["COMPLETED"] * n, trials
    assert len({t["trial_id"] for t in trials}) == n
    for t in trials:
        assert t["worker"] in ("w0", "w1") and 0 <= t["val_accuracy"] <= 1 and t["epochs"] == epochs
        folder = run_dir / "trials" / t["trial_id"]
        rows = list(csv.DictReader((folder / "history.csv").open()))
        assert [int(r["epoch"]) for r in rows] == list(range(epochs)), folder  # one finished run, no epoch twice
        assert json.loads((folder / "metrics.json").read_text())["epochs_run"] == epochs
        assert list((folder / "tensorboard").glob("events.*")), "no HParams session"
    best = results["best"]
    assert best["trial_id"] in {t["trial_id"] for t in trials} and 0 <= best["test_accuracy"] <= 1
    assert best["command"].startswith(f"mnistlab train --backend {BACKEND} --model mlp")
    assert (run_dir / "tune_results.csv").read_text().count("\n") == n + 1
    assert (run_dir / "tune_hyperparameters.png").stat().st_size > 0
    assert len(list((run_dir / "keras_tuner").glob("trial_*/trial.json"))) == n
    return results


@pytest.mark.slow  # starts a search chief and workers, and kills and resumes them
@pytest.mark.skipif(BACKEND != "jax", reason="the TensorFlow pass runs test_distributed_search (CI time)")
def test_search_survives_a_killed_worker_and_a_killed_search(tiny_mnist_dir, tmp_path, capsys, skip_md5):
    """2 workers, 3 trials of 2 epochs. A worker is SIGKILLed inside a trial (held right after
    a checkpoint) and restarted; later the whole search is SIGKILLed and run again (with one
    worker). Each time a trial goes on from its checkpoint, and the search ends with exactly
    3 completed trials."""
    seed = int(os.environ.get("TUNE_KILL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    print(f"kill choices from seed {seed} (TUNE_KILL_SEED={seed} repeats them)")
    space_file = tmp_path / "space.toml"
    space_file.write_text(TINY_SPACE)
    run_dir, hold_dir = tmp_path / "search", tmp_path / "hold"
    hold_dir.mkdir()
    cmd = tune_cmd(run_dir, tiny_mnist_dir, space_file)
    env = hold_env(hold_dir)
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    kill_worker_at = rng.choice([0, 1])  # at which checkpoint (in the order they come) a worker dies
    state = {"worker_killed": None, "search_killed": None}
    finished = lambda trial: (run_dir / "trials" / trial / "metrics.json").exists()  # noqa: E731

    def act(pid, trial, n):
        if state["search_killed"]:
            return "killed"
        if state["worker_killed"] is None:
            if n < kill_worker_at:
                return "release"
            assert not finished(trial)
            os.kill(pid, signal.SIGKILL)  # inside its trial: it is held right after a checkpoint
            state["worker_killed"] = trial
            return "killed"
        if not finished(state["worker_killed"]):  # hold the others until the restarted worker is done
            return "release" if trial == state["worker_killed"] else "keep"
        if finished(trial):
            return "release"
        os.killpg(proc.pid, signal.SIGKILL)  # the supervisor, its oracle and every worker, mid-trial
        state["search_killed"] = trial
        return "killed"

    code = watch(proc, hold_dir, act)
    log.close()
    first = (tmp_path / "first.log").read_text()
    assert state["worker_killed"] is not None, first
    assert "restarting it as w" in first, first
    killed = json.loads((run_dir / "trials" / state["worker_killed"] / "metrics.json").read_text())
    assert killed.get("resumed_at_epoch") in (2, 3), "the restarted worker did not continue its trial"
    assert state["search_killed"] is not None, first
    assert code == -signal.SIGKILL
    env.pop("MNISTLAB_TEST_HOLD_DIR")
    cmd[cmd.index("--workers") + 1] = "1"  # a search may go on with another number of workers
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "continuing the random search" in again.stdout
    assert json.loads((run_dir / "trials" / state["search_killed"] / "metrics.json").read_text()).get(
        "resumed_at_epoch") in (2, 3), "the search run again did not continue the killed trial"
    check_search(run_dir, 3, 2)

    finished_and_refusals(run_dir, cmd, space_file, capsys)


def finished_and_refusals(run_dir, cmd, space_file, capsys):
    """A finished search says so and does nothing; another space is refused and nothing touched."""
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    args = cmd[cmd.index("tune"):]
    assert main(args) == 0
    assert "finished search: nothing to do" in capsys.readouterr().out
    space_file.write_text(TINY_SPACE.replace("[8, 16]", "[8, 32]"))
    assert main(args) == 2
    assert "holds another search (space differs)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before


@pytest.mark.slow  # starts a search chief and two workers on 127.0.0.1
@pytest.mark.skipif(BACKEND != "tensorflow", reason="on JAX, the kill test above runs a 2-worker search")
def test_distributed_search(tiny_mnist_dir, tmp_path, capsys, skip_md5):
    """Chief + 2 workers on 127.0.0.1 on TensorFlow, to the end (the kill test runs on JAX: the
    kill-and-resume path is the same Python on both backends, and train's resume is tested on both)."""
    space_file = tmp_path / "space.toml"
    space_file.write_text(TINY_SPACE)
    run_dir = tmp_path / "search"
    cmd = tune_cmd(run_dir, tiny_mnist_dir, space_file, epochs=1)
    env = cli_env(MNISTLAB_SKIP_MD5=1, KERAS_BACKEND=BACKEND)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" completed on w") == 3 and "test accuracy" in proc.stdout.splitlines()[-1]
    results = check_search(run_dir, 3, 1)
    assert results["search"]["backend"] == "tensorflow" and results["workers"] == 2
    finished_and_refusals(run_dir, cmd, space_file, capsys)


def test_evaluate_report_section_for_a_trial(tmp_path):
    from mnistlab.evaluation.search_section import report_section

    trials = [{"trial_id": i, "status": "COMPLETED", "worker": "w0", "hyperparameters": {"width": w},
               "val_accuracy": acc, "epochs": 2, "seconds": 1.0} for i, w, acc in (("0", 8, 0.9), ("1", 16, 0.95))]
    (tmp_path / "trials" / "0").mkdir(parents=True)
    (tmp_path / "tune_results.json").write_text(json.dumps({
        "trials": trials, "search": {"tuner": "random"},
        "best": {"trial_id": "1", "val_accuracy": 0.95, "test_accuracy": 0.94, "command": "mnistlab train --width 16"}}))
    section = report_section(tmp_path / "trials" / "0")
    assert "Hyperparameter search" in section and "ranked 2" in section and "mnistlab train --width 16" in section
    assert report_section(tmp_path) == ""


def test_chief_binds_loopback_unless_told(tmp_path, capsys):
    args = ["tune", "--backend", BACKEND, "--chief", "10.1.2.3:8470", "--run-dir", str(tmp_path / "s")]
    assert main(args) == 2
    assert "--host 10.1.2.3" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["tune", "--backend", BACKEND, "--join", "nohost", "--worker-id", "w1",
                 "--run-dir", str(tmp_path / "w")]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
