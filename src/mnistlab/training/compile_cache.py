"""A persistent compilation cache for the JAX backend.

XLA compiles each training and evaluation step once per process, a large
share of a fast preset's few seconds (BENCHMARKS.md, "What made it fast": JAX's
persistent compilation cache, and its log). JAX can keep compiled programs on
disk, but only when told where; with the cache, a second
run of the same model starts from the stored program. TensorFlow on CPU runs
its graphs without XLA, so there is nothing to cache there.

The cache lives in $MNISTLAB_CACHE_DIR/jax (default ~/.cache/mnistlab/jax);
MNISTLAB_COMPILE_CACHE=0 turns it off. It is a process-wide JAX setting, so
only the CLI and an explicit `mnistlab.configure()` (or `enable_compile_cache()`)
turn it on; `train()` and the other library calls leave JAX's settings alone.
"""

from __future__ import annotations

import os
from pathlib import Path

# JAX's defaults skip programs that compile in under a second; ours take less.
JAX_OPTIONS = {"jax_persistent_cache_min_compile_time_secs": 0, "jax_persistent_cache_min_entry_size_bytes": 0}


def cache_dir() -> Path:
    root = os.environ.get("MNISTLAB_CACHE_DIR") or Path.home() / ".cache" / "mnistlab"
    return Path(root) / "jax"


def enable_compile_cache() -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir()` now; return it, or None when unused.

    Changes JAX's process-wide config (`jax_compilation_cache_dir` and the two
    size/time thresholds above). Does nothing on other backends, when
    MNISTLAB_COMPILE_CACHE=0, or when the folder cannot be created (the run
    goes on, compiling as usual). `mnistlab.configure()` does the same without
    importing JAX.
    """
    import keras

    if keras.backend.backend() != "jax" or os.environ.get("MNISTLAB_COMPILE_CACHE", "1") == "0":
        return None
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    for name, value in JAX_OPTIONS.items():
        jax.config.update(name, value)
    return path
