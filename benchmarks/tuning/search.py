"""What does `mnistlab tune` find, at what cost? Four measurements, each a real search.

    fashion      a Fashion-MNIST search; its best trial's test accuracy against our
                 Fashion-MNIST defaults (MLP 89.35%, CNN 90.89%) and the textbook's
                 Keras Tuner result (87.53% test)
    mnist        an MNIST MLP search against our default MLP (99.20-99.26% test)
    lr           the same search twice: the learning rate searched like any value, and
                 lr = "auto" (each trial runs the LR range test on its own model)
    throughput   trials per hour with 1 and 2 workers on this machine (the same search)

Every search is `python -m mnistlab tune ...` in a subprocess, into --out; the
script prints a Markdown table per part with the exact commands. Budgets are
flags (--trials, --epochs, --train-limit, --workers, --tuner): a full search
takes hours on 2 CPU cores, the defaults take minutes.

    python -m benchmarks.tuning.search --data-dir /work/shared/data/mnist --parts mnist lr throughput
    python -m benchmarks.tuning.search --parts fashion --model cnn --trials 20 --epochs 10
    python -m benchmarks.tuning.search --dry-run        # print the commands only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

PARTS = ("fashion", "mnist", "lr", "throughput")
REFERENCES = {  # test accuracy, with where it comes from
    ("fashion_mnist", "mlp"): (0.8935, "our default MLP on Fashion-MNIST (BENCHMARKS.md)"),
    ("fashion_mnist", "cnn"): (0.9089, "our default CNN on Fashion-MNIST (BENCHMARKS.md)"),
    ("fashion_mnist", "textbook"): (0.8753, "the textbook's Keras Tuner search (test)"),
    ("mnist", "mlp"): (0.9920, "our default MLP, 99.20-99.26% on 3 seeds (BENCHMARKS.md)"),
}
SEARCHED_LR = {"min": 3e-4, "max": 1e-2, "sampling": "log"}


def search_cmd(args, run_dir: Path, dataset: str, model: str, workers: int, space_file: Path | None = None,
               tuner: str | None = None, trials: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "mnistlab", "tune", "--model", model, "--dataset", dataset,
           "--tuner", tuner or args.tuner, "--max-trials", str(trials or args.trials), "--workers", str(workers),
           "--epochs", str(args.epochs), "--seed", str(args.seed), "--run-dir", str(run_dir)]
    if args.backend:
        cmd[4:4] = ["--backend", args.backend]
    if args.train_limit:
        cmd += ["--train-limit", str(args.train_limit)]
    if args.data_dir and dataset == "mnist":
        cmd += ["--data-dir", str(args.data_dir)]
    if space_file is not None:
        cmd += ["--space", str(space_file)]
    return cmd


def run_search(cmd: list[str], dry_run: bool) -> dict:
    shown = " ".join(shlex.quote(c) for c in ["mnistlab", *cmd[3:]])
    print(f"$ {shown}", file=sys.stderr, flush=True)
    if dry_run:
        return {"command": shown}
    run_dir = Path(cmd[cmd.index("--run-dir") + 1])
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"search failed ({proc.returncode}): {proc.stderr[-2000:]}")
    results = json.loads((run_dir / "tune_results.json").read_text())
    done = [t for t in results["trials"] if t["status"] == "COMPLETED"]
    return {"command": shown, "wall_s": wall, "results": results, "completed": len(done),
            "trial_s": sum(t["seconds"] or 0 for t in done)}


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def best_row(label: str, r: dict) -> str:
    if "results" not in r:
        return f"| {label} | (dry run) | | | | |"
    b = r["results"]["best"] or {}
    return (f"| {label} | {r['completed']} | {pct(b.get('val_accuracy'))} | {pct(b.get('test_accuracy'))} | "
            f"{r['wall_s'] / 60:.1f} min | `{b.get('command', '-')}` |")


HEADER = ("| search | trials | best val | its test | wall time | best trial again |\n"
          "|---|---|---|---|---|---|")


def part_fashion(args, out: Path) -> str:
    r = run_search(search_cmd(args, out / f"fashion-{args.model}", "fashion_mnist", args.model, args.workers),
                   args.dry_run)
    lines = [f"### Fashion-MNIST, {args.model}", "", HEADER, best_row(f"{args.tuner}, {args.model}", r), ""]
    for key in ((("fashion_mnist", args.model)), ("fashion_mnist", "textbook")):
        acc, what = REFERENCES[key]
        lines.append(f"- {what}: {pct(acc)}")
    return "\n".join(lines)


def part_mnist(args, out: Path) -> str:
    r = run_search(search_cmd(args, out / "mnist-mlp", "mnist", "mlp", args.workers), args.dry_run)
    acc, what = REFERENCES[("mnist", "mlp")]
    return "\n".join(["### MNIST, MLP", "", HEADER, best_row(f"{args.tuner}, mlp", r), "", f"- {what}: {pct(acc)}"])


def part_lr(args, out: Path) -> str:
    rows = []
    for label, lr in (("lr searched", SEARCHED_LR), ("lr auto", "auto")):
        space = out / f"space-{label.replace(' ', '-')}.json"
        if not args.dry_run:
            out.mkdir(parents=True, exist_ok=True)
            space.write_text(json.dumps({"lr": lr}))
        r = run_search(search_cmd(args, out / f"lr-{label.replace(' ', '-')}", args.lr_dataset, "mlp", args.workers,
                                  space), args.dry_run)
        rows.append(best_row(label, r) + (f" {r['trial_s'] / max(1, r['completed']):.0f} s per trial |"
                                          if "results" in r else " |"))
    return "\n".join([f"### The learning rate: searched or `auto` ({args.lr_dataset}, mlp, same budget)", "",
                      HEADER.replace("best trial again |", "best trial again | mean trial time |")
                      .replace("|---|---|---|---|---|---|", "|---|---|---|---|---|---|---|"), *rows])


def part_throughput(args, out: Path) -> str:
    rows = []
    for workers in (1, 2):
        r = run_search(search_cmd(args, out / f"throughput-{workers}", args.lr_dataset, "mlp", workers,
                                  tuner="random", trials=args.throughput_trials), args.dry_run)
        if "results" in r:
            per_hour = r["completed"] / r["wall_s"] * 3600
            rows.append(f"| {workers} | {r['completed']} | {r['wall_s']:.0f} s | {per_hour:.0f} | "
                        f"{r['trial_s'] / max(1, r['completed']):.1f} s |")
        else:
            rows.append(f"| {workers} | (dry run) | | | |")
    return "\n".join(["### Trials per hour (random search, the same trials)", "",
                      "| workers | trials | wall time | trials per hour | mean trial time |",
                      "|---|---|---|---|---|", *rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--out", type=Path, default=Path("runs/bench-tune"))
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"), help="MNIST's folder")
    p.add_argument("--backend", choices=("jax", "tensorflow"), default=None)
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="the Fashion-MNIST search's model")
    p.add_argument("--tuner", choices=("hyperband", "bayesian", "random"), default="bayesian")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--throughput-trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-limit", type=int, default=10000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--lr-dataset", choices=("mnist", "fashion_mnist"), default="mnist",
                   help="data of the lr and throughput parts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    sections = {"fashion": part_fashion, "mnist": part_mnist, "lr": part_lr, "throughput": part_throughput}
    started = time.perf_counter()
    text = [f"## `mnistlab tune` ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, budget: {args.trials} trials of <= {args.epochs} epochs on "
            f"{args.train_limit or 'all'} training images, {args.tuner})", "",
            "    python -m benchmarks.tuning.search " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])), ""]
    for part in args.parts:
        text += [sections[part](args, out), ""]
    text.append(f"Total {(time.perf_counter() - started) / 60:.1f} min.")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
