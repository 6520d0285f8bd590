"""musicnn and its VGG baseline in Keras 3, on musicnn's log-mel input, with the pretrained weights.

A re-implementation, written here, of the two architectures of Pons & Serra (2019) whose
TensorFlow 1 checkpoints ``zoo.pretrained`` reads; :func:`load_weights` maps the checkpoints'
variable names (TF 1 layer names in creation order) onto these layers. Both take musicnn's
input, ``[batch, frames, 96]``: ``log10(1 + 10000 * mel)`` of a 96-band mel power spectrogram
at 16 kHz (FFT 512, hop 256).

* **musicnn** (~790 k weights): a musically motivated front end (timbral filters 7x38 and 7x67
  over the mel bands, temporal filters 128x1, 64x1 and 32x1, each max-pooled over frequency), a
  mid end of three dense 1-D convolutions with residual connections, a back end of max and mean
  pooling over time, a 200-unit dense layer (the penultimate features) and the tag layer. Its
  pooling over time lets it take any number of frames.
* **vgg** (~600 k weights): five 3x3 conv blocks with max pooling; it needs exactly 187 frames (3 s).
"""

from __future__ import annotations

import math

import keras
from keras import ops

N_MELS = 96
VGG_FRAMES = 187  # 3 s at 16 kHz with a hop of 256


def _bn(name: str) -> keras.layers.BatchNormalization:
    # TensorFlow 1's batch_normalization defaults: epsilon 1e-3 (Keras' too).
    return keras.layers.BatchNormalization(epsilon=1e-3, name=name)


@keras.saving.register_keras_serializable(package="gtzan")
class FrequencyMax(keras.layers.Layer):
    """Max over the frequency axis: ``[batch, frames, bands, channels]`` -> ``[batch, frames, channels]``."""

    def call(self, inputs):
        return ops.max(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[3])


@keras.saving.register_keras_serializable(package="gtzan")
class TimePooling(keras.layers.Layer):
    """musicnn's back-end pooling: max and mean over time, interleaved per feature as in the
    original (``[max_0, mean_0, max_1, mean_1, ...]``): ``[batch, frames, features]`` -> ``[batch, 2 * features]``."""

    def call(self, inputs):
        pooled = ops.stack([ops.max(inputs, axis=1), ops.mean(inputs, axis=1)], axis=-1)
        return ops.reshape(pooled, (-1, 2 * inputs.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])


def musicnn_features(mel, midend_filters: int = 64, backend_units: int = 200, dropout: float = 0.5):
    """musicnn up to its penultimate layer: ``(penultimate [batch, backend_units], pooled [batch, 1506])``."""
    x = keras.layers.Reshape((-1, N_MELS, 1), name="musicnn_add_channel")(mel)
    x = _bn("musicnn_input_bn")(x)
    padded = keras.layers.ZeroPadding2D(((3, 3), (0, 0)), name="musicnn_timbral_pad")(x)
    front = []
    for name, kernel in (("timbral74", (7, int(0.4 * N_MELS))), ("timbral77", (7, int(0.7 * N_MELS)))):
        y = keras.layers.Conv2D(int(1.6 * 128), kernel, padding="valid", activation="relu", name=f"musicnn_{name}")(padded)
        front.append(FrequencyMax(name=f"musicnn_{name}_pool")(_bn(f"musicnn_{name}_bn")(y)))
    for length in (128, 64, 32):
        y = keras.layers.Conv2D(int(1.6 * 32), (length, 1), padding="same", activation="relu",
                                name=f"musicnn_temporal{length}")(x)
        front.append(FrequencyMax(name=f"musicnn_temporal{length}_pool")(_bn(f"musicnn_temporal{length}_bn")(y)))
    front = keras.layers.Concatenate(axis=-1, name="musicnn_frontend")(front)  # [batch, frames, 561]
    mid, previous = [front], None
    for i in (1, 2, 3):
        y = keras.layers.ZeroPadding1D(3, name=f"musicnn_mid{i}_pad")(mid[-1])
        y = keras.layers.Conv1D(midend_filters, 7, padding="valid", activation="relu", name=f"musicnn_mid{i}")(y)
        y = _bn(f"musicnn_mid{i}_bn")(y)
        if previous is not None:  # residual connections from the second layer on
            y = keras.layers.Add(name=f"musicnn_mid{i}_residual")([y, previous])
        mid.append(y)
        previous = y
    features = keras.layers.Concatenate(axis=-1, name="musicnn_midend")(mid)  # [batch, frames, 753]
    pooled = TimePooling(name="musicnn_time_pool")(features)
    x = _bn("musicnn_pool_bn")(pooled)
    x = keras.layers.Dropout(dropout, name="musicnn_pool_dropout")(x)
    x = keras.layers.Dense(backend_units, activation="relu", name="musicnn_dense")(x)
    penultimate = _bn("musicnn_dense_bn")(x)
    return penultimate, pooled


def musicnn_tagger(n_tags: int = 50) -> keras.Model:
    """The pretrained tagger as it was trained: log-mel -> ``{"tags": sigmoid [batch, n_tags],
    "penultimate": [batch, 200]}``."""
    mel = keras.Input((None, N_MELS), name="log_mel")
    penultimate, _ = musicnn_features(mel)
    x = keras.layers.Dropout(0.5, name="musicnn_dense_dropout")(penultimate)
    tags = keras.layers.Dense(n_tags, activation="sigmoid", name="musicnn_tags")(x)
    return keras.Model(mel, {"tags": tags, "penultimate": penultimate}, name="musicnn")


# The pooling (size, strides) after each conv block: the two checkpoints differ in their first two
# (read off their graphs; the wheel's own code shows MTT's).
VGG_POOLS = {
    "MTT_vgg": (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
    "MSD_vgg": (((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
}


def vgg_features(mel, pools=VGG_POOLS["MTT_vgg"], filters: int = 128, dropout: float = 0.25):
    """The VGG baseline up to its flattened last pooling: ``[batch, filters * 2]`` for 187 frames."""
    x = keras.layers.Reshape((VGG_FRAMES, N_MELS, 1), name="vgg_add_channel")(mel)
    x = _bn("vgg_input_bn")(x)
    for i, (size, strides) in enumerate(pools, start=1):
        if i > 1:
            x = keras.layers.Dropout(dropout, name=f"vgg_pool{i - 1}_dropout")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"vgg_conv{i}")(x)
        x = _bn(f"vgg_conv{i}_bn")(x)
        x = keras.layers.MaxPooling2D(size, strides=strides, name=f"vgg_pool{i}")(x)
    return keras.layers.Flatten(name="vgg_flatten")(x)


def vgg_tagger(tagger: str = "MTT_vgg", n_tags: int = 50) -> keras.Model:
    """The pretrained VGG tagger (``MTT_vgg`` or ``MSD_vgg``) as it was trained: log-mel (187
    frames) -> ``{"tags", "penultimate"}``."""
    mel = keras.Input((VGG_FRAMES, N_MELS), name="log_mel")
    penultimate = vgg_features(mel, VGG_POOLS[tagger])
    x = keras.layers.Dropout(0.5, name="vgg_flat_dropout")(penultimate)
    tags = keras.layers.Dense(n_tags, activation="sigmoid", name="vgg_tags")(x)
    return keras.Model(mel, {"tags": tags, "penultimate": penultimate}, name="vgg")


# Checkpoint layer names (TensorFlow 1's creation order) -> these layers' names.
MUSICNN_NAMES = {
    "batch_normalization": "musicnn_input_bn",
    "conv2d": "musicnn_timbral74", "batch_normalization_1": "musicnn_timbral74_bn",
    "conv2d_1": "musicnn_timbral77", "batch_normalization_2": "musicnn_timbral77_bn",
    "conv2d_2": "musicnn_temporal128", "batch_normalization_3": "musicnn_temporal128_bn",
    "conv2d_3": "musicnn_temporal64", "batch_normalization_4": "musicnn_temporal64_bn",
    "conv2d_4": "musicnn_temporal32", "batch_normalization_5": "musicnn_temporal32_bn",
    "conv2d_5": "musicnn_mid1", "batch_normalization_6": "musicnn_mid1_bn",
    "conv2d_6": "musicnn_mid2", "batch_normalization_7": "musicnn_mid2_bn",
    "conv2d_7": "musicnn_mid3", "batch_normalization_8": "musicnn_mid3_bn",
    "batch_normalization_9": "musicnn_pool_bn", "dense": "musicnn_dense", "batch_normalization_10": "musicnn_dense_bn",
    "dense_1": "musicnn_tags",
}
VGG_NAMES = {
    "batch_normalization": "vgg_input_bn", **{f"{i}CNN": f"vgg_conv{i}" for i in range(1, 6)},
    **{f"batch_normalization_{i}": f"vgg_conv{i}_bn" for i in range(1, 6)}, "dense": "vgg_tags",
}


def load_weights(model: keras.Model, weights: dict, names: dict[str, str], skip: tuple[str, ...] = ()) -> None:
    """Sets ``model``'s layers from a checkpoint's variables (``zoo.pretrained.read_checkpoint``).

    Every mapped layer present in the model (and not in ``skip``) must take its variables,
    with the checkpoint's shapes (a 2-D conv kernel that covers every band becomes the 1-D
    kernel of the mid end); a checkpoint variable left unused is an error too.

    Raises:
        ValueError: naming the layer or variable that does not fit.
    """
    used = set()
    for source, target in names.items():
        if target in skip:
            continue
        try:
            layer = model.get_layer(target)
        except ValueError:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            keys = [f"{source}/{k}" for k in ("gamma", "beta", "moving_mean", "moving_variance")]
        else:
            keys = [f"{source}/kernel", f"{source}/bias"]
        values = [weights[key] for key in keys]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        values = [v.reshape(e) if v.size == math.prod(e) else v for v, e in zip(values, expected)]
        if [tuple(v.shape) for v in values] != expected:
            raise ValueError(f"checkpoint layer {source} {[v.shape for v in values]} does not fit {target} {expected}")
        layer.set_weights(values)
        used.update(keys)
    mapped = {name for name in weights if names.get(name.split("/")[0]) not in (None, *skip)}
    if mapped - used:
        raise ValueError(f"checkpoint variables not loaded: {sorted(mapped - used)[:5]}")
