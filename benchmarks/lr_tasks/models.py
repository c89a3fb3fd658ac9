"""The models of the lr_tasks benchmark: one builder per setup, written as a Keras user would write them.

A builder takes the training arrays (for shapes) and returns an uncompiled
model whose fresh weights are drawn from the global Keras seed (the caller
seeds it). `build` draws them from a training seed. The fine-tuning models
(`PRETRAINED`) are first pre-trained on a related task of their own, always from
`PRETRAIN_SEED` with Adam at a fixed rate; `build` then copies that body into the
fresh model and freezes its first layers, so the pre-trained weights are the
same for every training seed and every rate, and no rate the benchmark tries
leaks into them. Pre-trained weights are kept per process (`_PRETRAINED`).
"""

from __future__ import annotations

import dataclasses

from benchmarks.lr_tasks import data as task_data

PRETRAIN_SEED = 1234
PRETRAIN_LR = 1e-3
_PRETRAINED = {}  # builder name -> the source model's weights, pre-trained once per process


def _mlp(n_in, widths, out, activation="relu", norm=None, dropout=0.0, out_activation=None):
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((n_in,))])
    for w in widths:
        model.add(layers.Dense(w, use_bias=norm != "batch"))
        if norm == "batch":
            model.add(layers.BatchNormalization())
        elif norm == "layer":
            model.add(layers.LayerNormalization())
        model.add(layers.Activation(activation))
        if dropout:
            model.add(layers.Dropout(dropout))
    model.add(layers.Dense(out, activation=out_activation))
    return model


# ----------------------------------------------------------------- regression


def sine_mlp(x, y):
    """The issue's model: 1-64-64-1 with tanh."""
    return _mlp(x.shape[1], (64, 64), 1, activation="tanh")


def relu2x32(x, y):
    return _mlp(x.shape[1], (32, 32), 1)


def bn_mlp2x64(x, y):
    return _mlp(x.shape[1], (64, 64), 1, norm="batch")


def dropout_mlp(x, y):
    return _mlp(x.shape[1], (128, 64), 1, dropout=0.2)


def residual_mlp(x, y):
    """A functional MLP of two residual blocks (Dense-ReLU-Dense plus the skip) of width 64."""
    import keras
    from keras import layers

    inputs = keras.Input((x.shape[1],))
    h = layers.Dense(64)(inputs)
    for _ in range(2):
        h = layers.Add()([h, layers.Dense(64)(layers.Dense(64, activation="relu")(h))])
    return keras.Model(inputs, layers.Dense(1)(layers.Activation("relu")(h)))


# ----------------------------------------------------------------- tabular classification


def bn_tabular_binary(x, y):
    return _mlp(x.shape[1], (32, 16), 1, norm="batch", out_activation="sigmoid")


def small_softmax(x, y):
    return _mlp(x.shape[1], (16,), int(y.max()) + 1, out_activation="softmax")


def dropout_binary(x, y):
    return _mlp(x.shape[1], (128, 128), 1, dropout=0.3, out_activation="sigmoid")


def layernorm_gelu(x, y):
    return _mlp(x.shape[1], (128, 128), int(y.max()) + 1, activation="gelu", norm="layer", out_activation="softmax")


# ----------------------------------------------------------------- images


def digits_cnn(x, y):
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:]), layers.Conv2D(16, 3, padding="same", activation="relu"),
                             layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
                             layers.Flatten(), layers.Dense(10, activation="softmax")])


def digits_cnn_dropout(x, y):
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:]), layers.Conv2D(16, 3, padding="same", activation="relu"),
                             layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.3),
                             layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])


def bn_cnn(x, y):
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(x.shape[1:])])
    for f in (16, 32):
        model.add(layers.Conv2D(f, 3, padding="same", use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D())
    model.add(layers.GlobalAveragePooling2D())
    model.add(layers.Dense(int(y.max()) + 1, activation="softmax"))
    return model


def separable_cnn(x, y):
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:]), layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
                             layers.MaxPooling2D(), layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
                             layers.GlobalAveragePooling2D(), layers.Dense(int(y.max()) + 1, activation="softmax")])


# ----------------------------------------------------------------- token sequences


def gru_classifier(x, y):
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:], dtype="int32"), layers.Embedding(int(x.max()) + 1, 16),
                             layers.GRU(32), layers.Dense(int(y.max()) + 1, activation="softmax")])


def bigru_classifier(x, y):
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:], dtype="int32"), layers.Embedding(int(x.max()) + 1, 16),
                             layers.Bidirectional(layers.GRU(16)), layers.Dense(int(y.max()) + 1, activation="softmax")])


def conv1d_regressor(x, y):
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:], dtype="int32"), layers.Embedding(int(x.max()) + 1, 8),
                             layers.Conv1D(32, 3, activation="relu"), layers.GlobalAveragePooling1D(),
                             layers.Dense(1)])


def lstm_classifier(x, y):
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:], dtype="int32"), layers.Embedding(int(x.max()) + 1, 16),
                             layers.LSTM(32), layers.Dense(int(y.max()) + 1, activation="softmax")])


def transformer_encoder(x, y):
    """Token embeddings and one encoder block (2-head self-attention, LayerNorm, dropout), mean-pooled.
    No position embedding: the task (comparing two tokens' counts) does not depend on order."""
    import keras
    from keras import layers

    dim = 32
    tokens = keras.Input(x.shape[1:], dtype="int32")
    h = layers.Embedding(int(x.max()) + 1, dim)(tokens)
    att = layers.MultiHeadAttention(num_heads=2, key_dim=16, dropout=0.1)(h, h)
    h = layers.LayerNormalization()(h + att)
    ff = layers.Dense(dim)(layers.Dense(64, activation="relu")(h))
    h = layers.LayerNormalization()(h + layers.Dropout(0.1)(ff))
    out = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(h))
    return keras.Model(tokens, out)


# ----------------------------------------------------------------- pre-trained, then fine-tuned


def digits_mlp(x, y):
    """64-128-64-k on flattened 8x8 digits: the fine-tuning target (its source has the same body)."""
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:]), layers.Flatten(), layers.Dense(128, activation="relu"),
                             layers.Dense(64, activation="relu"), layers.Dense(int(y.max()) + 1, activation="softmax")])


def tabular_mlp2x64(x, y):
    return _mlp(x.shape[1], (64, 64), int(y.max()) + 1, out_activation="softmax")


def stripes_cnn(x, y):
    """Two convolutions, then a 2-layer head: the fine-tuning target (its source has the same body)."""
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:]), layers.Conv2D(16, 3, padding="same", activation="relu"),
                             layers.MaxPooling2D(), layers.Conv2D(32, 3, padding="same", activation="relu"),
                             layers.MaxPooling2D(), layers.Flatten(), layers.Dense(32, activation="relu"),
                             layers.Dense(int(y.max()) + 1, activation="softmax")])


def embedding_gru(x, y):
    """Embedding of 12 tokens + GRU(32): the fine-tuning target (its source has the same body)."""
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(x.shape[1:], dtype="int32"), layers.Embedding(12, 16), layers.GRU(32),
                             layers.Dense(int(y.max()) + 1, activation="softmax")])


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A fine-tuning model: its `source` data set to pre-train on (the same builder, its own head),
    the first `copy` layers carried over from the pre-trained model, the first `freeze` of them frozen."""
    source: str
    epochs: int
    batch_size: int
    copy: int
    freeze: int


# the fine-tuning target model -> how its body is pre-trained
PRETRAINED = {
    "digits_mlp": Pretrained("digits_low", epochs=10, batch_size=32, copy=3, freeze=2),          # Flatten, Dense128
    "tabular_mlp2x64": Pretrained("teacher_pretrain", epochs=5, batch_size=64, copy=2, freeze=1),  # first Dense
    "stripes_cnn": Pretrained("stripes24_angle", epochs=3, batch_size=64, copy=4, freeze=4),       # both convs
    "embedding_gru": Pretrained("seq_mode_source", epochs=3, batch_size=64, copy=2, freeze=1),      # the embedding
}


def _pretrained_weights(name: str) -> list:
    """The weights of model `name` pre-trained on its source task from `PRETRAIN_SEED` (once per process)."""
    import keras

    if name not in _PRETRAINED:
        spec = PRETRAINED[name]
        x, y, _, _ = task_data.DATASETS[spec.source]()
        keras.utils.set_random_seed(PRETRAIN_SEED)
        source = MODELS[name](x, y)
        source.compile(optimizer=keras.optimizers.Adam(PRETRAIN_LR), loss="sparse_categorical_crossentropy")
        source.fit(x, y, batch_size=spec.batch_size, epochs=spec.epochs, shuffle=True, verbose=0)
        _PRETRAINED[name] = [layer.get_weights() for layer in source.layers]
    return _PRETRAINED[name]


def build(name: str, x, y, seed: int):
    """Model `name` for the training arrays `x, y`, its fresh weights drawn from `seed`; a fine-tuning
    model gets its pre-trained body (the same whatever the seed) and its frozen layers."""
    import keras

    spec = PRETRAINED.get(name)
    body = _pretrained_weights(name) if spec else None
    keras.utils.set_random_seed(seed)
    model = MODELS[name](x, y)
    if spec:
        for layer, weights in zip(model.layers[:spec.copy], body):
            layer.set_weights(weights)
        for layer in model.layers[:spec.freeze]:
            layer.trainable = False
    return model


MODELS = {f.__name__: f for f in (
    sine_mlp, relu2x32, bn_mlp2x64, dropout_mlp, residual_mlp, bn_tabular_binary, small_softmax, dropout_binary, layernorm_gelu,
    tabular_mlp2x64, digits_cnn, digits_cnn_dropout, bn_cnn, separable_cnn, digits_mlp, stripes_cnn, gru_classifier,
    conv1d_regressor, bigru_classifier, lstm_classifier, transformer_encoder, embedding_gru)}
