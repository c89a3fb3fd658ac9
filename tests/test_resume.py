"""Never lose a run: exact resume, atomic checkpoints, fault injection with SIGKILL."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import cli_env
from mnistlab import data
from mnistlab.config import make_config
from mnistlab.errors import MnistlabError
from mnistlab.training.train import train

SMALL = {"depth": 2, "width": 32}


@pytest.fixture(scope="module")
def tiny(tiny_mnist_dir):
    return data.load_folder(tiny_mnist_dir, verify=False)


def weights(run_dir, name="last.keras"):
    return keras.saving.load_model(Path(run_dir) / name).get_weights()


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def config(**kw):
    # plateau with patience 1 and early stopping with patience 2 so both have state to carry
    return make_config("mlp", **{"epochs": 6, "batch_size": 32, "model_options": SMALL,
                                 "lr_patience": 1, "patience": 3, "seed": 3, **kw})


class StopAfter(keras.callbacks.Callback):
    """Simulates a crash: raises after epoch `n` has been checkpointed."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("steps_per_execution", [1, 5])
def test_resume_in_process_is_bit_identical(tiny, tmp_path, monkeypatch, steps_per_execution):
    # with 5 steps per call an epoch is 15 of the 16 batches: if Keras ran past the
    # epoch's end, epochs 4-6 would see other batches than the resumed run's
    run_config = functools.partial(config, steps_per_execution=steps_per_execution)
    full = train(run_config(), tmp_path / "full", dataset=tiny, verbose=0)
    # interrupt a second run after epoch 3 by wrapping make_callbacks
    import mnistlab.training.train as tr

    real = tr.make_callbacks
    monkeypatch.setattr(tr, "make_callbacks", lambda *a, **k: [*real(*a, **k), StopAfter(3)])
    with pytest.raises(KeyboardInterrupt):
        train(run_config(), tmp_path / "cut", dataset=tiny, verbose=0)
    monkeypatch.setattr(tr, "make_callbacks", real)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = train(None, tmp_path / "cut", dataset=tiny, verbose=0, resume=True)
    assert resumed.resumed_at_epoch == 4
    assert same_weights(weights(tmp_path / "full"), weights(tmp_path / "cut"))
    assert same_weights(weights(tmp_path / "full", "best.keras"), weights(tmp_path / "cut", "best.keras"))
    assert resumed.history == full.history  # incl. learning_rate: the plateau state carried over
    assert resumed.metrics["test_accuracy"] == full.metrics["test_accuracy"]
    csv_full = (tmp_path / "full" / "history.csv").read_text()
    assert (tmp_path / "cut" / "history.csv").read_text() == csv_full  # appended, not restarted
    # TensorBoard continues at the right step: epochs 0-5 once each, across the two event files
    from tensorflow.python.summary.summary_iterator import summary_iterator

    steps = sorted(e.step for f in (tmp_path / "cut" / "tensorboard" / "validation").glob("events*")
                   for e in summary_iterator(str(f)) for v in e.summary.value if v.tag == "epoch_accuracy")
    assert steps == list(range(6))
    # resuming a finished run does nothing
    again = train(None, tmp_path / "cut", dataset=tiny, verbose=0, resume=True)
    assert again.already_finished and again.metrics == json.loads((tmp_path / "cut" / "metrics.json").read_text())


def test_validation_every_other_epoch_checkpoints_those_and_resumes_exactly(tiny, tmp_path, monkeypatch):
    # validation_freq=2 over 5 epochs: validated (and checkpointed) after epochs 2, 4 and 5
    full = train(config(epochs=5, validation_freq=2), tmp_path / "full", dataset=tiny, verbose=0)
    val = np.array(full.history["val_accuracy"])
    assert np.isnan(val[[0, 2]]).all() and np.isfinite(val[[1, 3, 4]]).all(), val
    assert full.metrics["best_epoch"] in (2, 4, 5) and len(full.history["loss"]) == 5
    import mnistlab.training.train as tr

    real = tr.make_callbacks
    monkeypatch.setattr(tr, "make_callbacks", lambda *a, **k: [*real(*a, **k), StopAfter(3)])
    with pytest.raises(KeyboardInterrupt):  # after epoch 3, which was not validated: no checkpoint of it
        train(config(epochs=5, validation_freq=2), tmp_path / "cut", dataset=tiny, verbose=0)
    monkeypatch.setattr(tr, "make_callbacks", real)
    resumed = train(None, tmp_path / "cut", dataset=tiny, verbose=0, resume=True)
    assert resumed.resumed_at_epoch == 3  # epoch 3 is trained again, the same way
    assert same_weights(weights(tmp_path / "full"), weights(tmp_path / "cut"))
    np.testing.assert_equal(resumed.history, full.history)  # NaN where not validated, in both
    csv_text = (tmp_path / "full" / "history.csv").read_text()
    assert (tmp_path / "cut" / "history.csv").read_text() == csv_text
    assert csv_text.splitlines()[0] == "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss", csv_text
    assert csv_text.splitlines()[1].endswith(",NA,NA") and "NA" not in csv_text.splitlines()[2], csv_text


def test_resume_refuses_changes_and_corruption(tiny, tmp_path):
    run = tmp_path / "run"
    train(config(epochs=2), run, dataset=tiny, verbose=0)
    (run / "metrics.json").unlink()  # pretend it was interrupted after its last epoch
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(MnistlabError, match=r"changed config \(model_options"):
        train(config(epochs=2, model_options={"depth": 3, "width": 32}), run, dataset=tiny, verbose=0,
              resume=True)
    state = run / "state.npz"
    state.write_bytes(state.read_bytes()[:1000])  # truncated, as a disk could leave it
    with pytest.raises(MnistlabError, match="is corrupt or unreadable"):
        train(None, run, dataset=tiny, verbose=0, resume=True)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "state.npz"} == {
        k: v for k, v in before.items() if k != "state.npz"}, "nothing of the old run may be destroyed"
    with pytest.raises(MnistlabError, match="not a mnistlab run folder"):
        train(None, tmp_path / "nothing", dataset=tiny, verbose=0, resume=True)


def test_divergence_keeps_the_last_good_checkpoint(tiny, tmp_path):
    import mnistlab.training.train as tr

    run = tmp_path / "div"
    cfg = config(epochs=4, lr=1e-3, optimizer="sgd")
    original = tr.EpochBatches

    class Poisoned(original):  # epoch 3's batches hold an infinite pixel: the loss turns NaN
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            if i // self.steps == 2:
                x = x.copy()
                x[0, 0, 0] = np.inf
            return x, y

    tr.EpochBatches = Poisoned
    try:
        with pytest.raises(MnistlabError, match=r"diverged in epoch 3.*last good checkpoint \(epoch 2\)"):
            train(cfg, run, dataset=tiny, verbose=0)
    finally:
        tr.EpochBatches = original
    state = json.loads(np.load(run / "state.npz")["meta"].tobytes())
    assert state["epoch"] == 1
    assert all(np.isfinite(w).all() for w in weights(run))


def test_full_disk_keeps_the_previous_checkpoint_and_resumes(tiny, tmp_path, monkeypatch):
    import mnistlab.training.checkpoints as ck

    real_savez, calls = ck.np.savez, []

    def savez_then_full(*a, **k):  # the first checkpoint is written, then the disk is full
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_savez(*a, **k)

    monkeypatch.setattr(ck.np, "savez", savez_then_full)
    run = tmp_path / "full"
    with pytest.raises(MnistlabError, match="No space left on device.*previous checkpoint is kept"):
        train(config(epochs=3), run, dataset=tiny, verbose=0)
    assert not [p for p in run.iterdir() if ".tmp" in p.name], "no temporary file left behind"
    monkeypatch.setattr(ck.np, "savez", real_savez)  # space freed
    resumed = train(None, run, dataset=tiny, verbose=0, resume=True)
    assert resumed.resumed_at_epoch == 2
    full = train(config(epochs=3), tmp_path / "ref", dataset=tiny, verbose=0)
    assert same_weights(weights(run), weights(tmp_path / "ref")) and resumed.history == full.history


# ------------------------------------------------------------ SIGKILL, for real
# The kill-and-resume machinery is benchmarks/reliability/fault_resume.py's (which repeats it 10 times).

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is a package at the repository root
from benchmarks.reliability import fault_resume  # noqa: E402


@pytest.mark.slow  # ten training processes, SIGKILLed and resumed: a minute or two on 2 cores
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tiny_mnist_dir, tmp_path):
    env = cli_env(MNISTLAB_SKIP_MD5=1)
    ref = tmp_path / "ref"
    done = subprocess.run(fault_resume.train_cmd(ref, tiny_mnist_dir), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    # Kills tied to the run's progress (start-up, a batch, a checkpoint write), not to the
    # clock: each lands where it is meant to however fast or busy the machine is.
    seed = int(time.time())
    print(f"kill moments from seed {seed}")
    moments = fault_resume.random_moments(np.random.default_rng(seed))
    kills = fault_resume.kill_and_resume(tmp_path / "cut", tiny_mnist_dir, moments, env)
    assert kills == moments, f"seed {seed}: {kills} of {moments}"
    assert fault_resume.differences(ref, tmp_path / "cut") == [], f"seed {seed}: {moments}"


def test_cli_resume_errors_exit_2(tiny_mnist_dir, tmp_path, monkeypatch, capsys):
    # in-process (the command line's main): each error comes before any training, so five
    # fresh processes were 20 s of start-up for nothing
    import mnistlab.training.environment
    from mnistlab.cli.main import main

    monkeypatch.setenv("MNISTLAB_SKIP_MD5", "1")
    monkeypatch.setattr(mnistlab.training.environment, "configure", lambda **kw: {})  # the test process's env stays
    run = tmp_path / "run"
    train = [a for a in fault_resume.train_args(run, tiny_mnist_dir, 1) if a != "--deterministic"]
    assert main(train) == 0, capsys.readouterr().err
    capsys.readouterr()
    cases = [
        (["--resume", tmp_path / "nope"], "not a mnistlab run folder"),
        (["--resume", run, "--width", "128"], "changed config"),
        (["--resume", run, "--preset", "fast"], "--preset cannot be combined"),
    ]
    for args, message in cases:
        code = main(["train", *map(str, args), "--data-dir", str(tiny_mnist_dir)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
    assert main(["train", "--resume", str(run), "--data-dir", str(tiny_mnist_dir)]) == 0
    assert "had already finished: nothing to do" in capsys.readouterr().out
