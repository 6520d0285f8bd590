"""The model registry: readable names -> uncompiled Keras models.

``build(name, **overrides)`` accepts every registered name (``zoo.presets``) and any name of
the grammar in ``zoo.config``; ``names(pattern)`` lists the registered ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import re

import keras

from data.layers import RandomTimeShift
from data.pipeline import window_samples
from zoo import blocks
from zoo.config import ModelConfig, parse_name
from zoo.families import FAMILIES
from zoo.presets import presets


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered name: the canonical name it stands for and a one-line description."""

    name: str
    canonical: str
    description: str


@functools.cache
def _registry() -> dict[str, Entry]:
    """The registered names, built on first use (not at import time); each must parse."""
    registry: dict[str, Entry] = {}
    for name, canonical, description in presets():
        parse_name(canonical)
        if name in registry:
            raise ValueError(f"model name {name!r} is registered twice")
        registry[name] = Entry(name, canonical, description)
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


def build(name: str, **overrides) -> keras.Model:
    """Builds the uncompiled model ``name`` with config fields replaced by ``overrides``.

    Args:
        name: A registered name (``names()``) or any name of the grammar (``zoo.config``).
        **overrides: Fields of :class:`zoo.config.ModelConfig`, e.g. ``window_seconds=1.5``,
            ``n_genres=4``, ``time_shift=0.2``, ``weight_decay=1e-4``, ``n_mels=64``.

    Returns:
        An uncompiled ``keras.Model`` from waveform ``[batch, samples]`` to probabilities.

    Raises:
        ValueError: for an unknown or malformed name, or an unknown or invalid override.
    """
    return build_model(configure(name, **overrides))


def load_model(path) -> keras.Model:
    """Loads a saved zoo model (``model.keras``).

    The custom layers it holds (time shift, log-mel, SpecAugment, activations) are registered
    with Keras by this module's imports, which ``keras.saving.load_model`` alone would miss.
    """
    return keras.saving.load_model(path)


def build_model(config: ModelConfig) -> keras.Model:
    """Builds the uncompiled model ``config`` describes.

    Every model takes ``waveform`` ``[batch, samples]`` (float32, 22050 Hz), rolls it by the
    random time shift (training only), runs its family's features and ends in a softmax named
    ``probabilities``.
    """
    waveform = keras.Input((window_samples(config.window_seconds),), name="waveform")
    x = RandomTimeShift(config.time_shift, name="time_shift", dtype="float32")(waveform)
    x = FAMILIES[config.family].features(config, x)
    # float32 softmax whatever the dtype policy: probabilities near 0 and 1 need its range.
    probabilities = keras.layers.Dense(config.n_genres, activation="softmax", kernel_regularizer=blocks.regularizer(config),
                                       name="probabilities", dtype="float32")(x)
    # Keras model names take fewer characters than file names (no "=" or ",").
    return keras.Model(waveform, probabilities, name=re.sub(r"[^A-Za-z0-9_.-]", "_", config.name))
