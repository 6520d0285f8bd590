"""Residual short-chunk CNN: ``rescnn-32-64-128-256`` (2 to 8 residual blocks).

The kind of model that music-tagging work found strongest on 2-4 s chunks (Won et al., 2020,
"short-chunk ResNet"): each block is two 3x3 convolutions with batch normalization and a
shortcut (a 1x1 convolution where the width changes), then 2x2 max pooling; global average +
max pooling and dropout before the softmax. Residual paths let the deeper stack train on
little data, and global pooling keeps the weights few (~1 M for the name above).
"""

from __future__ import annotations

import keras

from zoo import blocks
from zoo.families.base import filters_family
from zoo.families.bncnn import GLOBAL_POOL_DEFAULTS, batch_norm


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


FAMILY = filters_family("rescnn", (2, 8), "residual blocks", features, GLOBAL_POOL_DEFAULTS)
