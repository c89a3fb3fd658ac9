"""The CNN: blocks of 3x3 convolutions, batch norm and downsampling on raw (N, 28, 28) pixels, softmax out."""

from __future__ import annotations

import keras
from keras import layers

from mnistlab.config import DOWNSAMPLING
from mnistlab.errors import MnistlabError
from mnistlab.models.batchnorm import BatchNormalization
from mnistlab.models.inputs import check_rates, input_block, regularizer

# The CNN's width: (24, 48, 96) is the narrowest that reached the 99.6% goal on every seed;
# (16, 32, 64) is faster but missed it on some seeds, and (32, 64, 128) is slower again
# (BENCHMARKS.md, "Accuracy of the defaults": default CNN, and its log).
CNN_DEFAULTS = dict(
    filters=(24, 48, 96), convs=2, downsample="pool", dense=256, batch_norm=True, bn_momentum=0.99, dropout=0.25,
    l2=1e-4, initializer="he_normal", rotation=10.0, zoom=0.1, shift=0.1, elastic=0.0, elastic_sigma=4.0, crop=0,
)


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
        convs: 3x3 convolutions per block (2 as in VGG; 1 is cheaper).
        downsample: how a block halves the image. `"pool"`: 2x2 max-pooling at its
            end. `"early-pool"`: the same pooling right after its last convolution,
            so that batch norm and ReLU run on a 4x smaller image (ReLU commutes
            with max-pooling, batch norm does not quite): cheaper training steps
            for the fast CNN on a CPU. `"stride"`: its first convolution at
            stride 2, no pooling; cheaper still. Without label smoothing it cost the
            fast CNN accuracy; with it, in the first block only, where a one-channel
            convolution at full size is the costliest layer for its FLOPs, the fast
            presets use it (BENCHMARKS.md, "What made it fast": strided first block,
            early pooling, crop, and the lab notes it links).
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
    check_rates(dropout, bn_momentum)
    reg = regularizer(l2)
    inputs, x = input_block(rotation, zoom, shift, elastic, elastic_sigma, crop)
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
