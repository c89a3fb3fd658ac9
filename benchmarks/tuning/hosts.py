"""Trials per hour of a search across "machines": 1, 2 and 3 workers, each in a network
namespace of its own (its own address, on a bridge), beside the same search on loopback.

Each search is `mnistlab tune --chief` plus K `mnistlab tune --join` processes (never
the supervised `--workers K`): placement "loopback" runs them all on 127.0.0.1 here;
"namespaces" runs the chief and each worker in a namespace of its own
(`tests/netns.py`), joined over veth pairs and a bridge, the run folder shared (one
filesystem, as over NFS). The same random search every time (--trials trials of
--epochs epochs on --train-limit images); the wall time runs from the chief's start to
its end (start-up, compilation and the best trial's test included), each search with an
empty cache of compiled programs (cold, as on fresh machines). Workers are not pinned to
cores: as on separate machines, each uses what it finds.

    sudo python -m benchmarks.tuning.hosts --data-dir /work/shared/data/mnist --backend jax
    python -m benchmarks.tuning.hosts --placements loopback --workers 1 2   # without root
    python -m benchmarks.tuning.hosts --dry-run                              # the commands only

Namespaces need root and iproute2's `ip`; without them only loopback is measured, and
the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACEMENTS = ("loopback", "namespaces")
PORT = 8470


def tune(args, *extra) -> list[str]:
    cmd = [sys.executable, "-m", "mnistlab", "tune", *extra]
    if args.backend:
        cmd[4:4] = ["--backend", args.backend]
    if args.data_dir:
        cmd += ["--data-dir", str(args.data_dir)]
    return cmd


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commands(args, run_dir: Path, host: str, port: int, workers: int) -> tuple[list, list]:
    chief = tune(args, "--chief", f"{host}:{port}", "--host", host, "--model", "mlp", "--tuner", "random",
                 "--max-trials", str(args.trials), "--epochs", str(args.epochs), "--train-limit",
                 str(args.train_limit), "--seed", str(args.seed), "--run-dir", str(run_dir), "--verbose", "0")
    joins = [tune(args, "--join", f"{host}:{port}", "--worker-id", f"w{i}", "--run-dir", str(run_dir),
                  "--chief-wait", "120") for i in range(workers)]
    return chief, joins


def shown(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in ["mnistlab", *cmd[3:]])


def measure(args, placement: str, workers: int, out: Path) -> dict:
    run_dir = out / f"{placement}-{workers}"
    hosts = None
    if placement == "namespaces":
        sys.path.insert(0, str(REPO / "tests"))
        from netns import Hosts  # the tests' helper: one namespace per host, on a bridge of their own

        if args.dry_run:
            chief_at = "10.213.0.1"
        else:
            hosts = Hosts(["chief", *[f"w{i}" for i in range(workers)]])
            chief_at = hosts.address["chief"]
        port = PORT  # the chief's namespace is its own: any port is free there
    else:
        chief_at, port = "127.0.0.1", free_port()
    chief_cmd, join_cmds = commands(args, run_dir, chief_at, port, workers)
    if args.dry_run:
        print(f"$ {shown(chief_cmd)}", file=sys.stderr)
        for j in join_cmds:
            print(f"$ {shown(j)}", file=sys.stderr)
        return {}
    out.mkdir(parents=True, exist_ok=True)
    # a cache of compiled programs of its own: every search starts cold, as on fresh machines
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MNISTLAB_CACHE_DIR": str(out / f"{placement}-{workers}-cache")}
    logs = [open(out / f"{placement}-{workers}-{name}.log", "w") for name in ["chief", *range(workers)]]
    procs = []
    try:
        started = time.perf_counter()
        launch = (lambda name, cmd, log: hosts.popen(name, cmd, stdout=log, stderr=subprocess.STDOUT, env=env)) \
            if hosts else (lambda name, cmd, log: subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        chief = launch("chief", chief_cmd, logs[0])
        procs = [chief] + [launch(f"w{i}", cmd, logs[i + 1]) for i, cmd in enumerate(join_cmds)]
        code = chief.wait(timeout=args.timeout)
        wall = time.perf_counter() - started
        for p in procs[1:]:
            p.wait(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
        if hosts is not None:
            hosts.close()
    if code != 0:
        raise SystemExit(f"{placement}, {workers} workers: the chief failed ({code}); see {out}")
    results = json.loads((run_dir / "tune_results.json").read_text())
    done = [t for t in results["trials"] if t["status"] == "COMPLETED"]
    return {"wall": wall, "completed": len(done), "per_hour": len(done) / wall * 3600,
            "trial_s": sum(t["seconds"] or 0 for t in done) / max(1, len(done)),
            "chief": shown(chief_cmd), "join": shown(join_cmds[0])}


def can_make_namespaces() -> str | None:
    import shutil

    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no `ip` (iproute2)"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--placements", nargs="+", choices=PLACEMENTS, default=list(PLACEMENTS))
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"), help="MNIST's folder")
    p.add_argument("--backend", choices=("jax", "tensorflow"), default=None)
    p.add_argument("--out", type=Path, default=None, help="where the searches go (default: a temporary folder)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one search may take")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    why_not = None if args.dry_run else can_make_namespaces()
    placements = [pl for pl in args.placements if not (pl == "namespaces" and why_not)]
    temp = tempfile.TemporaryDirectory(prefix="tune-hosts-") if args.out is None else None
    out = Path(temp.name if temp else args.out) / time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for workers in args.workers:
        for placement in placements:
            r = measure(args, placement, workers, out)
            rows.append(f"| {workers} | {placement} | (dry run) | | | |" if not r else
                        f"| {workers} | {placement} | {r['completed']} | {r['wall']:.0f} s | **{r['per_hour']:.0f}** | "
                        f"{r['trial_s']:.1f} s |")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    text = [f"## Trials per hour across hosts ({time.strftime('%Y-%m-%d %H:%M')} UTC, {machine})", "",
            "    python -m benchmarks.tuning.hosts " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])), "",
            f"Random search, {args.trials} trials of {args.epochs} epoch(s) on {args.train_limit} training images "
            "(the MLP's default space); wall time from the chief's start to its end.", "",
            "| workers | placement | trials | wall time | trials per hour | mean trial (in `fit` and around it) |",
            "|---|---|---|---|---|---|", *rows]
    if why_not and "namespaces" in args.placements:
        text += ["", f"Namespaces not measured: {why_not}."]
    print("\n".join(text))
    if temp is not None:
        temp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
