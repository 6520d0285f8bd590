"""What a model family is: the :class:`Family` record of its name grammar and presets, without Keras.

A family's builder (the Keras graph between the front end and the softmax) is in
``zoo.builders``; everything here is plain data and string handling, so names, configs and
``--help`` load without Keras. The ``config`` arguments below are ``zoo.config.ModelConfig``
values (not imported here: ``zoo.config`` imports the families).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Preset:
    """A registered model name.

    Attributes:
        name: The name users type (a canonical name, or an alias such as the study's own names).
        canonical: The name of the grammar it stands for.
        description: One line for ``zoo.list``.
    """

    name: str
    canonical: str
    description: str


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family's part of the name grammar.

    Attributes:
        name: The ``ModelConfig.family`` value.
        pattern: Regular expression of the name's architecture part (before the options).
        syntax: One example of the pattern, for error messages.
        parse: Match of ``pattern`` -> ``ModelConfig`` fields (raises ValueError with a reason).
        render: Config -> the architecture part of its name.
        check: Config -> problems (empty when the config suits the family).
        defaults: Fields whose default differs for this family (names omit default options).
        presets: The family's registered names, in listing order.
        spectrogram: Whether the family reads the log-mel spectrogram (SpecAugment applies).
        pretrained: Whether the family starts from pretrained weights (the ``train=`` and
            ``head=`` options apply).
    """

    name: str
    pattern: re.Pattern
    syntax: str
    parse: Callable[[re.Match], dict[str, Any]]
    render: Callable[[Any], str]
    check: Callable[[Any], list[str]]
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    presets: tuple[Preset, ...] = ()
    spectrogram: bool = True
    pretrained: bool = False


def numbers(text: str) -> tuple[int, ...]:
    """``"-32-64"`` -> ``(32, 64)``."""
    return tuple(int(v) for v in text.split("-") if v)


def dashed(values) -> str:
    """``(32, 64)`` -> ``"-32-64"``."""
    return "".join(f"-{v}" for v in values)


def with_options(base: str, options: str) -> str:
    """``base`` with an option suffix (``""`` adds nothing)."""
    return f"{base}_{options}" if options else base


def filters_family(name: str, blocks: tuple[int, int], block_word: str, defaults: dict[str, Any],
                   presets: tuple[Preset, ...]) -> Family:
    """A family named ``<name>-F1-F2-...`` by its filters per block alone (``bncnn``, ``rescnn``)."""
    low, high = blocks

    def check(config) -> list[str]:
        if not low <= len(config.conv_filters) <= high:
            return [f"{name} has {low} to {high} {block_word}. Received: conv_filters={config.conv_filters}"]
        return []

    return Family(name, re.compile(rf"^{name}(?P<filters>(?:-\d+)+)$"), f"{name}-32-64-128-256",
                  parse=lambda match: {"conv_filters": numbers(match["filters"])},
                  render=lambda config: f"{name}{dashed(config.conv_filters)}", check=check, defaults=defaults,
                  presets=presets)
