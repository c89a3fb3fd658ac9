"""The command line, through a real subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env, in_one_pass


def mnistlab(*args, **env):
    return subprocess.run([sys.executable, "-m", "mnistlab", *map(str, args)],
                          capture_output=True, text=True, env=cli_env(**env), timeout=600)


def test_train_tiny_end_to_end(tiny_mnist_dir, tmp_path):
    run = tmp_path / "run"
    proc = mnistlab("train", "--model", "mlp", "--epochs", "2", "--width", "32", "--depth", "1",
                    "--data-dir", tiny_mnist_dir, "--run-dir", run, "--verbose", "0",
                    MNISTLAB_SKIP_MD5=1)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    metrics = json.loads((run / "metrics.json").read_text())
    assert last.startswith(f"test accuracy {metrics['test_accuracy']:.4f}")
    assert f"tensorboard --logdir {run / 'tensorboard'}" in last


@pytest.mark.parametrize("args,message", [
    (["--lr", "-0.1"], "invalid lr=-0.1"),
    (["--batch-size", "0"], "invalid batch_size=0"),
    (["--steps-per-execution", "0"], "invalid steps_per_execution=0"),
    (["--validation-freq", "0"], "invalid validation_freq=0"),
    (["--bn-momentum", "1.5"], "bn_momentum must be in [0, 1)"),
    (["--model", "cnn", "--depth", "3"], "depth not an option of the cnn"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--one-hot", "--label-smoothing", "1.5"], "invalid label_smoothing=1.5"),
    (["--label-smoothing", "0.1"], "invalid label_smoothing=0.1: needs one-hot labels"),
    (["--data-dir", "/nonexistent/mnist"], "data folder /nonexistent/mnist does not exist"),
])
def test_bad_input_exits_2_without_traceback(args, message, tmp_path):
    proc = mnistlab("train", *args, "--run-dir", tmp_path / "r", "--epochs", "1")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "config.json").exists()


def test_batch_larger_than_the_training_set_exits_2(tiny_mnist_dir, tmp_path):
    proc = mnistlab("train", "--batch-size", "1024", "--data-dir", tiny_mnist_dir, "--run-dir", tmp_path / "r",
                    MNISTLAB_SKIP_MD5=1)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "batch_size=1024 is more than the 540 training examples" in proc.stderr
    assert not (tmp_path / "r" / "config.json").exists()


def test_gpu_preset_defaults_to_jax():
    from argparse import Namespace

    from mnistlab.cli import train as cmd

    assert cmd.default_backend(Namespace(resume=None, model="cnn", preset="gpu")) == "jax"
    assert cmd.default_backend(Namespace(resume=None, model="cnn", preset="fast")) == "tensorflow"
    assert cmd.default_backend(Namespace(resume=None, model=None, preset=None)) == "jax"


@pytest.mark.parametrize("flags,expected", [
    ([], ["stride", "early-pool"]),  # the fast preset's
    (["--downsample", "pool"], "pool"),  # one value: every block
    (["--downsample", "stride", "pool"], ["stride", "pool"]),  # one per block
    # the preset's per-block list follows other --filters: its first block's choice, then its last's
    (["--filters", "8", "16", "32"], ["stride", "early-pool", "early-pool"]),
    (["--filters", "8"], ["stride"]),
])
def test_downsample_flag(flags, expected):
    from mnistlab.cli.main import build_parser
    from mnistlab.cli.train import config_from_args

    args = build_parser().parse_args(["train", "--model", "cnn", "--preset", "fast", *flags])
    assert config_from_args(args).model_options["downsample"] == expected


def test_downsample_list_of_the_wrong_length_is_refused():
    """Given by the user, a per-block list must match the blocks: no guessing."""
    from mnistlab.cli.main import build_parser
    from mnistlab.cli.train import config_from_args
    from mnistlab.errors import MnistlabError
    from mnistlab.models import build_model

    args = build_parser().parse_args(["train", "--model", "cnn", "--preset", "fast", "--filters", "8", "16", "32",
                                      "--downsample", "stride", "pool"])
    config = config_from_args(args)
    with pytest.raises(MnistlabError, match="one per block"):
        build_model("cnn", **config.model_options)


def test_crop_flag_is_a_model_option():
    from mnistlab.cli.main import build_parser
    from mnistlab.cli.train import config_from_args

    args = build_parser().parse_args(["train", "--model", "mlp", "--crop", "2"])
    config = config_from_args(args)
    assert config.model_options["crop"] == 2
    config.validate()  # an option both models know


def test_argparse_errors_exit_2():
    proc = mnistlab("train", "--model", "resnet")
    assert proc.returncode == 2 and "invalid choice: 'resnet'" in proc.stderr
    proc = mnistlab("train", "--lr", "fast")
    assert proc.returncode == 2 and "expected a number or 'auto'" in proc.stderr


def test_unwritable_run_dir(tiny_mnist_dir, tmp_path):
    (tmp_path / "file").write_text("")
    proc = mnistlab("train", "--data-dir", tiny_mnist_dir, "--run-dir", tmp_path / "file" / "run",
                    MNISTLAB_SKIP_MD5=1)
    assert proc.returncode == 2 and "cannot write to run folder" in proc.stderr


def test_corrupt_real_data_named(tmp_path, tiny_mnist_dir):
    """Data that is not the canonical MNIST is refused by name, with what to do."""
    proc = mnistlab("train", "--data-dir", tiny_mnist_dir, "--run-dir", tmp_path / "r")
    assert proc.returncode == 2
    assert "train-images-idx3-ubyte.gz: MD5 of the uncompressed file" in proc.stderr
    assert "download it again" in proc.stderr


@in_one_pass("jax")  # trains on JAX and on TensorFlow, whichever the pass
def test_backend_flag(tiny_mnist_dir, tmp_path):
    for backend in ("jax", "tensorflow"):
        run = tmp_path / backend
        proc = mnistlab("train", "--backend", backend, "--epochs", "1", "--width", "16", "--depth", "1",
                        "--data-dir", tiny_mnist_dir, "--run-dir", run, "--verbose", "0",
                        MNISTLAB_SKIP_MD5=1)
        assert proc.returncode == 0, proc.stderr
        assert json.loads((run / "config.json").read_text())["backend"] == backend


def test_a_missing_backend_package_is_named_with_what_to_install(tmp_path):
    """torch is no dependency of mnistlab: --backend torch without it exits 2, saying what to install."""
    code = ("import sys; sys.modules['torch'] = None; from mnistlab.cli.main import main; "  # as if not installed
            f"sys.exit(main(['train', '--backend', 'torch', '--run-dir', {str(tmp_path / 'r')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "the torch backend needs the torch package, which is not installed: pip install torch" in proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") != "torch",
                    reason="the training smoke test of CI's torch slice (KERAS_BACKEND=torch)")
def test_train_on_torch_with_steps_per_execution(tiny_mnist_dir, tmp_path):
    """Keras' torch trainer runs one step per call: --steps-per-execution then sets only the epoch length."""
    run = tmp_path / "torch"
    proc = mnistlab("train", "--backend", "torch", "--epochs", "2", "--width", "16", "--depth", "1",
                    "--steps-per-execution", "5", "--data-dir", tiny_mnist_dir, "--run-dir", run, "--verbose", "0",
                    MNISTLAB_SKIP_MD5=1)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "config.json").read_text())["backend"] == "torch"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == "torch" and metrics["epochs_run"] == 2
    again = mnistlab("train", "--resume", run, MNISTLAB_SKIP_MD5=1)  # the run's backend, from its config.json
    assert again.returncode == 0 and "torch" in again.stdout, again.stderr


@pytest.mark.slow
def test_real_mnist_short_run(mnist_dir, tmp_path):
    """One short run on real MNIST (a 6000-image subset, 2 epochs) must learn."""
    run = tmp_path / "real"
    proc = mnistlab("train", "--model", "mlp", "--epochs", "2", "--train-limit", "6000",
                    "--rotation", "0", "--zoom", "0", "--shift", "0",
                    "--data-dir", mnist_dir, "--run-dir", run, "--verbose", "0")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 10000 and metrics["test_accuracy"] > 0.9, metrics


@pytest.mark.slow  # trains on real Fashion-MNIST
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="the dataset's path is the same on every backend; checked in the TensorFlow pass "
                    "(a CNN on JAX's CPU convolutions took 85 s of the JAX pass)")
def test_fashion_mnist_end_to_end(tmp_path):
    """Real Fashion-MNIST from Debian's package: train a small CNN, evaluate, ensemble."""
    from mnistlab.data import spec

    folders = [Path(d) for d in spec("fashion_mnist").system_dirs if (Path(d) / "t10k-labels-idx1-ubyte.gz").is_file()]
    if not folders:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    run = tmp_path / "fashion"
    proc = mnistlab("train", "--dataset", "fashion_mnist", "--model", "cnn", "--filters", "8", "16",
                    "--dense", "32", "--epochs", "2", "--train-limit", "4000", "--rotation", "0", "--zoom", "0",
                    "--shift", "0", "--batch-size", "64", "--run-dir", run, "--verbose", "0")
    assert proc.returncode == 0, proc.stderr
    assert "cnn on fashion_mnist" in proc.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 10000 and metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    proc = mnistlab("evaluate", run, "--no-tensorboard")
    assert proc.returncode == 0, proc.stderr
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["class_names"][0] == "T-shirt/top" and evaluation["dataset"] == "fashion_mnist"


@in_one_pass("jax")  # a JAX process of its own
def test_a_jax_run_does_not_import_tensorflow(tiny_mnist_dir, tmp_path):
    # TensorFlow costs seconds to import on a 2-core laptop; a JAX run has no use for it
    # (TensorBoard logs are written by mnistlab.summaries).
    run = tmp_path / "run"
    script = ("import sys\nfrom mnistlab.cli.main import main\n"
              "codes = [main(a) for a in (sys.argv[1:sys.argv.index('--')], sys.argv[sys.argv.index('--') + 1:])]\n"
              "print('codes', codes, 'tensorflow imported:', 'tensorflow' in sys.modules)\n")
    train = ["train", "--model", "mlp", "--epochs", "1", "--width", "32", "--depth", "1", "--lr", "auto",
             "--data-dir", tiny_mnist_dir, "--run-dir", run, "--verbose", "0"]
    evaluate = ["evaluate", run, "--data-dir", tiny_mnist_dir]
    proc = subprocess.run([sys.executable, "-c", script, *map(str, train), "--", *map(str, evaluate)],
                          capture_output=True, text=True, timeout=600,
                          env=cli_env(KERAS_BACKEND="jax", MNISTLAB_SKIP_MD5=1))
    assert proc.returncode == 0, proc.stderr
    assert "codes [0, 0] tensorflow imported: False" in proc.stdout, proc.stdout + proc.stderr
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents*"))
    assert list((run / "tensorboard" / "evaluation").glob("events.out.tfevents*"))
