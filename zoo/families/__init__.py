"""The model families, one module each, collected in one table.

A family owns the architecture part of a model name: its pattern, how a match becomes
:class:`zoo.config.ModelConfig` fields, how a config renders back to a name, what it checks,
and the builder of the features between the front end and the softmax. Adding a family is
adding a module here and one line to ``FAMILIES``.
"""

from __future__ import annotations

from zoo.families import bncnn, cnn, dense, rescnn, wave
from zoo.families.base import Family

FAMILIES: dict[str, Family] = {
    family.name: family for family in (dense.FAMILY, cnn.FAMILY, wave.FAMILY, bncnn.FAMILY, rescnn.FAMILY)
}
