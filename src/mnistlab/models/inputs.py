"""What both models share: raw pixels in, augmentation, standardisation, and the checks of their options.

Scaling to zero mean and unit variance (MNIST's 0.1307 / 0.3081 on [0, 1])
is the model's first layer, so a saved model predicts on raw pixels and nobody
has to remember the preprocessing.
"""

from __future__ import annotations

import keras
from keras import layers

from mnistlab.errors import MnistlabError
from mnistlab.models.augment import RandomAffine

MEAN, STD = 0.1307, 0.3081


def input_block(rotation, zoom, shift, elastic=0.0, elastic_sigma=4.0, crop=0):
    """Raw pixels in; random augmentation (training only) when asked; standardised out.

    With `crop`, that many pixels come off each edge after the augmentation, and the
    output is (N, 28 - 2 crop, 28 - 2 crop, 1); otherwise it is (N, 28, 28).
    """
    inputs = keras.Input(shape=(28, 28), name="pixels")
    x = inputs
    if min(rotation, zoom, shift, elastic) < 0 or elastic_sigma <= 0:
        raise MnistlabError(
            f"augmentation amounts must be >= 0 (and elastic_sigma > 0), got rotation={rotation}, "
            f"zoom={zoom}, shift={shift}, elastic={elastic}, elastic_sigma={elastic_sigma}"
        )
    if rotation or zoom or shift or elastic:
        x = RandomAffine(rotation, zoom, shift, elastic_alpha=elastic, elastic_sigma=elastic_sigma,
                         name="augment")(x)
    if not isinstance(crop, int) or not 0 <= crop <= 10:
        raise MnistlabError(f"crop must be a whole number of pixels from 0 to 10 (off each edge), got {crop!r}")
    if crop:
        x = layers.Reshape((28, 28, 1), name="channel")(x)
        x = layers.Cropping2D(crop, name="crop")(x)
    x = layers.Rescaling(1.0 / (255.0 * STD), offset=-MEAN / STD, name="standardize")(x)
    return inputs, x


def regularizer(l2):
    if l2 < 0:
        raise MnistlabError(f"l2 must be >= 0, got {l2}")
    return keras.regularizers.L2(l2) if l2 > 0 else None


def check_rates(dropout: float, bn_momentum: float) -> None:
    if not 0 <= dropout < 1:
        raise MnistlabError(f"dropout must be in [0, 1), got {dropout}")
    if not 0 <= bn_momentum < 1:
        raise MnistlabError(f"bn_momentum must be in [0, 1) (e.g. 0.9), got {bn_momentum}")
