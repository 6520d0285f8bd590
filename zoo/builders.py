"""One builder per model family; each returns an uncompiled ``keras.Model``.

Every model takes a waveform batch ``[batch, samples]`` (float32, 22050 Hz) named
``waveform`` and outputs genre probabilities ``[batch, n_genres]`` named ``probabilities``.
It starts with the data package's front-end: ``RandomTimeShift`` (active in training only),
then ``LogMelSpectrogram`` for the spectrogram families.
"""

from __future__ import annotations

import re

import keras

from data.layers import LogMelSpectrogram, RandomTimeShift
from data.pipeline import window_samples
from zoo.activations import Maxout, activation_layer, parse_activation
from zoo.config import ModelConfig

# Waveform stem: a strided 1-D convolution, a learned filter bank with a 256-sample
# (11.6 ms) window and a 64-sample hop, so that the conv blocks after it see ~345 frames
# per second instead of 22050 samples.
WAVE_STEM_KERNEL = 256
WAVE_STEM_STRIDE = 64
WAVE_POOL = 4


def _regularizer(config: ModelConfig):
    # PyTorch's weight_decay=wd adds wd * w to the gradient; Keras' L2(l) adds 2 * l * w.
    return keras.regularizers.L2(config.weight_decay / 2) if config.weight_decay else None


def _spectrogram(config: ModelConfig, waveform):
    return LogMelSpectrogram(n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                             name="log_mel")(waveform)


def _dense_stack(config: ModelConfig, x, first_layer: int):
    """Hidden dense layers, activations cycled by global layer index, optional dropout."""
    for i, units in enumerate(config.dense_units):
        spec = config.dense_activation[(first_layer + i) % len(config.dense_activation)]
        kind, pieces = parse_activation(spec)
        if kind == "maxout":
            x = Maxout(units, pieces, kernel_regularizer=_regularizer(config), name=f"fc{i + 1}_maxout")(x)
        else:
            x = keras.layers.Dense(units, kernel_regularizer=_regularizer(config), name=f"fc{i + 1}")(x)
            x = activation_layer(spec, name=f"fc{i + 1}_{kind}")(x)
        if config.dense_dropout:
            x = keras.layers.Dropout(config.dense_dropout, name=f"fc{i + 1}_dropout")(x)
    return x


def _conv_activation(config: ModelConfig, block: int, name: str):
    spec = config.conv_activation[block % len(config.conv_activation)]
    return activation_layer(spec, name=f"{name}_{parse_activation(spec)[0]}")


def dense_features(config: ModelConfig, waveform):
    """Dense net: flattened log-mel spectrogram of the window, then hidden dense layers."""
    x = keras.layers.Flatten(name="flatten")(_spectrogram(config, waveform))
    return _dense_stack(config, x, first_layer=0)


def cnn_features(config: ModelConfig, waveform):
    """2-D CNN: conv blocks (3x3, stride 1, same padding, activation, 2x2 max pooling) on the log-mel."""
    x = keras.layers.Reshape((-1, config.n_mels, 1), name="add_channel")(_spectrogram(config, waveform))
    for i, filters in enumerate(config.conv_filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", kernel_regularizer=_regularizer(config), name=f"conv{i + 1}")(x)
        x = _conv_activation(config, i, f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"conv{i + 1}_pool")(x)
        if config.conv_dropout:
            x = keras.layers.Dropout(config.conv_dropout, name=f"conv{i + 1}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return _dense_stack(config, x, first_layer=len(config.conv_filters))


def wave_features(config: ModelConfig, waveform):
    """1-D CNN on the raw waveform: a strided stem, then conv blocks (kernel 3, max pooling 4)."""
    x = keras.layers.Reshape((-1, 1), name="add_channel")(waveform)
    x = keras.layers.Conv1D(config.conv_filters[0], WAVE_STEM_KERNEL, strides=WAVE_STEM_STRIDE, padding="same",
                            kernel_regularizer=_regularizer(config), name="stem")(x)
    x = _conv_activation(config, 0, "stem")(x)
    for i, filters in enumerate(config.conv_filters):
        x = keras.layers.Conv1D(filters, 3, padding="same", kernel_regularizer=_regularizer(config), name=f"conv{i + 1}")(x)
        x = _conv_activation(config, i, f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling1D(WAVE_POOL, name=f"conv{i + 1}_pool")(x)
        if config.conv_dropout:
            x = keras.layers.Dropout(config.conv_dropout, name=f"conv{i + 1}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return _dense_stack(config, x, first_layer=len(config.conv_filters))


def bncnn_features(config: ModelConfig, waveform):
    """Batch-normalized CNN with global pooling: this toolkit's stronger model.

    Why it should generalize better than the study's CNNs on 800 training clips:

    * global average + max pooling over time and frequency replaces the flatten + dense
      layers that hold most of the study CNNs' millions of weights, so the model has
      ~0.4 M weights and cannot memorize clip positions; it answers "which patterns occur"
      wherever they occur in the window;
    * batch normalization after every convolution (and on the input) keeps training
      stable at higher learning rates and acts as a regularizer;
    * a deeper stack (4 blocks) sees longer time-frequency patterns (bars, chords)
      than 3 blocks of a shallow net.
    """
    x = keras.layers.Reshape((-1, config.n_mels, 1), name="add_channel")(_spectrogram(config, waveform))
    x = keras.layers.BatchNormalization(name="input_norm")(x)
    last = len(config.conv_filters) - 1
    for i, filters in enumerate(config.conv_filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=_regularizer(config),
                                name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{i + 1}_bn")(x)
        x = _conv_activation(config, i, f"conv{i + 1}")(x)
        if i < last:
            x = keras.layers.MaxPooling2D(2, name=f"conv{i + 1}_pool")(x)
            if config.conv_dropout:
                x = keras.layers.Dropout(config.conv_dropout, name=f"conv{i + 1}_dropout")(x)
    x = keras.layers.Concatenate(name="global_pool")(
        [keras.layers.GlobalAveragePooling2D(name="avg_pool")(x), keras.layers.GlobalMaxPooling2D(name="max_pool")(x)]
    )
    if config.dense_dropout:
        x = keras.layers.Dropout(config.dense_dropout, name="pool_dropout")(x)
    return x


FEATURES = {"dense": dense_features, "cnn": cnn_features, "wave": wave_features, "bncnn": bncnn_features}


def build_model(config: ModelConfig) -> keras.Model:
    """Builds the uncompiled model described by ``config``."""
    waveform = keras.Input((window_samples(config.window_seconds),), name="waveform")
    x = RandomTimeShift(config.time_shift, name="time_shift")(waveform)
    x = FEATURES[config.family](config, x)
    probabilities = keras.layers.Dense(config.n_genres, activation="softmax", kernel_regularizer=_regularizer(config),
                                       name="probabilities")(x)
    return keras.Model(waveform, probabilities, name=re.sub(r"[^A-Za-z0-9_.-]", "_", config.name))
