"""Residual short-chunk CNN: ``rescnn-32-64-128-256`` (2 to 8 residual blocks).

The kind of model that music-tagging work found strongest on 2-4 s chunks (Won et al., 2020,
"short-chunk ResNet"): each block is two 3x3 convolutions with batch normalization and a
shortcut (a 1x1 convolution where the width changes), then 2x2 max pooling; global average +
max pooling and dropout before the softmax. Residual paths let the deeper stack train on
little data, and global pooling keeps the weights few (~1 M for the name above).
"""

from __future__ import annotations

from zoo.families.base import Preset, filters_family
from zoo.families.bncnn import GLOBAL_POOL_DEFAULTS

FAMILY = filters_family("rescnn", (2, 8), "residual blocks", GLOBAL_POOL_DEFAULTS, presets=(
    Preset("rescnn-32-64-128-256", "rescnn-32-64-128-256",
           "residual short-chunk CNN (two 3x3 convs + BN per block, shortcuts, global pooling; "
           "~1.2 M weights): the music-tagging design for 2-4 s chunks"),
))
