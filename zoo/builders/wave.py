"""1-D CNNs on the raw waveform (``zoo.families.wave``).

A strided stem (a learned filter bank with a 256-sample, 11.6 ms window and a 64-sample hop,
so the blocks see ~345 frames per second instead of 22050 samples), then conv blocks
(kernel 3, activation, max pooling 4), flatten and the dense layers of the CNN family.
"""

from __future__ import annotations

import keras

from zoo.builders import blocks

STEM_KERNEL = 256
STEM_STRIDE = 64
POOL = 4


def features(config, waveform):
    x = keras.layers.Reshape((-1, 1), name="add_channel")(waveform)
    x = keras.layers.Conv1D(config.conv_filters[0], STEM_KERNEL, strides=STEM_STRIDE, padding="same",
                            kernel_regularizer=blocks.regularizer(config), name="stem")(x)
    x = blocks.conv_activation(config, 0, "stem")(x)
    for i, filters in enumerate(config.conv_filters):
        x = keras.layers.Conv1D(filters, 3, padding="same", kernel_regularizer=blocks.regularizer(config),
                                name=f"conv{i + 1}")(x)
        x = blocks.conv_activation(config, i, f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling1D(POOL, name=f"conv{i + 1}_pool")(x)
        if config.conv_dropout:
            x = keras.layers.Dropout(config.conv_dropout, name=f"conv{i + 1}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return blocks.dense_stack(config, x, first_layer=len(config.conv_filters))
