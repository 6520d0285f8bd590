"""The study's 2-D CNNs on the log-mel spectrogram: ``3cnn-32-64-128-2fc-128``.

C conv blocks (3x3 conv, stride 1, same padding, activation, 2x2 max pooling), flatten, then D
dense layers (D - 1 hidden sizes, then the output). 1 to 3 blocks, 1 to 5 dense layers.

The study's CNN architectures and its named variants (activations, regularization) are
registered here under the study's own names.
"""

from __future__ import annotations

import re

from zoo.families.base import Family, Preset, dashed, numbers, with_options

PATTERN = r"(?P<blocks>\d+)cnn(?P<filters>(?:-\d+)+)-(?P<layers>\d+)fc(?P<units>(?:-\d+)*)"

# The study's CNNs (its cnn section), in its order.
STUDY_CNNS = (
    "1cnn-32-2fc-128", "1cnn-32-3fc-256-128", "1cnn-64-2fc-256",
    "2cnn-32-64-2fc-128", "2cnn-32-64-3fc-256-128", "2cnn-64-128-2fc-256", "2cnn-64-128-4fc-256-256-128",
    "3cnn-32-64-128-2fc-128", "3cnn-32-64-128-3fc-256-128", "3cnn-32-64-128-4fc-256-256-128",
    "3cnn-32-64-128-5fc-256-256-256-128", "3cnn-32-32-64-3fc-128-128", "3cnn-64-64-128-2fc-256",
    "3cnn-64-128-128-5fc-256-256-128-128",
)
REFERENCE_CNN = "3cnn-32-64-128-2fc-128"
# The CNN whose activations the study varied; its later sections and final models build on it.
ACTIVATION_BASE = "3cnn-32-64-128-5fc-256-256-256-128"
# The study's names of its variants -> the options they add to a base CNN.
STUDY_ACTIVATIONS = {
    "3cnn5fc-LeakyReLU": "",
    "3cnn5fc-ELU-1alpha": "act=elu1",
    "3cnn5fc-ELU-0.5alpha": "act=elu0.5",
    "3cnn5fc-ShiftedReLU0.3": "act=shiftedrelu0.3",
    "3cnn5fc-Swish": "act=swish",
    "3cnn-LeakyReLU-5fc-Maxout": "fc=maxout2",
    "3cnn5fc-ELU-ShiftedReLU0.3-intercalado": "act=elu1,shiftedrelu0.3",
    "3cnn5fc-LeakyReLU-Swish-intercalado": "act=leakyrelu,swish",
}
STUDY_REGULARIZATION = {
    "weight_decay-1e-05": "l2=1e-05",
    "weight_decay-0.0001": "l2=0.0001",
    "weight_decay-0.0005": "l2=0.0005",
    "weight_decay-0.001": "l2=0.001",
    "weight_decay-0.005": "l2=0.005",
    "weight_decay-0.01": "l2=0.01",
    "weight_decay-0.1": "l2=0.1",
    "time_shift-0.15": "shift=0.15",
    "time_shift-0.2": "shift=0.2",
    "dropout0.1cnn-0.2fc": "dropout=0.1,0.2",
    "dropout0.3cnn-0.5fc": "dropout=0.3,0.5",
    "dropout0.2cnn-0.4fc": "dropout=0.2,0.4",
}


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


PRESETS = (
    *(Preset(name, name, "2-D CNN on the log-mel spectrogram (3x3 convs, LeakyReLU, 2x2 max pooling), then dense layers")
      for name in STUDY_CNNS),
    *(Preset(name, with_options(ACTIVATION_BASE, options), f"{ACTIVATION_BASE} with activations {options or 'LeakyReLU'}")
      for name, options in STUDY_ACTIVATIONS.items()),
    *(Preset(name, with_options(ACTIVATION_BASE, options), f"{ACTIVATION_BASE} with {options}")
      for name, options in STUDY_REGULARIZATION.items()),
)
FAMILY = Family("cnn", re.compile(f"^{PATTERN}$"), "3cnn-32-64-128-2fc-128", parse, render, check, presets=PRESETS)
