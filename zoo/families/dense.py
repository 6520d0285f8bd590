"""Dense nets on the flattened log-mel window: ``4fcLayers-1024-512-512`` (D layers, D - 1 hidden sizes)."""

from __future__ import annotations

import re

from zoo.families.base import Family, Preset, dashed, numbers

# The study's dense nets (its mlp section).
STUDY_MLPS = (
    "3fcLayers-512-256", "3fcLayers-1024-512", "3fcLayers-2048-1024",
    "4fcLayers-1024-512-256", "4fcLayers-1024-512-512", "4fcLayers-2048-1024-512",
    "5fcLayers-1024-512-256-256", "5fcLayers-2048-1024-512-256", "5fcLayers-2048-2048-1024-512",
)


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


FAMILY = Family(
    "dense", re.compile(r"^(?P<layers>\d+)fcLayers(?P<units>(?:-\d+)*)$"), "4fcLayers-1024-512-512",
    parse, render, check,
    presets=tuple(Preset(name, name, "dense net on the flattened log-mel window: "
                                     f"{name.split('-', 1)[1].replace('-', ', ')} hidden units") for name in STUDY_MLPS),
)
