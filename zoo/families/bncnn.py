"""Batch-normalized CNN with global pooling: ``bncnn-32-64-128-256`` (2 to 6 conv blocks).

Why it should generalize better than the study's CNNs on a few hundred training clips:

* global average + max pooling over time and frequency replaces the flatten + dense layers
  that hold most of the study CNNs' millions of weights, so the model has ~0.4 M weights and
  cannot memorize positions; it answers "which patterns occur", wherever they occur;
* batch normalization after every convolution (and on the input) keeps training stable at
  higher learning rates and acts as a regularizer;
* a deeper stack sees longer time-frequency patterns (bars, chords) than 3 shallow blocks.
"""

from __future__ import annotations

from zoo.families.base import Preset, filters_family

# The global-pooling families use ReLU and dropout before the softmax unless the name says otherwise.
GLOBAL_POOL_DEFAULTS = {"conv_activation": ("relu",), "dense_activation": ("relu",), "dense_dropout": 0.3}
# The from-scratch model that did best on real music (docs/results.md).
FROM_SCRATCH = "bncnn-32-64-128-256"

FAMILY = filters_family("bncnn", (2, 6), "conv blocks", GLOBAL_POOL_DEFAULTS, presets=(
    Preset(FROM_SCRATCH, FROM_SCRATCH,
           "batch-normalized 4-block CNN with global average+max pooling (~0.4 M weights): "
           "few weights and no flatten, so it cannot memorize positions in the window"),
))
