"""Batch-normalized CNN with global pooling (``zoo.families.bncnn``).

Batch normalization uses momentum 0.9: a GTZAN epoch is only 10-30 steps, and with Keras'
default of 0.99 the moving statistics used at inference still weigh their initial values
(mean 0, variance 1) by 0.99 ** 100 = 37 % after 100 steps, far from the activations' real
statistics, so validation predictions were poor for the whole of a short training run.
"""

from __future__ import annotations

import keras

from zoo.builders import blocks

BN_MOMENTUM = 0.9


def batch_norm(name: str) -> keras.layers.BatchNormalization:
    """Batch normalization with the momentum short GTZAN epochs need (see the module docstring)."""
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def features(config, waveform):
    x = batch_norm("input_norm")(blocks.image(config, waveform))
    last = len(config.conv_filters) - 1
    for i, filters in enumerate(config.conv_filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=blocks.regularizer(config),
                                name=f"conv{i + 1}")(x)
        x = batch_norm(f"conv{i + 1}_bn")(x)
        x = blocks.conv_activation(config, i, f"conv{i + 1}")(x)
        if i < last:
            x = keras.layers.MaxPooling2D(2, name=f"conv{i + 1}_pool")(x)
            if config.conv_dropout:
                x = keras.layers.Dropout(config.conv_dropout, name=f"conv{i + 1}_dropout")(x)
    return blocks.global_pool(config, x)
