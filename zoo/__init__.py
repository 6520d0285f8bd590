"""Model zoo: ``zoo.build(name, **overrides)`` and ``zoo.names(pattern)``."""

from zoo.config import ModelConfig, parse_name
from zoo.registry import build, build_model, configure, describe, names, resolve

__all__ = ["ModelConfig", "build", "build_model", "configure", "describe", "names", "parse_name", "resolve"]
