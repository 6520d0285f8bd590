"""1-D CNNs on the raw waveform: ``wave-3cnn-32-64-128-2fc-128`` (the study's waveform input).

A strided stem (a learned filter bank), then conv blocks (kernel 3, activation, max pooling 4),
flatten and the dense layers of the CNN family; the same name grammar as ``cnn`` after ``wave-``.
"""

from __future__ import annotations

import re

from zoo.families import cnn
from zoo.families.base import Family, Preset


def render(config) -> str:
    return "wave-" + cnn.render(config)


FAMILY = Family(
    "wave", re.compile(f"^wave-{cnn.PATTERN}$"), "wave-3cnn-32-64-128-2fc-128", cnn.parse, render, cnn.check,
    presets=tuple(Preset(f"wave-{base}", f"wave-{base}",
                         "1-D CNN on the raw waveform (strided stem, kernel-3 convs, max pooling 4)")
                  for base in (cnn.REFERENCE_CNN, cnn.ACTIVATION_BASE)),
    spectrogram=False,
)
