"""Train a model into a run folder and print its test accuracy.

Writes config.json, best.keras, last.keras, history.csv, learning_curves.png,
metrics.json and TensorBoard logs into --run-dir.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mnistlab.config import DEFAULT_BACKEND, MODELS, OPTIMIZERS, SCHEDULES


def _lr(value: str):
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None


def add_arguments(p):
    p.add_argument("--model", choices=MODELS, default="mlp", help="which model (default: mlp)")
    p.add_argument("--preset", default="default", help="a named set of defaults (see README)")
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
    arch = p.add_argument_group("architecture (defaults: see mnistlab.models)")
    arch.add_argument("--depth", type=int, default=None, help="MLP hidden layers")
    arch.add_argument("--width", type=int, default=None, help="MLP units per hidden layer")
    arch.add_argument("--activation", default=None, help="MLP activation (relu, elu, selu, gelu, ...)")
    arch.add_argument("--filters", type=int, nargs="+", default=None, help="CNN channels per block")
    arch.add_argument("--dense", type=int, default=None, help="CNN dense units before the output")
    arch.add_argument("--dropout", type=float, default=None, help="dropout rate")
    arch.add_argument("--l2", type=float, default=None, help="L2 weight penalty")
    arch.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None)
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
    return DEFAULT_BACKEND[args.model]


ARCH_FLAGS = ("depth", "width", "activation", "filters", "dense", "dropout", "l2", "batch_norm",
              "rotation", "zoom", "shift", "elastic", "elastic_sigma")


def config_from_args(args):
    from mnistlab.config import make_config

    options = {k: getattr(args, k) for k in ARCH_FLAGS if getattr(args, k, None) is not None}
    return make_config(
        args.model, args.preset, model_options=options or None, dataset=args.dataset, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        schedule=args.schedule, patience=args.patience, seed=args.seed,
        val_fraction=args.val_fraction, train_limit=args.train_limit, one_hot=args.one_hot,
        offline_augment=args.offline_augment,
    )


def run(args) -> int:
    config = config_from_args(args)  # validates before Keras is imported
    run_dir = args.run_dir or Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    from mnistlab.training import train

    result = train(config, run_dir, data_dir=args.data_dir, verbose=args.verbose)
    m = result.metrics
    print(
        f"test accuracy {m['test_accuracy']:.4f} (loss {m['test_loss']:.4f}) | "
        f"{config.model} on {config.dataset}, {m['backend']}, best epoch {m['best_epoch']}/{m['epochs_run']}, "
        f"{m['total_seconds']:.0f} s | run folder {result.run_dir} | "
        f"learning curves: tensorboard --logdir {result.run_dir / 'tensorboard'}"
    )
    return 0
