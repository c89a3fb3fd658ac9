"""The benchmark scripts keep working: each runs on tiny data or a few steps and prints its table.

Each script runs as its README says, `python -m benchmarks.GROUP.SCRIPT` from the
repository root; in-process checks import them as `benchmarks.GROUP.SCRIPT` too.

No timing is asserted here (timings live in BENCHMARKS.md); these only check
that the scripts run end to end and print the columns BENCHMARKS.md quotes.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from conftest import cli_env

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` is a package at the repository root
BACKEND = keras.backend.backend()

# The scripts start their own processes on the backends they measure, so one pass
# (CI runs the suite once per backend) is enough.
one_pass = pytest.mark.skipif(BACKEND != "tensorflow", reason="benchmark scripts pick their own "
                              "backends; checked in the TensorFlow pass")


def bench(module, *args, **env):
    """`python -m benchmarks.MODULE ARGS` from the repository root; its stdout."""
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *map(str, args)], capture_output=True,
                          text=True, env=cli_env(**env), timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def table_rows(out, header_start):
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    return [line for line in lines[start + 2:] if line.startswith("|")]


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_time_to_accuracy(tiny_mnist_dir, tmp_path):
    # Every kind of child process once (cnn99 would only repeat cnn995's two kinds; the peer
    # shared by both is checked in-process below, to keep CI's time down).
    out = bench("speed.time_to_accuracy", "--workloads", "mlp98", "cnn995", "gpu99", "lrtest", "--seeds", "0",
                "--max-epochs", "1",
                "--data-dir", tiny_mnist_dir, "--out", tmp_path / "t.jsonl", MNISTLAB_SKIP_MD5=1)
    header = "| workload | config | backend | test acc per seed | goal met | mean train s | mean compile s |"
    assert header in out
    rows = table_rows(out, "| workload |")
    labels = ["textbook MLP (peer)", "--model mlp --preset fast", "Keras-docs convnet (peer)",
              "--preset fast-995", "--preset gpu |", "LR range test"]
    assert all(any(label in r for r in rows) for label in labels), rows
    saved = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    trained = [r for r in saved if r["workload"] != "lrtest"]
    assert len(trained) == 6 and all(0 <= r["test_accuracy"] <= 1 and r["train_s"] > 0 for r in trained)
    # JAX's compile time is measured inside fit; TensorFlow has none to report
    assert all((r["compile_s"] is not None) == (r["backend"] == "jax") for r in trained), trained
    assert all(0 < r["compile_s"] < r["train_s"] for r in trained if r["backend"] == "jax"), trained
    curve, validated = sorted((r for r in saved if r["workload"] == "lrtest"), key=lambda r: "no-validate" not in r["config"])
    assert all(r["train_s"] > 0 and r["steps"] > 10 for r in (curve, validated))
    assert curve["probes"] == 0 and curve["validation_s"] == 0  # --no-validate: the curve alone
    # the default: the probes ran, and their time is part of the test's (unless the curve gave no lowest point)
    assert validated["suggestion"] is None or (validated["probes"] >= 3 and validated["validation_s"] > 0), validated


@one_pass
def test_time_to_accuracy_goal_column_checks_accuracy_and_time(monkeypatch, tmp_path, capsys):
    """'goal met' is yes only when every seed reaches the bar within the time goal."""
    from benchmarks.speed import time_to_accuracy as tta

    fake = {("mlp", 0): (0.981, 4.0), ("mlp", 1): (0.982, 6.0),  # one seed over 5 s
            ("cnn", 0): (0.991, 10.0), ("cnn", 1): (0.989, 9.0)}  # one seed under 99%

    def train_child(kind, backend, seed, *args, **kwargs):
        acc, secs = fake[(kind, seed)]
        return {"train_s": secs, "test_accuracy": acc, "to_val_bar_s": None}

    monkeypatch.setattr(tta, "train_child", train_child)
    tta.main(["--workloads", "mlp98", "cnn99", "--only", "mnistlab", "--seeds", "0", "1",
              "--out", str(tmp_path / "t.jsonl")])
    rows = table_rows(capsys.readouterr().out, "| workload |")
    assert "| mlp98 (>= 98.0% in <= 5 s) |" in rows[0] and "| no (> 5 s) |" in rows[0], rows
    assert "| no (< 99.0%) |" in rows[1], rows
    fake[("mlp", 1)] = (0.982, 4.9)
    tta.main(["--workloads", "mlp98", "--only", "mnistlab", "--seeds", "0", "1", "--out", str(tmp_path / "t.jsonl")])
    assert "| yes |" in table_rows(capsys.readouterr().out, "| workload |")[0]
    # gpu99's 0.5 s leaves compilation out: 0.9 s of training with 0.5 s compiling meets it, 0.3 s does not
    monkeypatch.setattr(tta, "train_child", lambda kind, backend, seed, *a, **k: {
        "train_s": 0.9, "compile_s": compiles[seed], "test_accuracy": 0.991, "to_val_bar_s": None})
    for compiles, verdict in (([0.5, 0.45], "| yes |"), ([0.5, 0.3], "| no (> 0.5 s) |")):
        tta.main(["--workloads", "gpu99", "--seeds", "0", "1", "--out", str(tmp_path / "t.jsonl")])
        (row,) = table_rows(capsys.readouterr().out, "| workload |")
        assert "without compiling" in row and verdict in row, row


@one_pass
def test_time_to_accuracy_trains_a_peer_shared_by_two_workloads_once(monkeypatch, tmp_path, capsys):
    from benchmarks.speed import time_to_accuracy as tta

    calls = []

    def train_child(kind, backend, seed, *args, **kwargs):
        calls.append((kind, backend, seed))
        return {"train_s": 1.0, "test_accuracy": 0.995, "to_val_bar_s": None}

    monkeypatch.setattr(tta, "train_child", train_child)
    tta.main(["--workloads", "cnn99", "cnn995", "--seeds", "0", "1", "--out", str(tmp_path / "t.jsonl")])
    rows = table_rows(capsys.readouterr().out, "| workload |")
    assert sum("Keras-docs convnet (peer)" in r for r in rows) == 2, rows  # shown for cnn99 and cnn995
    assert calls.count(("keras_docs_convnet", "tensorflow", 0)) == 1, calls  # but trained once per seed
    assert sorted(calls).count(("cnn", "tensorflow", 1)) == 2, calls  # fast and fast-995: two configs
    saved = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert sum(r["config"] == "Keras-docs convnet (peer)" for r in saved) == 2  # one line per seed


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_throughput_table():
    out = bench("speed.throughput", "--models", "mlp", "--presets", "default", "--steps", "3")
    assert "| mlp | default | jax | 128 | 1 |" in out and "share of limit" in out
    # The fast preset, timed as train() runs it: 15 steps per call, with its widths replaced.
    # 3.6 MFLOP: 2 x 484 x 1024 x 2 (the first layer needs no input gradient) + 2 x (1024 x 256
    # + 256 x 10) x 3; counting the first x 3 would give 4.6
    out = bench("speed.throughput", "--models", "mlp", "--presets", "fast", "--steps", "3",
                "--options", '{"width": [1024, 256]}')
    assert '"width": [1024, 256]' in out and "| mlp | fast | jax | 256 | 15 | 3.6 |" in out, out
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.throughput", "--options", "[1]"],
                          capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert proc.returncode == 2 and "must be a JSON object" in proc.stderr, proc.stderr


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_augmentation_overhead_table():
    out = bench("speed.augment_overhead", "--models", "mlp", "--steps", "3", "--repeats", "1")
    assert all(f"| {name} |" in out for name in ("none", "default", "default + elastic"))


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_determinism_table():
    out = bench("speed.determinism_cost", "--models", "mlp", "--backends", BACKEND, "--steps", "3")
    rows = table_rows(out, "| model |")
    assert len(rows) == 2 and all(r.endswith("| yes |") for r in rows), rows  # same seed: bit-identical


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_lr_find_speed(tiny_mnist_dir):
    out = bench("speed.lr_find_speed", "--data-dir", tiny_mnist_dir, "--backend", BACKEND, "--steps", "10",
                "--repeats", "1", "--train", "500", MNISTLAB_SKIP_MD5=1)
    rows = table_rows(out, "| model |")
    assert len(rows) == 1, out
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:4] == ["build_mlp() + Adam", BACKEND, "128", "10"], cells
    cold, first, per_step, warm, imports = (float(c.split()[0]) for c in cells[4:])
    assert 0 < first <= cold and per_step > 0 and warm > 0 and imports > 0, cells
    assert "repeat 0:" in out and ", 10 steps, suggestion" in out  # the 10 planned steps all ran


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_batchnorm_speed():
    out = bench("speed.batchnorm_speed", "--presets", "fast", "--steps", "3", "--repeats", "1")
    rows = table_rows(out, "| preset |")
    assert [r.split("|")[2].strip() for r in rows] == ["keras", "mnistlab (fused)"]
    assert rows[1].rstrip(" |").endswith("x")  # the speed-up column


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_callback_overhead(tiny_mnist_dir):
    out = bench("speed.callback_overhead", "--backend", "jax", "--repeats", "1", "--max-epochs", "1",
                "--data-dir", tiny_mnist_dir, MNISTLAB_SKIP_MD5=1)
    rows = table_rows(out, "| callbacks |")
    assert [r.split("|")[1].strip() for r in rows] == ["Keras' TensorBoard + TerminateOnNaN",
                                                       "mnistlab's (no per-batch work)"]
    accs = {r.split("|")[4].strip() for r in rows}
    assert len(accs) == 1, rows  # the callbacks do not change what is learned


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_preset_grid(tiny_mnist_dir, tmp_path):
    out = bench("speed.preset_grid", "--model", "mlp", "--preset", "fast", "--backend", "jax", "--seeds", "0",
                "--variants", "{}", '{"model_options": {"width": 32}}', "--max-epochs", "1", "--bar", "0.98",
                "--data-dir", tiny_mnist_dir, "--out", tmp_path / "g.jsonl", MNISTLAB_SKIP_MD5=1)
    rows = table_rows(out, "| variant |")
    assert [r.split("|")[1].strip() for r in rows] == ["`{}`", '`{"model_options": {"width": 32}}`'], rows
    saved = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r.get("model_options") for r in saved] == [None, {"width": 32}]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.preset_grid", "--backend", "jax",
                           "--variants", "{epochs: 2}"], capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert proc.returncode == 2 and "is not JSON" in proc.stderr


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_step_costs(tiny_mnist_dir):
    out = bench("speed.step_costs", "--batch-sizes", "64", "--filters", "4", "8",
                KERAS_BACKEND="jax", MNISTLAB_DATA_DIR=tiny_mnist_dir, MNISTLAB_SKIP_MD5=1)
    rows = table_rows(out, "| batch |")
    assert [r.split("|")[3].strip() for r in rows] == [
        "fit, batches on device", "fit, batches from host", "fit, one batch", "gather only",
        "raw jit loop, dispatch", "raw jit loop, total", "raw jit loop, synced each step",
        "scan of 15 steps"], rows
    out = bench("speed.step_costs", "--model", "mlp", "--preset", "fast", "--batch-sizes", "32",
                KERAS_BACKEND="jax", MNISTLAB_DATA_DIR=tiny_mnist_dir, MNISTLAB_SKIP_MD5=1)
    assert "--model mlp --preset fast" in out and "| 32 | 15 | scan of 15 steps |" in out, out


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@one_pass
def test_layer_costs(backend):
    out = bench("speed.layer_costs", "--backend", backend, "--batch-size", "8", "--seconds", "0.01",
                "--options", '{"filters": [4, 8], "downsample": ["stride", "early-pool"], "crop": 1}')
    rows = table_rows(out, "| layer |")
    names = [r.split("|")[1].strip() for r in rows]
    # every layer of the model once, in order: the strided block has no pooling, the other pools
    # right after its convolution, and the crop comes after the augmentation
    assert names[:3] == ["augment", "channel", "crop"], names
    assert names.index("conv_0_0") < names.index("bn_0_0") < names.index("conv_1_0") < names.index("pool_1") \
        < names.index("bn_1_0"), names
    assert "pool_0" not in names and names[-1] == "**sum**", names
    cells = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows}
    assert cells["conv_0_0"][1] == "26x26x1" and cells["conv_1_0"][1] == "13x13x4", cells
    # timed as the real step runs them: no backward before the first weights, no input gradient for them
    assert cells["crop"][2] == "forward" and cells["conv_0_0"][2] == "forward + weights' gradient", cells
    assert cells["conv_1_0"][2] == "forward + backward", cells
    times = [float(r.split("|")[5].strip(" *")) for r in rows]
    assert all(t > 0 for t in times) and abs(sum(times[:-1]) - times[-1]) < 0.05, times
    assert cells["conv_1_0"][5] != "-" and cells["bn_1_0"][5] == "-", cells  # GFLOP/s for kernels only
    assert "Dense and Conv2D layers alone:" in out


@pytest.mark.slow  # runs a benchmark script end to end: it trains models in its own processes
@one_pass
def test_layer_costs_of_the_mlp():
    out = bench("speed.layer_costs", "--model", "mlp", "--backend", "jax", "--batch-size", "8", "--seconds", "0.01")
    names = [r.split("|")[1].strip() for r in table_rows(out, "| layer |")]
    assert names[names.index("dense_0"):] == ["dense_0", "bn_0", "act_0", "dense_1", "bn_1", "act_1",
                                               "probabilities", "**sum**"], names


@one_pass
def test_train_flops_skips_the_first_layers_input_gradient():
    from benchmarks.common.flops import train_flops

    mlp = keras.Sequential([keras.Input((784,)), keras.layers.Rescaling(1 / 255), keras.layers.Dense(8),
                            keras.layers.BatchNormalization(), keras.layers.Dense(10)])
    assert train_flops(mlp) == 2 * 784 * 8 * 2 + 2 * 8 * 10 * 3
    cnn = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, padding="same"),
                            keras.layers.Conv2D(2, 3, strides=2, padding="same")])
    assert train_flops(cnn) == 2 * 36 * 9 * 4 * 2 + 2 * 9 * 9 * 4 * 2 * 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
@one_pass
def test_a_killed_benchmark_leaves_no_child_running(tmp_path):
    """A child of an interrupted benchmark must not go on training on the cores."""
    import os
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]); from benchmarks.common.fresh_process import run_child\n"
        "run_child('import os, sys, time\\nopen(sys.argv[1], \"w\").write(str(os.getpid()))\\ntime.sleep(60)',"
        " [sys.argv[2]], 'jax', 'sleeper', as_mnistlab=False)"), str(ROOT), str(pid_file)])
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        os.kill(child, 0)  # running
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return  # gone with its parent
        time.sleep(0.05)
        try:  # reap it if it became ours (it is a zombie of init otherwise)
            os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            pass
    os.kill(child, signal.SIGKILL)
    pytest.fail("the benchmark's child outlived its killed parent")


@pytest.mark.slow  # runs a benchmark script end to end: a search with a chief and a worker process
@one_pass
def test_tune_search(tiny_mnist_dir, tmp_path):
    dry = bench("tuning.search", "--dry-run", "--out", tmp_path)
    assert dry.count("(dry run)") == 6  # fashion, mnist, lr x2, throughput x2
    out = bench("tuning.search", "--parts", "mnist", "--data-dir", tiny_mnist_dir, "--backend", "jax",
                "--tuner", "random", "--trials", "2", "--epochs", "1", "--train-limit", "100", "--out", tmp_path,
                MNISTLAB_SKIP_MD5=1)
    (row,) = table_rows(out, "| search |")
    assert row.startswith("| random, mlp | 2 |") and "mnistlab train" in row, out


def benchmark_imports(path: Path) -> set[str]:
    """The modules under `benchmarks` that `path` imports (also inside functions), as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {f"{node.module}.{a.name}" if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").exists()
                      else node.module for a in node.names}
    return {m for m in found if m.split(".")[0] == "benchmarks"}


def test_benchmarks_import_each_other_by_full_name_and_in_no_circle():
    """Every script is a module of a group package, imported as `benchmarks.GROUP.NAME`: a bare
    sibling import (`import lr_setups`) would work from one folder only, and a circle (scoring
    importing suggestion_quality importing scoring) ties two scripts into one."""
    modules = {".".join(f.relative_to(ROOT).with_suffix("").parts): f for f in (ROOT / "benchmarks").rglob("*.py")
               if f.name != "__init__.py"}
    for f in modules.values():
        assert (f.parent / "__init__.py").exists(), f"{f.parent} is not a package"
    siblings = {name.rsplit(".", 1)[1] for name in modules} | {"_child", "_flops"}
    graph = {}
    for name, f in modules.items():
        tree = ast.parse(f.read_text(), str(f))
        bare = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
                if a.name in siblings] + [node.module for node in ast.walk(tree)
                                          if isinstance(node, ast.ImportFrom) and node.module in siblings]
        assert not bare, f"{name} imports {bare} by bare name: write benchmarks.GROUP.NAME"
        graph[name] = {m for m in benchmark_imports(f) if m in modules}

    def reaches(start, target, seen=()):
        return any(m == target or (m not in seen and reaches(m, target, (*seen, m))) for m in graph[start])

    circles = [name for name in graph if reaches(name, name)]
    assert not circles, f"import circles through {circles}: move what both need into a module of its own"
