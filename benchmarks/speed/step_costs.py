"""Where a training step's time goes on JAX: feeding, Keras' fit loop, dispatch, the device.

    KERAS_BACKEND=jax python -m benchmarks.speed.step_costs [--model cnn] [--preset gpu] [--batch-sizes 512 1024]

For each batch size, in one process (after a warm-up call of each), milliseconds
per step of:

    fit, batches on device   model.fit over EpochBatches.on_device() (what train() uses on a GPU)
    fit, batches from host   model.fit over EpochBatches (NumPy gathers, one copy per batch)
    fit, one batch           model.fit over a dataset that returns one device batch: no feeding
    gather only              EpochBatches.on_device()[i], blocked on at the end
    raw jit loop             Keras' train_step under jax.jit, called in a Python loop on one
                             batch: "dispatch" is the host's time per call, "total" includes
                             waiting for the device at the end; "synced" waits every step
    scan of 15 steps         the same train_step in a jax.lax.scan over 15 device batches per
                             call: no Python at all between steps, the floor for a Keras step

Written to find why the GPU preset's steps took 3 ms on an H200 (BENCHMARKS.md,
"On a GPU"), and used on a CPU for the fast MLP (`--model mlp --preset fast
--batch-sizes 256`; BENCHMARKS.md, "FLOPs counted right"). JAX only; the CNN
runs on a CPU too, but JAX's CPU convolutions are slow.
"""

from __future__ import annotations

import argparse
import time


def measure(model_name: str, preset: str, batch: int, filters, steps_per_execution: int = 15):
    import jax
    import keras

    from mnistlab import data
    from mnistlab.training.batches import EpochBatches
    from mnistlab.config import make_config
    from mnistlab.models import build_model
    from mnistlab.training.train import compile_model, prepare_data, targets

    options = {"filters": list(filters)} if filters else {}
    cfg = make_config(model_name, preset, batch_size=batch, model_options=options)
    s = prepare_data(cfg, data.load("mnist"))
    model = build_model(model_name, **cfg.model_options)
    compile_model(model, cfg, 1e-3, steps_per_execution)
    host = EpochBatches(s.x_train, targets(cfg, s.y_train), batch, seed=0)
    dev = host.on_device()
    n = max(1, len(host) // steps_per_execution) * steps_per_execution

    def fit(d, steps=n):
        t = time.perf_counter()
        model.fit(d, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        return (time.perf_counter() - t) / steps * 1e3

    xb, yb = dev[0]

    class OneBatch(keras.utils.PyDataset):
        def __len__(self):
            return 10**6

        def __getitem__(self, i):
            return xb, yb

    one = OneBatch()
    for d in (dev, host, one):
        fit(d, steps_per_execution)  # warm-up: tracing, compilation
    rows = {"fit, batches on device": [fit(dev), fit(dev)],
            "fit, batches from host": [fit(host), fit(host)],
            "fit, one batch": [fit(one), fit(one)]}
    t = time.perf_counter()
    for i in range(n):
        b = dev[i]
    jax.block_until_ready(b)
    rows["gather only"] = [(time.perf_counter() - t) / n * 1e3]
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    step = jax.jit(model.train_step, donate_argnums=0)
    _, state = step(state, (xb, yb))
    jax.block_until_ready(state)
    t = time.perf_counter()
    for _ in range(n):
        _, state = step(state, (xb, yb))
    t1 = time.perf_counter()
    jax.block_until_ready(state)
    t2 = time.perf_counter()
    rows["raw jit loop, dispatch"] = [(t1 - t) / n * 1e3]
    rows["raw jit loop, total"] = [(t2 - t) / n * 1e3]
    t = time.perf_counter()
    for _ in range(20):
        _, state = step(state, (xb, yb))
        jax.block_until_ready(state)
    rows["raw jit loop, synced each step"] = [(time.perf_counter() - t) / 20 * 1e3]

    def scan_steps(state, xs, ys):
        def one(state, batch):
            _, state = model.train_step(state, batch)
            return state, None

        return jax.lax.scan(one, state, (xs, ys))[0]

    scan = jax.jit(scan_steps, donate_argnums=0)
    chunks = [tuple(jax.numpy.stack(part) for part in zip(*(dev[i + j] for j in range(steps_per_execution))))
              for i in range(0, n, steps_per_execution)]
    state = scan(state, *chunks[0])
    jax.block_until_ready(state)
    for _ in range(2):
        t = time.perf_counter()
        for xs, ys in chunks:
            state = scan(state, xs, ys)
        jax.block_until_ready(state)
        rows.setdefault(f"scan of {steps_per_execution} steps", []).append((time.perf_counter() - t) / n * 1e3)
    return n, rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    p.add_argument("--preset", default="gpu")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--filters", type=int, nargs="+", default=None, help="override the preset's CNN filters")
    args = p.parse_args(argv)
    if args.filters and args.model != "cnn":
        p.error("--filters is the CNN's option; leave it out with --model mlp")
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit("step_costs.py measures JAX's dispatch: run it with KERAS_BACKEND=jax")
    import jax

    print(f"{jax.devices()[0].device_kind}, --model {args.model} --preset {args.preset}"
          + (f", filters {args.filters or 'as the preset'}" if args.model == "cnn" else "") + "\n")
    print("| batch | steps | what | ms per step |")
    print("|---|---|---|---|")
    for batch in args.batch_sizes:
        n, rows = measure(args.model, args.preset, batch, args.filters)
        for what, values in rows.items():
            print(f"| {batch} | {n} | {what} | {' / '.join(f'{v:.3f}' for v in values)} |", flush=True)


if __name__ == "__main__":
    main()
