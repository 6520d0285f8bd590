"""What a model family is: the :class:`Family` record and helpers for name parts."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: The ``ModelConfig.family`` value.
        pattern: Regular expression of the name's architecture part (before the options).
        syntax: One example of the pattern, for error messages.
        parse: Match of ``pattern`` -> ``ModelConfig`` fields (raises ValueError with a reason).
        render: Config -> the architecture part of its name.
        check: Config -> problems (empty when the config suits the family).
        features: ``(config, waveform after the time shift)`` -> features before the softmax.
        defaults: Fields whose default differs for this family (names omit default options).
    """

    name: str
    pattern: re.Pattern
    syntax: str
    parse: Callable[[re.Match], dict[str, Any]]
    render: Callable[["ModelConfig"], str]
    check: Callable[["ModelConfig"], list[str]]
    features: Callable[["ModelConfig", Any], Any]
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


def numbers(text: str) -> tuple[int, ...]:
    """``"-32-64"`` -> ``(32, 64)``."""
    return tuple(int(v) for v in text.split("-") if v)


def dashed(values) -> str:
    """``(32, 64)`` -> ``"-32-64"``."""
    return "".join(f"-{v}" for v in values)


def filters_family(name: str, blocks: tuple[int, int], block_word: str, features, defaults: dict[str, Any]) -> Family:
    """A family named ``<name>-F1-F2-...`` by its filters per block alone (``bncnn``, ``rescnn``)."""
    low, high = blocks

    def check(config) -> list[str]:
        if not low <= len(config.conv_filters) <= high:
            return [f"{name} has {low} to {high} {block_word}. Received: conv_filters={config.conv_filters}"]
        return []

    return Family(name, re.compile(rf"^{name}(?P<filters>(?:-\d+)+)$"), f"{name}-32-64-128-256",
                  parse=lambda match: {"conv_filters": numbers(match["filters"])},
                  render=lambda config: f"{name}{dashed(config.conv_filters)}", check=check, features=features,
                  defaults=defaults)
