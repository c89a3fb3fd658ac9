"""Cost of on-the-fly augmentation per batch: Keras' three layers chained vs one RandomAffine.

    KERAS_BACKEND=jax python -m benchmarks.speed.augment_speed [--batch-size 128] [--repeats 50]

Each variant is compiled once (jax.jit or tf.function) and timed over
`--repeats` batches of random 28x28 images.
"""

from __future__ import annotations

import argparse
import os
import time

import mnistlab

mnistlab.configure()  # as the CLI: TensorFlow's options before it loads, JAX's cache
import keras
import numpy as np
from keras import layers

from mnistlab.models.augment import RandomAffine


def compiled(fn):
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    import tensorflow as tf

    return tf.function(fn, jit_compile=False)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    x = (np.random.default_rng(0).random((args.batch_size, 28, 28, 1)) * 255).astype("float32")
    variants = {
        "RandomTranslation only": layers.RandomTranslation(0.08, 0.08, fill_mode="constant"),
        "Rotation+Zoom+Translation chained": keras.Sequential([
            layers.RandomRotation(8 / 360, fill_mode="constant"),
            layers.RandomZoom(0.08, fill_mode="constant"),
            layers.RandomTranslation(0.08, 0.08, fill_mode="constant"),
        ]),
        "mnistlab RandomAffine (all three)": RandomAffine(8, 0.08, 0.08),
    }
    print(f"backend {keras.backend.backend()}, {os.cpu_count()} cores, batch {args.batch_size}\n")
    print("| augmentation | ms/batch |")
    print("|---|---|")
    for name, layer in variants.items():
        f = compiled(lambda a, layer=layer: layer(a, training=True))
        np.asarray(f(x))
        start = time.perf_counter()
        for _ in range(args.repeats):
            np.asarray(f(x))
        print(f"| {name} | {(time.perf_counter() - start) / args.repeats * 1000:.1f} |", flush=True)


if __name__ == "__main__":
    main()
