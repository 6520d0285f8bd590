"""Residual short-chunk CNN (``zoo.families.rescnn``)."""

from __future__ import annotations

import keras

from zoo.builders import blocks
from zoo.builders.bncnn import batch_norm


def _conv(config, filters: int, kernel: int, name: str):
    return keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False,
                               kernel_regularizer=blocks.regularizer(config), name=name)


def features(config, waveform):
    x = batch_norm("input_norm")(blocks.image(config, waveform))
    last = len(config.conv_filters) - 1
    for i, filters in enumerate(config.conv_filters):
        name = f"block{i + 1}"
        shortcut = x
        if i == 0 or config.conv_filters[i - 1] != filters:
            shortcut = batch_norm(f"{name}_shortcut_bn")(_conv(config, filters, 1, f"{name}_shortcut")(x))
        x = _conv(config, filters, 3, f"{name}_conv1")(x)
        x = blocks.conv_activation(config, i, f"{name}_conv1")(batch_norm(f"{name}_bn1")(x))
        x = batch_norm(f"{name}_bn2")(_conv(config, filters, 3, f"{name}_conv2")(x))
        x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
        x = blocks.conv_activation(config, i, f"{name}_out")(x)
        if i < last:
            x = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)
            if config.conv_dropout:
                x = keras.layers.Dropout(config.conv_dropout, name=f"{name}_dropout")(x)
    return blocks.global_pool(config, x)
