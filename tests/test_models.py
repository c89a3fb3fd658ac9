"""The models and their augmentation: shapes, parameter counts, labels and value ranges."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnistlab import data
from mnistlab.models.augment import RandomAffine
from mnistlab.errors import MnistlabError
from mnistlab.models import build_cnn, build_mlp, build_model


def digits(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), "float32")
    for i in range(n):  # a bright block somewhere near the centre
        r, c = rng.integers(6, 16, size=2)
        x[i, r : r + 8, c : c + 5] = 255.0
    return x


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_default_models_map_pixels_to_probabilities(name):
    model = build_model(name)
    assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 10)
    p = keras.ops.convert_to_numpy(model(digits(4), training=False))
    assert p.shape == (4, 10) and np.allclose(p.sum(1), 1, atol=1e-5) and (p >= 0).all()


def test_parameter_counts_match_the_architecture():
    # MLP without batch norm: Dense 784->32 and 32->16 with biases, then 16->10.
    mlp = build_mlp(depth=2, width=[32, 16], batch_norm=False, dropout=0, rotation=0, zoom=0, shift=0)
    assert mlp.count_params() == (784 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    # CNN, one block of two 3x3 convolutions (4 channels, biases), pooled 28 -> 14, no dense layer.
    cnn = build_cnn(filters=(4,), dense=0, batch_norm=False, dropout=0, rotation=0, zoom=0, shift=0)
    assert cnn.count_params() == (9 * 1 * 4 + 4) + (9 * 4 * 4 + 4) + (14 * 14 * 4 * 10 + 10)
    # With batch norm the convolutions lose their biases and each gains 4 per channel
    # (gamma, beta, moving mean and variance); the dense layer the same.
    bn = build_cnn(filters=(4, 8), dense=16, batch_norm=True, dropout=0.2, rotation=0, zoom=0, shift=0)
    convs = 9 * 1 * 4 + 9 * 4 * 4 + 9 * 4 * 8 + 9 * 8 * 8
    assert bn.count_params() == convs + 4 * (4 + 4 + 8 + 8) + (7 * 7 * 8 * 16) + 4 * 16 + (16 * 10 + 10)
    shapes = [layer.output.shape for layer in bn.layers if layer.name.startswith("pool_")]
    assert [tuple(s) for s in shapes] == [(None, 14, 14, 4), (None, 7, 7, 8)]
    # One convolution per block (the fast presets): 1->4 and 4->8 only.
    one = build_cnn(filters=(4, 8), convs=1, dense=0, batch_norm=False, dropout=0, rotation=0, zoom=0, shift=0)
    assert one.count_params() == (9 * 1 * 4 + 4) + (9 * 4 * 8 + 8) + (7 * 7 * 8 * 10 + 10)


def test_augmentation_only_in_training_and_keeps_the_value_range():
    x = digits(32)
    for layer in (RandomAffine(15, 0.15, 0.15, seed=1), RandomAffine(10, 0.1, 0.1, elastic_alpha=34, seed=1)):
        assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
        out = keras.ops.convert_to_numpy(layer(x, training=True))
        assert out.shape == x.shape
        assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
        assert not np.allclose(out, x), "training mode must change the images"
        # the digit moves but stays in the picture: ink is neither created nor lost wholesale
        assert 0.7 < out.sum() / x.sum() < 1.3


def test_elastic_grid_matches_the_affine_path():
    """With a vanishing displacement field the elastic path samples exactly like affine_transform."""
    x = digits(8)
    plain = RandomAffine(10, 0.1, 0.1, seed=3)
    elastic = RandomAffine(10, 0.1, 0.1, elastic_alpha=1e-9, seed=3)
    a = keras.ops.convert_to_numpy(plain(x, training=True))
    b = keras.ops.convert_to_numpy(elastic(x, training=True))
    assert np.abs(a - b).max() < 1e-2
    # and a real field bends the digit beyond what the affine part did
    strong = keras.ops.convert_to_numpy(RandomAffine(10, 0.1, 0.1, elastic_alpha=34, seed=3)(x, training=True))
    assert np.abs(strong - a).mean() > 1.0


def test_batched_sampler_matches_affine_transform():
    """The sampler RandomAffine uses on torch (and, with a field, for elastic distortion)
    resamples exactly as Keras' affine_transform does: bilinear, zero outside the image."""
    x = digits(8)[..., None]
    rng = np.random.default_rng(4)
    angle, scale = rng.uniform(-0.3, 0.3, 8), rng.uniform(0.85, 1.15, 8)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    c = 13.5
    coeffs = [cos, -sin, c - cos * c + sin * c - rng.uniform(-4, 4, 8),
              sin, cos, c - sin * c - cos * c - rng.uniform(-4, 4, 8)]
    coeffs = [keras.ops.convert_to_tensor(v.astype("float32")) for v in coeffs]
    zeros = keras.ops.zeros_like(coeffs[0])
    expected = keras.ops.image.affine_transform(
        x, keras.ops.stack([*coeffs, zeros, zeros], axis=1), interpolation="bilinear",
        fill_mode="constant", fill_value=0.0, data_format="channels_last")
    got = RandomAffine(seed=0)._sample(keras.ops.convert_to_tensor(x), coeffs, elastic=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected), atol=1e-3)


def test_augmentation_is_saved_with_the_model(tmp_path):
    model = build_cnn(filters=(4,), dense=0, elastic=20, elastic_sigma=3)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.get_layer("augment")
    assert (layer.elastic_alpha, layer.elastic_sigma, layer.rotation) == (20.0, 3.0, 10.0)


@pytest.mark.parametrize("kwargs,message", [
    ({"elastic": -1}, "augmentation amounts must be >= 0"),
    ({"elastic_sigma": 0, "elastic": 5}, "elastic_sigma > 0"),
    ({"filters": ()}, "at least one block"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"convs": 0}, "convs .* must be a whole number >= 1"),
    ({"downsample": "avg"}, "downsample must be one of pool, early-pool, stride"),
    ({"filters": (8, 16), "downsample": ["pool"]}, r"one per block \(2 here\)"),
    ({"crop": -1}, "crop must be a whole number of pixels from 0 to 10"),
    ({"crop": 11}, "crop must be a whole number of pixels from 0 to 10"),
    ({"crop": 2.5}, "crop must be a whole number of pixels"),
])
def test_bad_cnn_options_are_named(kwargs, message):
    with pytest.raises(MnistlabError, match=message):
        build_model("cnn", **kwargs)


def test_shift_augment_keeps_labels_with_their_images():
    x = digits(6).astype("uint8")
    y = np.arange(6)
    x5, y5 = data.shift_augment(x, y)
    assert x5.shape == (30, 28, 28) and x5.dtype == x.dtype
    assert np.array_equal(y5, np.tile(y, 5))
    assert np.array_equal(x5[:6], x)
    up, down, left, right = (x5[6 * k : 6 * (k + 1)] for k in range(1, 5))
    assert np.array_equal(up[:, :-1], x[:, 1:]) and not up[:, -1].any()
    assert np.array_equal(down[:, 1:], x[:, :-1]) and not down[:, 0].any()
    assert np.array_equal(left[:, :, :-1], x[:, :, 1:]) and not left[:, :, -1].any()
    assert np.array_equal(right[:, :, 1:], x[:, :, :-1]) and not right[:, :, 0].any()
    # same ink per image: the digits sit away from the border
    assert np.array_equal(x5.reshape(5, 6, -1).sum(-1, dtype=np.int64), np.tile(x.reshape(6, -1).sum(-1, dtype=np.int64), (5, 1)))
    with pytest.raises(MnistlabError, match="shift_augment wants"):
        data.shift_augment(x[:, :, 0], y)


def layer_kinds(model):
    return [type(layer).__name__ for layer in model.layers
            if type(layer).__name__ in ("Conv2D", "MaxPooling2D", "BatchNormalization", "Activation")]


def test_downsample_places_the_halving():
    common = dict(filters=(4, 8), convs=2, dense=0, rotation=0, zoom=0, shift=0)
    pool = build_cnn(**common)
    early = build_cnn(**common, downsample="early-pool")
    mixed = build_cnn(**common, downsample=["stride", "early-pool"])
    block = ["Conv2D", "BatchNormalization", "Activation"]
    assert layer_kinds(pool) == (block * 2 + ["MaxPooling2D"]) * 2
    # pooled right after the block's last convolution: its batch norm sees 4x fewer pixels
    assert layer_kinds(early) == (block + ["Conv2D", "MaxPooling2D", "BatchNormalization", "Activation"]) * 2
    assert layer_kinds(mixed)[:6] == block * 2 and mixed.get_layer("conv_0_0").strides == (2, 2)
    assert mixed.get_layer("conv_0_1").strides == (1, 1)
    for model in (pool, early, mixed):  # the same weights, the same 7x7 maps at the end
        assert model.count_params() == pool.count_params()
        assert model.get_layer("bn_1_1").output.shape[1:3] == ((14, 14) if model is pool else (7, 7))
        assert model.output_shape == (None, 10)


def test_crop_cuts_each_edge_after_the_augmentation():
    mlp = build_mlp(depth=1, width=8, crop=3)
    names = [layer.name for layer in mlp.layers]
    assert names.index("augment") < names.index("crop") < names.index("standardize")
    assert mlp.get_layer("crop").output.shape[1:] == (22, 22, 1)
    assert mlp.get_layer("dense_0").kernel.shape == (22 * 22, 8)
    cnn = build_cnn(filters=(4, 8), convs=1, dense=0, crop=3, downsample="early-pool", rotation=0, zoom=0, shift=0)
    assert cnn.input_shape == (None, 28, 28) and cnn.output_shape == (None, 10)
    assert cnn.get_layer("conv_0_0").output.shape[1:3] == (22, 22)
    assert cnn.get_layer("pool_1").output.shape[1:3] == (5, 5)
    # whole 28x28 images in; what lies in the 3-pixel border makes no difference, the rest does
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28)).astype("float32")
    border = x.copy()
    border[:, :3], border[:, -3:], border[:, :, :3], border[:, :, -3:] = 0, 0, 0, 0
    inner = x.copy()
    inner[:, 14, 14] = 0 if inner[0, 14, 14] > 127 else 255
    p = [keras.ops.convert_to_numpy(cnn(v, training=False)) for v in (x, border, inner)]
    np.testing.assert_allclose(p[0], p[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(p[0], p[2])
    assert build_cnn(filters=(4,), convs=1, dense=0).get_layer("conv_0_0").output.shape[1:3] == (28, 28)
