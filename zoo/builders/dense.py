"""Dense nets on the flattened log-mel window (``zoo.families.dense``)."""

from __future__ import annotations

import keras

from zoo.builders import blocks


def features(config, waveform):
    """Flattened log-mel spectrogram of the window, then the hidden dense layers."""
    x = keras.layers.Flatten(name="flatten")(blocks.spectrogram(config, waveform))
    return blocks.dense_stack(config, x, first_layer=0)
