"""The model registry: readable names -> :class:`zoo.config.ModelConfig`, without Keras.

``resolve(name)`` accepts every registered name (the families' presets, ``zoo.families``) and
any name of the grammar in ``zoo.config``; ``configure(name, **overrides)`` applies overrides;
``names(pattern)`` lists the registered ones. ``zoo.build`` (``zoo.builders``) turns a name or
a config into an uncompiled Keras model.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools

from zoo.config import ModelConfig, parse_name
from zoo.families import FAMILIES


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered name: the canonical name it stands for, a one-line description and its family."""

    name: str
    canonical: str
    description: str
    family: str


@functools.cache
def _registry() -> dict[str, Entry]:
    """The registered names, built on first use (not at import time); each must parse."""
    registry: dict[str, Entry] = {}
    for family in FAMILIES.values():
        for preset in family.presets:
            parse_name(preset.canonical)
            if preset.name in registry:
                raise ValueError(f"model name {preset.name!r} is registered twice")
            registry[preset.name] = Entry(preset.name, preset.canonical, preset.description, family.name)
    return registry


def names(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"3cnn*"``), in registry order."""
    return [name for name in _registry() if fnmatch.fnmatchcase(name, pattern)]


def describe(name: str) -> str:
    """The one-line description of a registered name."""
    return _registry()[name].description


def resolve(name: str) -> ModelConfig:
    """The configuration a (registered or grammatical) name stands for.

    Raises:
        ValueError: echoing the name, explaining the grammar and suggesting close names.
    """
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string. Received: name={name!r}")
    entry = _registry().get(name)
    try:
        return parse_name(entry.canonical if entry else name)
    except ValueError as error:
        close = difflib.get_close_matches(name, list(_registry()), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{error}.{hint}") from None


def configure(name: str, **overrides) -> ModelConfig:
    """The configuration of ``name`` with ``overrides`` applied (see :func:`build`)."""
    config = resolve(name)
    accepted = [f.name for f in dataclasses.fields(ModelConfig)]
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(f"unknown override(s) {unknown} for model {name!r}; accepted: {', '.join(accepted)}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    try:
        return dataclasses.replace(config, **overrides)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bad override for model {name!r}: {error}") from None
