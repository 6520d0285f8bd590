"""Model zoo: ``zoo.build(name, **overrides)`` and ``zoo.names(pattern)``.

The names below load on first use, so ``import zoo`` (and ``zoo.presets``) stay cheap for
command lines that only parse their flags; building a model loads Keras.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"ModelConfig": "zoo.config", "parse_name": "zoo.config", "build": "zoo.registry",
            "build_model": "zoo.registry", "load_model": "zoo.registry", "configure": "zoo.registry", "describe": "zoo.registry",
            "names": "zoo.registry", "resolve": "zoo.registry"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
