"""Random state a training step draws from outside the model's variables.

On TensorFlow and JAX every random draw of a Keras model (dropout masks,
augmentation) comes from a seed generator whose state is one of the model's
variables, so restoring the variables restores the randomness too. On torch,
Keras' `Dropout` without a seed draws its masks from torch's global generator
instead (a fast path of Keras' torch backend), so an exact restore (the LR range
test's, a resumed run's) must save and restore that generator as well.
"""

from __future__ import annotations

import keras
import numpy as np


def torch_generator_state() -> dict[str, np.ndarray] | None:
    """On torch, the state of its global generators as arrays: `{"cpu": ...}`, plus
    `{"cuda/<i>": ...}` per GPU once CUDA is in use; None on other backends."""
    if keras.backend.backend() != "torch":
        return None
    import torch

    state = {"cpu": torch.get_rng_state().numpy().copy()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda/{i}"] = s.numpy().copy()
    return state


def set_torch_generator_state(state: dict[str, np.ndarray] | None) -> None:
    """Put back what `torch_generator_state` returned (nothing to do for None)."""
    if not state:
        return
    import torch

    torch.set_rng_state(torch.from_numpy(np.asarray(state["cpu"], dtype=np.uint8).copy()))
    cuda = [state[f"cuda/{i}"] for i in range(sum(k.startswith("cuda/") for k in state))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.from_numpy(np.asarray(s, dtype=np.uint8).copy()) for s in cuda])
