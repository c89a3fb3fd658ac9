"""Run the learning-rate range test and print the suggested learning rates.

Trains a throw-away model for a few hundred batches at most while the rate
grows exponentially from --min-lr to --max-lr, prints what each rule reads off
the loss curve (the default rule marked), and writes lr_find.png, lr_find.csv,
lr_find.json and tensorboard/lr_find into --run-dir. Use the suggestion with
`mnistlab train --lr RATE`, or let `mnistlab train --lr auto` do both.
"""

from __future__ import annotations

import time
from pathlib import Path

from mnistlab.config import DEFAULT_BACKEND, MODELS, OPTIMIZERS


def add_arguments(p):
    p.add_argument("--model", choices=MODELS, default="mlp", help="which model (default: mlp)")
    p.add_argument("--preset", default="default", help="a named set of defaults (see README)")
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default=None)
    p.add_argument("--batch-size", type=int, default=None, help="examples per step (default: the preset's)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    p.add_argument("--min-lr", type=float, default=None, help="rate of the first step (default 1e-6)")
    p.add_argument("--max-lr", type=float, default=None, help="rate of the last step (default 10)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (default: the library's, 100)")
    p.add_argument("--seed", type=int, default=None)
    check = p.add_mutually_exclusive_group()
    check.add_argument("--no-validate", action="store_true",
                       help="read the rate off the curve alone (the `middle` rule), without the short "
                            "validation trainings of the default `validated` rule: several times faster")
    check.add_argument("--fast-probes", action="store_true",
                       help="validation trainings of 16 steps instead of 100: about 1.8x the curve's time "
                            "instead of 4-6x, but further from the best rate (docs/lr-range-test.md, \"Cost\")")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="validation share held out of the training set (scores the validation probes)")
    p.add_argument("--train-limit", type=int, default=None, help="use only this many training examples")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four IDX files or mnist.npz")
    p.add_argument("--run-dir", type=Path, default=None, help="output folder (default: runs/lr-find-MODEL-TIME)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)


def default_backend(args):
    return DEFAULT_BACKEND[args.model]


def config_from_args(args):
    from mnistlab.config import make_config

    return make_config(
        args.model, args.preset, dataset=args.dataset, batch_size=args.batch_size,
        optimizer=args.optimizer, seed=args.seed, val_fraction=args.val_fraction,
        train_limit=args.train_limit,
    )


def format_table(result) -> str:
    """The suggestions as an aligned text table, the default rule marked, then why any are missing."""
    from mnistlab.lr_range import validation as lr_validation
    from mnistlab.lr_range.finder import ALL_RULES

    lines = [f"{'rule':<14}{'lr':>10}", "-" * 24]
    why = {}
    for rule in ALL_RULES:
        lr = result.suggestions.get(rule)
        if lr is None:
            why.setdefault(result.reasons.get(rule, "unknown"), []).append(rule)
        text = f"{lr:>10.3g}" if lr is not None else f"{'none':>10}"
        mark = "  <- default" if rule == result.default_rule else ""
        lines.append(f"{rule:<14}{text}{mark}")
    for reason, rules in why.items():
        lines.append(f"none for {', '.join(rules)}: {reason}")
    if result.lr_range is not None:
        lines.append(f"supported range: {result.lr_range[0]:.3g} to {result.lr_range[1]:.3g} "
                     "(from the steepest descent to half the lowest point, widened to hold the "
                     "suggestion; shaded in lr_find.png)")
    if result.probes:
        tried = ", ".join(f"{lr:.3g}: {loss:.4g}" for lr, loss in sorted(result.probes.items()))
        fast = result.settings.get("validate") == "fast"
        shrink = lr_validation.FAST["shrink"] if fast else lr_validation.SHRINK
        lines.append(f"validated: held-out loss after {result.settings['probe_steps']} steps at each rate "
                     f"({tried}); the best / {shrink:g}")
    return "\n".join(lines)


def run(args) -> int:
    config = config_from_args(args)  # validates before Keras is imported
    settings = {k: v for k, v in dict(min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps).items()
                if v is not None}
    from mnistlab.lr_range import finder as lr_finder
    lr_finder.check_settings(**settings, batch_size=config.batch_size)
    run_dir = args.run_dir or Path("runs") / f"lr-find-{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"

    from mnistlab.models import build_model
    from mnistlab.training.train import compile_model, prepare_data, setup_backend, targets, validation_of

    setup_backend(config)
    splits = prepare_data(config, data_dir=args.data_dir)
    model = compile_model(build_model(config.model, **config.model_options), config, 1e-3)
    result = lr_finder.lr_range_test(
        model, splits.x_train, targets(config, splits.y_train), batch_size=config.batch_size,
        seed=config.seed, verbose=args.verbose, validate="fast" if args.fast_probes else not args.no_validate,
        validation_data=validation_of(config, splits), **settings,
    )
    result.save(run_dir)
    print(format_table(result))
    print(f"stopped: {result.stop_reason}")
    probes = (f" + {len(result.probes)} probes x {result.settings['probe_steps']} steps"
              if result.probes else "")
    print(f"{config.model} + {config.optimizer}, batch size {config.batch_size}, {len(result.lrs)} steps{probes}, "
          f"{result.settings['backend']}, {result.timings['total_seconds']:.1f} s | wrote "
          f"{', '.join(lr_finder.FILES)} and tensorboard/lr_find to {run_dir}")
    if result.suggestion is not None:
        print(f"next: mnistlab train --model {config.model} --lr {result.suggestion:.3g}")
    else:
        print(f"no suggestion: {result.reason}")
    return 0
