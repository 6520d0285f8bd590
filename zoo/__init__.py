"""Model zoo: ``zoo.build(name, **overrides)`` and ``zoo.names(pattern)``.

The names below load on first use, so ``import zoo`` stays cheap: names and configs
(``zoo.resolve``, ``zoo.configure``) load without Keras; building a model loads it.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"ModelConfig": "zoo.config", "parse_name": "zoo.config", "configure": "zoo.registry",
            "describe": "zoo.registry", "names": "zoo.registry", "resolve": "zoo.registry",
            "build": "zoo.builders", "build_model": "zoo.builders", "load_model": "zoo.builders"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
