"""The study's 2-D CNNs on the log-mel spectrogram (``zoo.families.cnn``)."""

from __future__ import annotations

import keras

from zoo.builders import blocks


def features(config, waveform):
    """Conv blocks on the log-mel image, flatten, hidden dense layers."""
    x = blocks.image(config, waveform)
    for i, filters in enumerate(config.conv_filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", kernel_regularizer=blocks.regularizer(config),
                                name=f"conv{i + 1}")(x)
        x = blocks.conv_activation(config, i, f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"conv{i + 1}_pool")(x)
        if config.conv_dropout:
            x = keras.layers.Dropout(config.conv_dropout, name=f"conv{i + 1}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return blocks.dense_stack(config, x, first_layer=len(config.conv_filters))
