"""Building blocks shared by the model families: front end, regularizer, activations, dense head."""

from __future__ import annotations

import keras

from data.layers import LogMelSpectrogram, SpecAugment
from zoo.activations import parse_activation
from zoo.builders.activations import Maxout, activation_layer
from zoo.config import ModelConfig


def regularizer(config: ModelConfig):
    """The kernel regularizer of ``config.weight_decay`` (None without weight decay).

    PyTorch's ``weight_decay=wd`` adds ``wd * w`` to the gradient; Keras' ``L2(l)`` adds ``2 * l * w``.
    """
    return keras.regularizers.L2(config.weight_decay / 2) if config.weight_decay else None


def spectrogram(config: ModelConfig, waveform):
    """Log-mel spectrogram ``[batch, frames, n_mels]``, then SpecAugment masks if the config asks."""
    # The front end stays float32 under mixed precision: decibels of float16 powers overflow.
    x = LogMelSpectrogram(n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                          name="log_mel", dtype="float32")(waveform)
    if any(config.spec_augment):
        freq_width, time_width = config.spec_augment
        x = SpecAugment(freq_width, time_width, name="spec_augment", dtype="float32")(x)
    return x


def image(config: ModelConfig, waveform):
    """The spectrogram as a one-channel image ``[batch, frames, n_mels, 1]`` for 2-D convolutions."""
    return keras.layers.Reshape((-1, config.n_mels, 1), name="add_channel")(spectrogram(config, waveform))


def conv_activation(config: ModelConfig, block: int, name: str) -> keras.layers.Layer:
    """The activation layer of conv block ``block`` (specs cycle over the blocks)."""
    spec = config.conv_activation[block % len(config.conv_activation)]
    return activation_layer(spec, name=f"{name}_{parse_activation(spec)[0]}")


def dense_stack(config: ModelConfig, x, first_layer: int):
    """Hidden dense layers; activations cycle by global layer index; optional dropout after each."""
    for i, units in enumerate(config.dense_units):
        spec = config.dense_activation[(first_layer + i) % len(config.dense_activation)]
        kind, pieces = parse_activation(spec)
        if kind == "maxout":
            x = Maxout(units, pieces, kernel_regularizer=regularizer(config), name=f"fc{i + 1}_maxout")(x)
        else:
            x = keras.layers.Dense(units, kernel_regularizer=regularizer(config), name=f"fc{i + 1}")(x)
            x = activation_layer(spec, name=f"fc{i + 1}_{kind}")(x)
        if config.dense_dropout:
            x = keras.layers.Dropout(config.dense_dropout, name=f"fc{i + 1}_dropout")(x)
    return x


def global_pool(config: ModelConfig, x):
    """Global average + max pooling over every axis but channels, then dropout if the config asks."""
    pool = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    x = keras.layers.Concatenate(name="global_pool")([pool[0](name="avg_pool")(x), pool[1](name="max_pool")(x)])
    if config.dense_dropout:
        x = keras.layers.Dropout(config.dense_dropout, name="pool_dropout")(x)
    return x


def flat_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``, those of its nested models in their place."""
    found = []
    for layer in model.layers:
        found.extend(flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found
