"""The study's 2-D CNNs on the log-mel spectrogram: ``3cnn-32-64-128-2fc-128``.

C conv blocks (3x3 conv, stride 1, same padding, activation, 2x2 max pooling), flatten, then D
dense layers (D - 1 hidden sizes, then the output). 1 to 3 blocks, 1 to 5 dense layers.
"""

from __future__ import annotations

import re

import keras

from zoo import blocks
from zoo.families.base import Family, dashed, numbers

PATTERN = r"(?P<blocks>\d+)cnn(?P<filters>(?:-\d+)+)-(?P<layers>\d+)fc(?P<units>(?:-\d+)*)"


def parse(match: re.Match) -> dict:
    """Fields of a ``Ccnn-F...-Dfc-U...`` match (shared with the waveform family)."""
    filters, units = numbers(match["filters"]), numbers(match["units"])
    if int(match["blocks"]) != len(filters) or int(match["layers"]) != len(units) + 1:
        raise ValueError(f"{match['blocks']}cnn needs {match['blocks']} filter counts and "
                         f"{match['layers']}fc needs {int(match['layers']) - 1} hidden sizes")
    return {"conv_filters": filters, "dense_units": units}


def render(config) -> str:
    filters, units = config.conv_filters, config.dense_units
    return f"{len(filters)}cnn{dashed(filters)}-{len(units) + 1}fc{dashed(units)}"


def check(config) -> list[str]:
    problems = []
    if not 1 <= len(config.conv_filters) <= 3:
        problems.append(f"a CNN has 1 to 3 conv blocks. Received: conv_filters={config.conv_filters}")
    if len(config.dense_units) > 4:
        problems.append(f"a CNN has 1 to 5 dense layers (0 to 4 hidden). Received: dense_units={config.dense_units}")
    return problems


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


FAMILY = Family("cnn", re.compile(f"^{PATTERN}$"), "3cnn-32-64-128-2fc-128", parse, render, check, features)
