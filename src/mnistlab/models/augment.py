"""On-the-fly data augmentation as a Keras layer: random rotation, zoom, shift and elastic distortion.

Keras ships RandomRotation, RandomZoom and RandomTranslation, but chained they
resample each image three times, several times the cost of one transform
(BENCHMARKS.md, "What made it fast": one composed augmentation). `RandomAffine`
composes the three into one matrix and resamples once. It runs inside the
model, so it works on every backend and is off at inference.

Elastic distortion (Simard et al. 2003: a random displacement field smoothed
by a Gaussian of width `sigma` and scaled by `alpha` pixels) is added to the
same sampling grid, so an image is still resampled once. Keras has no elastic
layer, hence this one.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mnistlab")
class RandomAffine(keras.layers.Layer):
    """Random rotation, zoom and translation of (N, H, W) or (N, H, W, C) images.

    Active only in training; at inference it returns its input unchanged.

    Args:
        rotation: maximum rotation in degrees (uniform in [-rotation, rotation]).
        zoom: maximum relative zoom (scale uniform in [1 - zoom, 1 + zoom]).
        shift: maximum shift as a fraction of the image size, per axis.
        elastic_alpha: scale of the elastic displacement field (0 for none), as
            Simard et al. define it: a uniform(-1, 1) field, Gaussian-blurred, times
            alpha. They used alpha 34 with sigma 4 on MNIST (about 1.4 px RMS).
        elastic_sigma: smoothness of the displacement field (Gaussian width, pixels).
        seed: seed of the layer's random generator.
    """

    def __init__(self, rotation=10.0, zoom=0.1, shift=0.1, elastic_alpha=0.0, elastic_sigma=4.0,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift, self.seed = float(rotation), float(zoom), float(shift), seed
        self.elastic_alpha, self.elastic_sigma = float(elastic_alpha), float(elastic_sigma)
        if self.elastic_alpha < 0 or self.elastic_sigma <= 0:
            raise ValueError(f"elastic_alpha must be >= 0 and elastic_sigma > 0, got "
                             f"{elastic_alpha} and {elastic_sigma}")
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        squeeze = len(images.shape) == 3
        x = ops.expand_dims(images, -1) if squeeze else images
        n = ops.shape(x)[0]
        h, w = x.shape[1], x.shape[2]
        r = keras.random.uniform((n,), -1.0, 1.0, seed=self.generator)
        angle = r * (self.rotation * math.pi / 180.0)
        scale = 1.0 + keras.random.uniform((n,), -self.zoom, self.zoom, seed=self.generator)
        tx = keras.random.uniform((n,), -self.shift, self.shift, seed=self.generator) * w
        ty = keras.random.uniform((n,), -self.shift, self.shift, seed=self.generator) * h
        # Output pixel (x, y) reads input pixel M @ (x, y) + offset: an inverse
        # rotation-and-scale about the centre, then the shift.
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        a0, a1 = cos, -sin
        b0, b1 = sin, cos
        a2 = cx - a0 * cx - a1 * cy - tx
        b2 = cy - b0 * cx - b1 * cy - ty
        if self.elastic_alpha > 0:
            out = self._sample(x, (a0, a1, a2, b0, b1, b2), elastic=True)
        elif keras.backend.backend() == "torch":
            # Keras' affine_transform on torch resamples the batch one image at a time, in a
            # Python loop of map_coordinates calls: most of the default MLP's training step
            # (docs/performance.md, "PyTorch"). The hand-written sampler is one batched gather and
            # computes the same bilinear, zero-filled resampling (tests/test_models.py).
            out = self._sample(x, (a0, a1, a2, b0, b1, b2), elastic=False)
        else:
            zeros = ops.zeros_like(a0)
            transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
            out = ops.image.affine_transform(
                x, transform, interpolation="bilinear", fill_mode="constant", fill_value=0.0,
                data_format="channels_last",
            )
        return ops.squeeze(out, -1) if squeeze else out

    def _blur_matrix(self, size):
        """(size, size) matrix that Gaussian-blurs along one axis, zero beyond the border.

        A matrix product, not a convolution: XLA's CPU convolutions are slow
        (a 25-tap depthwise blur cost more than the whole MLP step on JAX).
        """
        g = lambda d: math.exp(-0.5 * (d / self.elastic_sigma) ** 2)  # noqa: E731
        total = sum(g(d) for d in range(-size, size + 1))
        return ops.convert_to_tensor([[g(i - j) / total for j in range(size)] for i in range(size)],
                                     dtype="float32")

    def _sample(self, x, coeffs, elastic):
        """Sample (N, H, W, C) images on the affine grid (`coeffs`, as `call` computes them), plus
        a smoothed random displacement when `elastic`; bilinear, zero outside the image."""
        a0, a1, a2, b0, b1, b2 = (ops.reshape(c, (-1, 1, 1)) for c in coeffs)
        n, h, w, c = ops.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
        rows, cols = ops.meshgrid(ops.arange(h, dtype="float32"), ops.arange(w, dtype="float32"), indexing="ij")
        src_x = a0 * cols + a1 * rows + a2
        src_y = b0 * cols + b1 * rows + b2
        if elastic:
            field = keras.random.uniform((n, h, w, 2), -1.0, 1.0, seed=self.generator)
            field = ops.einsum("ij,njkc->nikc", self._blur_matrix(h), field)  # blur down the rows
            field = ops.einsum("kl,nilc->nikc", self._blur_matrix(w), field)  # and along them
            field = field * self.elastic_alpha
            src_x = src_x + field[..., 0]
            src_y = src_y + field[..., 1]
        # Bilinear sampling by hand: four gathers from the flattened batch. (Keras'
        # ops.image.map_coordinates interpolates along the batch and channel axes
        # too, 16 gathers for (N, H, W, C): several times slower, measured.)
        x0, y0 = ops.floor(src_x), ops.floor(src_y)
        wx, wy = ops.expand_dims(src_x - x0, -1), ops.expand_dims(src_y - y0, -1)
        flat = ops.reshape(x, (-1, c))
        base = ops.reshape(ops.arange(n, dtype="int32") * (h * w), (-1, 1, 1))

        def tap(yy, xx):
            inside = (xx >= 0) & (xx <= w - 1) & (yy >= 0) & (yy <= h - 1)
            xi = ops.cast(ops.clip(xx, 0, w - 1), "int32")
            yi = ops.cast(ops.clip(yy, 0, h - 1), "int32")
            values = ops.take(flat, base + yi * w + xi, axis=0)
            return values * ops.expand_dims(ops.cast(inside, values.dtype), -1)  # zeros outside

        top = tap(y0, x0) * (1 - wx) + tap(y0, x0 + 1) * wx
        bottom = tap(y0 + 1, x0) * (1 - wx) + tap(y0 + 1, x0 + 1) * wx
        return top * (1 - wy) + bottom * wy

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom,
                "shift": self.shift, "elastic_alpha": self.elastic_alpha,
                "elastic_sigma": self.elastic_sigma, "seed": self.seed}
