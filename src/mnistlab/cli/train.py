"""Train a model into a run folder and print its test accuracy.

Writes config.json, best.keras, last.keras, history.csv, learning_curves.png,
metrics.json and TensorBoard logs into --run-dir.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from mnistlab.config import (ARCH_FLAGS, DEFAULT_BACKEND, DOWNSAMPLING, MODELS, OPTIMIZERS, PRESET_BACKEND,
                             SCHEDULES, TRAIN_FLAGS)


def _lr(value: str):
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None


def add_arguments(p):
    p.add_argument("--model", choices=MODELS, default=None, help="which model (default: mlp)")
    p.add_argument("--preset", default=None, help="a named set of defaults (see README)")
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default=None)
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    p.add_argument("--lr", type=_lr, default=None, help="learning rate, or 'auto' for the LR range test")
    p.add_argument("--schedule", choices=SCHEDULES, default=None)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=None, help="validation share of the training set")
    p.add_argument("--train-limit", type=int, default=None, help="use only this many training examples")
    p.add_argument("--one-hot", action="store_true", default=None, help="one-hot labels, categorical cross-entropy")
    p.add_argument("--label-smoothing", type=float, default=None, help="label smoothing in [0, 1) (needs --one-hot)")
    p.add_argument("--steps-per-execution", type=int, default=None, metavar="N",
                   help="training steps per call into the backend (faster; epochs then take a multiple of N batches)")
    p.add_argument("--validation-freq", type=int, default=None, metavar="N",
                   help="validate and checkpoint every N epochs and after the last (default 1)")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="bit-identical same-seed runs (TensorFlow op determinism; see README)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted run exactly where its last checkpoint left it")
    arch = p.add_argument_group("architecture (defaults: see mnistlab.models)")
    arch.add_argument("--depth", type=int, default=None, help="MLP hidden layers")
    arch.add_argument("--width", type=int, default=None, help="MLP units per hidden layer")
    arch.add_argument("--activation", default=None, help="MLP activation (relu, elu, selu, gelu, ...)")
    arch.add_argument("--filters", type=int, nargs="+", default=None, help="CNN channels per block")
    arch.add_argument("--convs", type=int, default=None, help="CNN 3x3 convolutions per block (default 2)")
    arch.add_argument("--downsample", choices=DOWNSAMPLING, nargs="+", default=None,
                      help="CNN: how a block halves the image: max-pooling at its end (default), "
                           "right after its convolution (cheaper), or a stride-2 convolution "
                           "(cheapest, less accurate); one value, or one per block")
    arch.add_argument("--dense", type=int, default=None, help="CNN dense units before the output")
    arch.add_argument("--crop", type=int, default=None, metavar="PIXELS",
                      help="cut this many pixels off each edge before the first layer (3: 22x22, 1%% of "
                           "MNIST's ink; cheaper steps)")
    arch.add_argument("--dropout", type=float, default=None, help="dropout rate")
    arch.add_argument("--l2", type=float, default=None, help="L2 weight penalty")
    arch.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None)
    arch.add_argument("--bn-momentum", type=float, default=None,
                      help="batch norm's moving-average momentum (default 0.99; ~0.9 for a few hundred steps)")
    aug = p.add_argument_group("augmentation in training (0 turns each off)")
    aug.add_argument("--rotation", type=float, default=None, help="max rotation, degrees")
    aug.add_argument("--zoom", type=float, default=None, help="max relative zoom")
    aug.add_argument("--shift", type=float, default=None, help="max shift, fraction of the size")
    aug.add_argument("--elastic", type=float, default=None,
                     help="elastic distortion alpha (Simard et al. used 34; default 0: off)")
    aug.add_argument("--elastic-sigma", type=float, default=None, help="elastic distortion smoothness (default 4)")
    aug.add_argument("--offline-augment", action="store_true", default=None,
                     help="the seed's offline augmentation: add 1-pixel shifts in 4 directions (5x data)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four IDX files or mnist.npz")
    p.add_argument("--run-dir", type=Path, default=None, help="output folder (default: runs/MODEL-TIME)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)


def default_backend(args):
    if args.resume is not None:  # the backend the run was trained on
        from mnistlab.runs import read_json

        with contextlib.suppress(Exception):  # a bad folder is reported by run()
            return read_json(args.resume / "config.json")["backend"]
    model = args.model or "mlp"
    return PRESET_BACKEND.get((model, args.preset), DEFAULT_BACKEND[model])



def config_from_args(args):
    from mnistlab.config import make_config

    options = {k: getattr(args, k) for k in ARCH_FLAGS if getattr(args, k, None) is not None}
    if len(options.get("downsample", ())) == 1:  # one value: every block
        options["downsample"] = options["downsample"][0]
    flags = {k: getattr(args, k) for k in TRAIN_FLAGS}
    return make_config(args.model or "mlp", args.preset or "default", model_options=options or None, **flags)


def resume_config(args):
    """The run's own config with the flags given on top (train() refuses any change), or None."""
    from mnistlab.config import TrainConfig
    from mnistlab.errors import MnistlabError
    from mnistlab.runs import read_json

    path = args.resume / "config.json"
    if not path.is_file():
        raise MnistlabError(f"cannot resume {args.resume}: no config.json there, so it is not a mnistlab run folder")
    values = TrainConfig.from_dict(read_json(path)["config"]).to_dict()
    if args.preset is not None:
        raise MnistlabError("--preset cannot be combined with --resume: the run keeps its own config")
    given = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    if args.model is not None:
        given["model"] = args.model
    options = {k: getattr(args, k) for k in ARCH_FLAGS if getattr(args, k, None) is not None}
    if not given and not options:
        return None
    values.update(given)
    values["model_options"] = {**values["model_options"], **options}
    return TrainConfig.from_dict(values)


def run(args) -> int:
    if args.resume is not None:
        if args.run_dir is not None and args.run_dir != args.resume:
            from mnistlab.errors import MnistlabError

            raise MnistlabError("--resume RUN_DIR continues in RUN_DIR: leave out --run-dir")
        config, run_dir = resume_config(args), args.resume
    else:
        config = config_from_args(args)  # validates before Keras is imported
        run_dir = args.run_dir or Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    from mnistlab.training.train import train

    result = train(config, run_dir, data_dir=args.data_dir, verbose=args.verbose,
                   resume=args.resume is not None)
    m = result.metrics
    if result.already_finished:
        print(f"{run_dir} had already finished: nothing to do. ", end="")
    elif result.resumed_at_epoch is not None:
        print(f"resumed {run_dir} at epoch {result.resumed_at_epoch}. ", end="")
    print(
        f"test accuracy {m['test_accuracy']:.4f} (loss {m['test_loss']:.4f}) | "
        f"{result.config.model} on {result.config.dataset}, {m['backend']}, best epoch {m['best_epoch']}/{m['epochs_run']}, "
        f"{m['total_seconds']:.0f} s | run folder {result.run_dir} | "
        f"learning curves: tensorboard --logdir {result.run_dir / 'tensorboard'}"
    )
    return 0
