"""FLOPs of a Keras model's training step, counted the way throughput.py and layer_costs.py report them.

Per example: 2 * multiply-adds of every Dense and Conv2D layer forward, times 3
for forward + backward (the gradients with respect to the layer's input and to
its weights each cost one forward), but times 2 for a layer with no trainable
layer before it: nothing needs the gradient of its input, and neither backend
computes it (JAX differentiates with respect to the weights only; TensorFlow
prunes what the weights' gradients do not use). For the fast MLP that first
layer holds 65% of the multiply-adds, so counting it 3 times overstated its
FLOPs by 28%. Batch norm, activations, pooling, augmentation and the optimizer
are not counted: they show up as lost throughput.
"""

from __future__ import annotations


def multiply_adds(layer) -> int:
    """Forward multiply-adds per example of a Dense or Conv2D layer (0 for any other layer)."""
    import keras

    if isinstance(layer, keras.layers.Dense):
        return layer.kernel.shape[0] * layer.kernel.shape[1]
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        _, h, w, _ = layer.output.shape
        return h * w * kh * kw * cin * cout
    return 0


def needs_input_gradient(model) -> dict:
    """Per layer of a sequential-order `model`: whether a trainable layer comes before it."""
    needs, before = {}, False
    for layer in model.layers:
        needs[layer.name] = before
        before = before or bool(layer.trainable_weights)
    return needs


def layer_train_flops(layer, input_gradient: bool) -> int:
    """One example's forward and backward FLOPs in `layer`: x 3 of its forward, x 2 without `input_gradient`."""
    return 2 * multiply_adds(layer) * (3 if input_gradient else 2)


def train_flops(model) -> int:
    """FLOPs of one example's forward and backward pass (the module docstring's count)."""
    needs = needs_input_gradient(model)
    return sum(layer_train_flops(layer, needs[layer.name]) for layer in model.layers)
