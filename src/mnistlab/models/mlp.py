"""The deep MLP: `depth` hidden Dense blocks on raw (N, 28, 28) pixels, softmax out."""

from __future__ import annotations

import keras
from keras import layers

from mnistlab.errors import MnistlabError
from mnistlab.models.batchnorm import BatchNormalization
from mnistlab.models.inputs import check_rates, input_block, regularizer

# The defaults are the measured best accuracy per second (BENCHMARKS.md, "Accuracy of the defaults":
# default MLP, and benchmarks/log/mlp-architecture.md).
MLP_DEFAULTS = dict(
    depth=3, width=512, activation="relu", batch_norm=True, bn_momentum=0.99, dropout=0.15,
    l2=0.0, initializer="he_normal", rotation=8.0, zoom=0.08, shift=0.08, elastic=0.0, elastic_sigma=4.0, crop=0,
)


def build_mlp(
    depth: int = MLP_DEFAULTS["depth"],
    width: int = MLP_DEFAULTS["width"],
    activation: str = MLP_DEFAULTS["activation"],
    batch_norm: bool = MLP_DEFAULTS["batch_norm"],
    bn_momentum: float = MLP_DEFAULTS["bn_momentum"],
    dropout: float = MLP_DEFAULTS["dropout"],
    l2: float = MLP_DEFAULTS["l2"],
    initializer: str = MLP_DEFAULTS["initializer"],
    rotation: float = MLP_DEFAULTS["rotation"],
    zoom: float = MLP_DEFAULTS["zoom"],
    shift: float = MLP_DEFAULTS["shift"],
    elastic: float = MLP_DEFAULTS["elastic"],
    elastic_sigma: float = MLP_DEFAULTS["elastic_sigma"],
    crop: int = MLP_DEFAULTS["crop"],
    num_classes: int = 10,
) -> keras.Model:
    """A deep fully connected network: `depth` hidden layers of `width` units.

    Each hidden block is Dense -> [BatchNorm] -> activation -> [Dropout].

    Args:
        depth: number of hidden layers (>= 1).
        width: units per hidden layer, an int or a list with one per layer.
        activation: any Keras activation name (`relu`, `elu`, `selu`, `gelu`, ...).
        batch_norm: add batch normalisation before each activation.
        bn_momentum: the momentum of batch norm's moving mean and variance (Keras'
            0.99 averages over ~100 steps; runs of a few hundred steps want less).
        dropout: dropout rate after each hidden block, in [0, 1).
        l2: L2 weight penalty on the Dense kernels (0 for none).
        initializer: Keras kernel initializer name.
        rotation, zoom, shift: on-the-fly augmentation in training (degrees,
            relative zoom, fraction of the size); all 0 turns it off.
        elastic, elastic_sigma: elastic distortion's alpha and sigma (Simard et al.;
            they used 34 and 4); 0 turns it off.
        num_classes: output units.
    """
    widths = list(width) if isinstance(width, (list, tuple)) else [width] * depth
    if depth < 1 or len(widths) != depth or min(widths) < 1:
        raise MnistlabError(f"MLP needs depth >= 1 and positive widths, got depth={depth}, width={width}")
    check_rates(dropout, bn_momentum)
    reg = regularizer(l2)
    inputs, x = input_block(rotation, zoom, shift, elastic, elastic_sigma, crop)
    x = layers.Flatten()(x)
    for i, units in enumerate(widths):
        x = layers.Dense(
            units, kernel_initializer=initializer, kernel_regularizer=reg,
            use_bias=not batch_norm, name=f"dense_{i}",
        )(x)
        if batch_norm:
            x = BatchNormalization(momentum=bn_momentum, name=f"bn_{i}")(x)
        x = layers.Activation(activation, name=f"act_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")
