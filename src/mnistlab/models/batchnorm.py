"""Batch normalisation that uses TensorFlow's fused kernel when training on TensorFlow.

Keras 3's `BatchNormalization` computes the batch moments and the normalisation
with separate backend ops, and on TensorFlow autodiff then runs each of them
(and their gradients) as its own kernel over the whole activation tensor. On a
2-core CPU that made one BN layer after a 28x28x16 convolution cost more than
the convolution itself (BENCHMARKS.md, "What made it fast": fused batch norm). TensorFlow has one
fused kernel for the forward pass and one for the gradient; this layer uses
them in training on the TensorFlow backend and is plain Keras everywhere else
(JAX, where XLA fuses the ops anyway; inference; masks; renorm; other axes).

The layer has the same variables and the same configuration as Keras' layer,
so weights move freely between the two.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="mnistlab")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with TensorFlow's fused kernel in training.

    Args: as `keras.layers.BatchNormalization`.
    """

    def _can_fuse(self, inputs, training, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and training and self.trainable and mask is None
            and not self.renorm and not self.synchronized and self.center and self.scale
            and self.axis in (-1, len(inputs.shape) - 1)
            and len(inputs.shape) in (2, 4)
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        shape = tf.shape(inputs)
        x = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]])
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The kernel normalises with the biased variance but returns the unbiased
        # one; Keras' layer keeps the biased one in its moving average.
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), variance.dtype)
        variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.reshape(y, shape)
