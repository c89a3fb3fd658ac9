"""The models: a deep MLP and a CNN, both taking raw (N, 28, 28) pixels in 0-255.

Scaling to zero mean and unit variance (MNIST's 0.1307 / 0.3081 on [0, 1])
is the model's first layer, so a saved model predicts on raw pixels and nobody
has to remember the preprocessing. Outputs are softmax probabilities.

Importing this module registers every custom object a saved mnistlab model
can hold (`RandomAffine`, `OneCycle`), so `keras.saving.load_model` needs
nothing more than `import mnistlab.models` first.
"""

from __future__ import annotations

import keras
from keras import layers

from mnistlab.batchnorm import BatchNormalization
from mnistlab.augment import RandomAffine
from mnistlab.config import DOWNSAMPLING
from mnistlab.errors import MnistlabError
from mnistlab.schedules import OneCycle  # noqa: F401  (registered for load_model)

MEAN, STD = 0.1307, 0.3081

# The defaults are the measured best accuracy per second (BENCHMARKS.md, "MLP architecture").
MLP_DEFAULTS = dict(
    depth=3, width=512, activation="relu", batch_norm=True, bn_momentum=0.99, dropout=0.15,
    l2=0.0, initializer="he_normal", rotation=8.0, zoom=0.08, shift=0.08, elastic=0.0, elastic_sigma=4.0, crop=0,
)
# The CNN's width: (24, 48, 96) is the narrowest that reached >= 99.6% test on each of 3 seeds
# (99.69 / 99.63 / 99.60%, ~41 s per epoch on 2 cores); (16, 32, 64) is 2x faster but averaged
# 99.61% with 3 of 5 seeds under 99.6%; (32, 64, 128) is 2x slower again (BENCHMARKS.md).
CNN_DEFAULTS = dict(
    filters=(24, 48, 96), convs=2, downsample="pool", dense=256, batch_norm=True, bn_momentum=0.99, dropout=0.25,
    l2=1e-4, initializer="he_normal", rotation=10.0, zoom=0.1, shift=0.1, elastic=0.0, elastic_sigma=4.0, crop=0,
)


def _input_block(rotation, zoom, shift, elastic=0.0, elastic_sigma=4.0, crop=0):
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


def _regularizer(l2):
    if l2 < 0:
        raise MnistlabError(f"l2 must be >= 0, got {l2}")
    return keras.regularizers.L2(l2) if l2 > 0 else None


def _check_rates(dropout: float, bn_momentum: float) -> None:
    if not 0 <= dropout < 1:
        raise MnistlabError(f"dropout must be in [0, 1), got {dropout}")
    if not 0 <= bn_momentum < 1:
        raise MnistlabError(f"bn_momentum must be in [0, 1) (e.g. 0.9), got {bn_momentum}")


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
    _check_rates(dropout, bn_momentum)
    reg = _regularizer(l2)
    inputs, x = _input_block(rotation, zoom, shift, elastic, elastic_sigma, crop)
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


def build_cnn(
    filters=CNN_DEFAULTS["filters"],
    convs: int = CNN_DEFAULTS["convs"],
    downsample: str = CNN_DEFAULTS["downsample"],
    dense: int = CNN_DEFAULTS["dense"],
    batch_norm: bool = CNN_DEFAULTS["batch_norm"],
    bn_momentum: float = CNN_DEFAULTS["bn_momentum"],
    dropout: float = CNN_DEFAULTS["dropout"],
    l2: float = CNN_DEFAULTS["l2"],
    initializer: str = CNN_DEFAULTS["initializer"],
    rotation: float = CNN_DEFAULTS["rotation"],
    zoom: float = CNN_DEFAULTS["zoom"],
    shift: float = CNN_DEFAULTS["shift"],
    elastic: float = CNN_DEFAULTS["elastic"],
    elastic_sigma: float = CNN_DEFAULTS["elastic_sigma"],
    crop: int = CNN_DEFAULTS["crop"],
    num_classes: int = 10,
) -> keras.Model:
    """A CNN: per entry of `filters`, `convs` 3x3 convolutions, halving the size, and dropout.

    Args:
        filters: channels per block, e.g. (32, 64, 128).
        convs: 3x3 convolutions per block (2 as in VGG; 1 is ~2x cheaper).
        downsample: how a block halves the image. `"pool"`: 2x2 max-pooling at its
            end. `"early-pool"`: the same pooling right after its last convolution,
            so that batch norm and ReLU run on a 4x smaller image (ReLU commutes
            with max-pooling, batch norm does not quite); 25-35% cheaper training
            steps for the fast CNN on a CPU. `"stride"`: its first convolution at
            stride 2, no pooling; cheaper still. Without label smoothing it cost the
            fast CNN accuracy (BENCHMARKS.md, "Cheaper CNN blocks"); with it, in the
            first block only, where a one-channel convolution at full size is the
            costliest layer for its FLOPs, the fast presets use it ("A strided
            first block").
            One value for every block, or a list with one per block.
        dense: units of the dense layer before the output (0 for none).
        batch_norm: batch normalisation after each convolution.
        bn_momentum: as for `build_mlp`.
        dropout: dropout rate after each block and the dense layer.
        l2: L2 weight penalty on convolution and dense kernels.
        initializer: Keras kernel initializer name.
        rotation, zoom, shift: on-the-fly augmentation in training (degrees,
            relative zoom, fraction of the size); all 0 turns it off.
        elastic, elastic_sigma: elastic distortion's alpha and sigma (Simard et al.;
            they used 34 and 4); 0 turns it off.
        num_classes: output units.
    """
    if not filters or min(filters) < 1:
        raise MnistlabError(f"CNN needs at least one block of positive filters, got {filters}")
    if not isinstance(convs, int) or convs < 1:
        raise MnistlabError(f"convs (convolutions per block) must be a whole number >= 1, got {convs}")
    per_block = [downsample] * len(filters) if isinstance(downsample, str) else list(downsample)
    if len(per_block) != len(filters) or not set(per_block) <= set(DOWNSAMPLING):
        raise MnistlabError(f"downsample must be one of {', '.join(DOWNSAMPLING)}, or a list of them with one "
                            f"per block ({len(filters)} here), got {downsample!r}")
    _check_rates(dropout, bn_momentum)
    reg = _regularizer(l2)
    inputs, x = _input_block(rotation, zoom, shift, elastic, elastic_sigma, crop)
    if len(x.shape) == 3:  # (N, 28, 28): give it a channel axis (a cropped input has one)
        x = layers.Reshape((28, 28, 1))(x)
    for b, f in enumerate(filters):
        for c in range(convs):
            x = layers.Conv2D(
                f, 3, strides=2 if per_block[b] == "stride" and c == 0 else 1, padding="same",
                kernel_initializer=initializer, kernel_regularizer=reg,
                use_bias=not batch_norm, name=f"conv_{b}_{c}",
            )(x)
            if per_block[b] == "early-pool" and c == convs - 1:
                x = layers.MaxPooling2D(name=f"pool_{b}")(x)
            if batch_norm:
                x = BatchNormalization(momentum=bn_momentum, name=f"bn_{b}_{c}")(x)
            x = layers.Activation("relu")(x)
        if per_block[b] == "pool":
            x = layers.MaxPooling2D(name=f"pool_{b}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{b}")(x)
    x = layers.Flatten()(x)
    if dense:
        x = layers.Dense(dense, kernel_initializer=initializer, kernel_regularizer=reg,
                         use_bias=not batch_norm, name="dense")(x)
        if batch_norm:
            x = BatchNormalization(momentum=bn_momentum, name="bn_dense")(x)
        x = layers.Activation("relu")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout_dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn}


def build_model(name: str, **kwargs) -> keras.Model:
    """Build a model by name (`mlp` or `cnn`) with keyword overrides of its defaults."""
    if name not in BUILDERS:
        raise MnistlabError(f"unknown model {name!r}: choose one of {', '.join(BUILDERS)}")
    try:
        return BUILDERS[name](**kwargs)
    except (TypeError, ValueError) as e:  # unknown keyword, activation or initializer name
        raise MnistlabError(f"bad option for model {name!r}: {e}") from None
