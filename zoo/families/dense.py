"""Dense nets on the flattened log-mel window: ``4fcLayers-1024-512-512`` (D layers, D - 1 hidden sizes)."""

from __future__ import annotations

import re

import keras

from zoo import blocks
from zoo.families.base import Family, dashed, numbers


def parse(match: re.Match) -> dict:
    units = numbers(match["units"])
    if int(match["layers"]) != len(units) + 1:
        raise ValueError(f"{match['layers']}fcLayers needs {int(match['layers']) - 1} hidden sizes, got {len(units)}")
    return {"dense_units": units}


def render(config) -> str:
    return f"{len(config.dense_units) + 1}fcLayers{dashed(config.dense_units)}"


def check(config) -> list[str]:
    if not 2 <= len(config.dense_units) <= 4:
        return [f"a dense net has 3 to 5 layers (2 to 4 hidden). Received: dense_units={config.dense_units}"]
    return []


def features(config, waveform):
    """Flattened log-mel spectrogram of the window, then the hidden dense layers."""
    x = keras.layers.Flatten(name="flatten")(blocks.spectrogram(config, waveform))
    return blocks.dense_stack(config, x, first_layer=0)


FAMILY = Family("dense", re.compile(r"^(?P<layers>\d+)fcLayers(?P<units>(?:-\d+)*)$"), "4fcLayers-1024-512-512",
                parse, render, check, features)
