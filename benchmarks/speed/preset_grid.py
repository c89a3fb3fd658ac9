"""Variants of a preset over seeds: test accuracy and training time of each, in one table.

    python -m benchmarks.speed.preset_grid --model cnn --preset gpu --backend jax \
        --variants '{}' '{"batch_size": 1024, "epochs": 4, "lr": 0.01}' --seeds 0 1 2

How a preset's numbers were chosen: each variant is the preset with some
config fields overridden (JSON; "model_options" merges into the preset's).
Every (variant, seed) trains in its own process exactly as
time_to_accuracy.py's runs do (same child, same clock, JAX compilation cache
on), so "train s" is the wall time of model.fit and "compile s" the part JAX
spent tracing and compiling or loading compiled steps; the first seed of a
variant fills the cache for the others. Results are appended to
benchmarks/out/preset_grid.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from benchmarks.common.cli_args import json_object_arg
from benchmarks.common.paths import OUT_DIR
from benchmarks.speed.time_to_accuracy import train_child


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    p.add_argument("--preset", default="fast")
    p.add_argument("--backend", choices=["jax", "tensorflow"], required=True)
    p.add_argument("--variants", nargs="+", default=["{}"], help="JSON config overrides, one per variant")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--bar", type=float, default=0.99, help="test accuracy every seed must reach")
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    p.add_argument("--max-epochs", type=int, default=10**6, help="cap every variant's epochs (smoke tests)")
    p.add_argument("--out", type=Path, default=OUT_DIR / "preset_grid.jsonl", help="results appended here")
    args = p.parse_args(argv)
    variants = [json_object_arg(p, "--variants", text, '{"epochs": 4}') for text in args.variants]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{platform.node()}, {os.cpu_count()} cores, --model {args.model} --preset {args.preset}, "
          f"{args.backend}, seeds {args.seeds}\n")
    print("| variant | test acc per seed | all >= bar | train s per seed | compile s per seed "
          "| train - compile s (max) | epoch s (last seed) |")
    print("|---|---|---|---|---|---|---|")
    for variant in variants:
        extra = {"preset": args.preset, **variant}
        try:
            results = [train_child(args.model, args.backend, seed, args.data_dir, args.max_epochs, args.bar, extra)
                       for seed in args.seeds]
        except SystemExit as e:  # one variant's failure (printed) does not end the grid
            print(f"| `{json.dumps(variant)}` | failed: {str(e).splitlines()[0]} | | | | | |", flush=True)
            print(e, file=sys.stderr)
            continue
        with open(args.out, "a") as f:
            for seed, r in zip(args.seeds, results):
                f.write(json.dumps({"model": args.model, "backend": args.backend, "seed": seed, **extra, **r}) + "\n")
        compiles = [r.get("compile_s") for r in results]  # None on TensorFlow
        accs = [r["test_accuracy"] for r in results]
        cells = [
            f"`{json.dumps(variant)}`",
            " / ".join(f"{a:.4f}" for a in accs),
            "yes" if min(accs) >= args.bar else "no",
            " / ".join(f"{r['train_s']:.2f}" for r in results),
            " / ".join("-" if c is None else f"{c:.2f}" for c in compiles),
            f"{max(r['train_s'] - (c or 0.0) for r, c in zip(results, compiles)):.2f}",
            " / ".join(f"{t:.3f}" for t in results[-1].get("epoch_s", [])),
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
