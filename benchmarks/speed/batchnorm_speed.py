"""Keras' BatchNormalization against mnistlab's fused one: training step time on TensorFlow.

    python -m benchmarks.speed.batchnorm_speed [--presets default fast fast-995] [--steps 100] [--repeats 3]

For each CNN preset the same model is built twice, once with each layer, and
trained on random images; the variants take turns (`--repeats` rounds) so that
a noisy machine slows both alike. Prints the median ms per step, images per
second and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ["KERAS_BACKEND"] = "tensorflow"  # the fused kernel is TensorFlow's


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["default", "fast", "fast-995"])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import mnistlab

    mnistlab.configure()  # as the CLI: TensorFlow's options before it loads, JAX's cache
    import keras
    import numpy as np

    from mnistlab import models
    from mnistlab.config import make_config

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(args.steps * 128, 28, 28)).astype("float32")
    y = rng.integers(0, 10, size=args.steps * 128).astype("int32")
    variants = {"keras": keras.layers.BatchNormalization, "mnistlab (fused)": models.BatchNormalization}

    print(f"{os.cpu_count()} cores, TensorFlow, batch 128, {args.steps} steps, median of {args.repeats}\n")
    print("| preset | batch norm | ms/step | images/s | speed-up |")
    print("|---|---|---|---|---|")
    for preset in args.presets:
        options = make_config("cnn", preset).model_options
        built = {}
        for name, layer in variants.items():
            models.BatchNormalization = layer  # build_cnn looks the class up at call time
            keras.utils.set_random_seed(0)
            model = models.build_cnn(**options)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            model.fit(x[:256], y[:256], batch_size=128, verbose=0)  # trace and warm up
            built[name] = model
        models.BatchNormalization = variants["mnistlab (fused)"]
        times = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, model in built.items():
                t = time.perf_counter()
                model.fit(x, y, batch_size=128, verbose=0, shuffle=False)
                times[name].append((time.perf_counter() - t) / args.steps)
        base = statistics.median(times["keras"])
        for name, ts in times.items():
            med = statistics.median(ts)
            speedup = "" if name == "keras" else f"{base / med:.2f}x"
            print(f"| {preset} | {name} | {1000 * med:.1f} | {128 / med:,.0f} | {speedup} |", flush=True)


if __name__ == "__main__":
    main()
