"""Process-wide settings: the only place mnistlab changes them, and only when asked.

`import mnistlab` and the library calls leave environment variables, TensorFlow's
and JAX's settings alone (what `train()` still changes, it lists in its
docstring: the random seeds). The command line calls `configure()` before it
imports Keras; a notebook that wants the same speed calls it itself, first:

    >>> import mnistlab
    >>> mnistlab.configure()          # before `import keras` / `import tensorflow`
    >>> import keras

What `configure()` changes, each only where you have not chosen already:

- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow's oneDNN kernels, which TensorFlow
  itself turns on only for CPUs with AVX-512 VNNI/BF16 or AMX; elsewhere (AVX2
  laptops, AMD) it falls back to Eigen's, several times slower for our CNNs
  (BENCHMARKS.md, "What made it fast": TensorFlow's oneDNN kernels on every
  CPU). TensorFlow reads it once, at its import: set after that, it changes
  nothing (a warning says so).
- `TF_CPP_MIN_LOG_LEVEL=2`: TensorFlow's start-up chatter off.
- JAX's persistent compilation cache in `compile_cache.cache_dir()`
  (`$MNISTLAB_CACHE_DIR/jax`, default `~/.cache/mnistlab/jax`), for programs of
  any size and compile time (see `mnistlab.training.compile_cache`);
  `MNISTLAB_COMPILE_CACHE=0` leaves it off.
"""

from __future__ import annotations

import os
import sys
import warnings


def configure(*, onednn: bool = True, quiet_tensorflow: bool = True, compile_cache: bool = True) -> dict:
    """Apply mnistlab's process-wide settings (the CLI's); return what was set.

    Each setting is left as it is when you set it yourself (an environment
    variable already there wins). Call it before TensorFlow is imported
    (`import keras` imports it on the TensorFlow backend) for the first two to
    count; it warns when that is too late.

    Args:
        onednn: set `TF_ENABLE_ONEDNN_OPTS=1` (TensorFlow's oneDNN kernels on any CPU).
        quiet_tensorflow: set `TF_CPP_MIN_LOG_LEVEL=2` (no TensorFlow start-up logs).
        compile_cache: turn on JAX's persistent compilation cache (through JAX's
            own environment variables when JAX is not imported yet, else
            `jax.config`). Harmless on the TensorFlow backend: nothing is written.

    Returns:
        {name: value} of every environment variable or JAX option this call set.
    """
    changed = {}
    wanted = {}
    if onednn:
        wanted["TF_ENABLE_ONEDNN_OPTS"] = "1"
    if quiet_tensorflow:
        wanted["TF_CPP_MIN_LOG_LEVEL"] = "2"
    for name, value in wanted.items():
        if name not in os.environ:
            os.environ[name] = value
            changed[name] = value
    if changed and "tensorflow" in sys.modules:
        warnings.warn(
            f"mnistlab.configure(): TensorFlow is already imported, so {', '.join(changed)} take effect only "
            "in a new process; call mnistlab.configure() before importing keras or tensorflow",
            stacklevel=2,
        )
    if compile_cache:
        changed.update(_compile_cache_settings())
    return changed


def _compile_cache_settings() -> dict:
    from mnistlab.training.compile_cache import JAX_OPTIONS, cache_dir

    if os.environ.get("MNISTLAB_COMPILE_CACHE", "1") == "0":
        return {}
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # an unwritable cache: runs go on, compiling as usual
        return {}
    options = {"jax_compilation_cache_dir": str(path), **JAX_OPTIONS}
    if "jax" in sys.modules:  # JAX read its environment variables at import: tell its config
        import jax

        if jax.config.jax_compilation_cache_dir:  # the user's own cache: keep it
            return {}
        for name, value in options.items():
            jax.config.update(name, value)
        return options
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:  # the user's own cache: keep it
        return {}
    changed = {name.upper(): str(value) for name, value in options.items()}
    os.environ.update(changed)  # JAX reads JAX_<OPTION> when it is imported
    return changed
