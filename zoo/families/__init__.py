"""The model families' name grammar and presets, one module each, collected in one table.

A family owns the architecture part of a model name: its pattern, how a match becomes
:class:`zoo.config.ModelConfig` fields, how a config renders back to a name, what it checks,
its defaults and its registered names (presets). Its Keras builder is in ``zoo.builders``.
Adding a family is a module here and one in ``zoo.builders``, and a line in each table.
"""

from __future__ import annotations

from zoo.families import bncnn, cnn, dense, pretrained, rescnn, wave
from zoo.families.base import Family

FAMILIES: dict[str, Family] = {
    family.name: family for family in (
        dense.FAMILY, cnn.FAMILY, wave.FAMILY, bncnn.FAMILY, rescnn.FAMILY, pretrained.MUSICNN, pretrained.VGG,
        pretrained.EFFICIENTAT, pretrained.PANNS)
}
