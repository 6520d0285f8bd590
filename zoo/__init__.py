"""Model zoo: ``zoo.build(name, **overrides)`` and ``zoo.names(pattern)``."""

from zoo.config import ModelConfig, parse_name
from zoo.registry import build, configure, describe, names, register, resolve

__all__ = ["ModelConfig", "build", "configure", "describe", "names", "parse_name", "register", "resolve"]
