"""The models stage: the deep MLP and the CNN, and every Keras object a saved mnistlab model holds.

Read `mlp.py` or `cnn.py` first; both take raw (N, 28, 28) pixels in 0-255
(`inputs.py` standardises them inside the model) and end in softmax
probabilities. The custom Keras objects a `.keras` file of ours can hold live
here too, registered under the package name "mnistlab": `RandomAffine`
(`augment.py`), the fused `BatchNormalization` (`batchnorm.py`) and the
`OneCycle` schedule (`schedules.py`). Importing this package registers all of
them, so `keras.saving.load_model` needs nothing more than
`import mnistlab.models` first. `steps.py` steps a compiled model one batch at
a time (the LR range test's loop) and builds its training state up front;
`random_state.py` saves and restores the random state a step draws from outside
the model's variables (torch's global generator, for an exact restore on torch).
"""

from __future__ import annotations

import keras

from mnistlab.errors import MnistlabError
from mnistlab.models.augment import RandomAffine  # noqa: F401  (registered for load_model)
from mnistlab.models.batchnorm import BatchNormalization  # noqa: F401  (registered for load_model)
from mnistlab.models.cnn import CNN_DEFAULTS, build_cnn
from mnistlab.models.mlp import MLP_DEFAULTS, build_mlp
from mnistlab.models.schedules import OneCycle  # noqa: F401  (registered for load_model)

__all__ = ["build_mlp", "build_cnn", "build_model", "MLP_DEFAULTS", "CNN_DEFAULTS", "BUILDERS"]

BUILDERS = {"mlp": build_mlp, "cnn": build_cnn}


def build_model(name: str, **kwargs) -> keras.Model:
    """Build a model by name (`mlp` or `cnn`) with keyword overrides of its defaults."""
    if name not in BUILDERS:
        raise MnistlabError(f"unknown model {name!r}: choose one of {', '.join(BUILDERS)}")
    try:
        return BUILDERS[name](**kwargs)
    except (TypeError, ValueError) as e:  # unknown keyword, activation or initializer name
        raise MnistlabError(f"bad option for model {name!r}: {e}") from None
