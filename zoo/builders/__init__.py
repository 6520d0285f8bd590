"""The Keras side of the zoo: a config (or a name) -> an uncompiled ``keras.Model``.

Every model takes ``waveform`` ``[batch, samples]`` (float32, 22050 Hz), rolls it by the random
time shift and applies random recording conditions if asked (training only), runs its family's features (one module here per family of
``zoo.families``) and ends in a softmax named ``probabilities``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import keras

from data.config import window_samples

# The custom layers register themselves with Keras when imported: a saved model that holds
# them loads only once they are (see load_model).
from data.layers import RandomTimeShift, RecordingConditions
from zoo.builders import activations as _activations  # noqa: F401  (registers ShiftedReLU, Maxout)
from zoo.builders import bncnn, cnn, dense, pretrained, rescnn, wave
from zoo.builders.blocks import regularizer
from zoo.config import ModelConfig
from zoo.families import FAMILIES
from zoo.registry import configure

# Family name -> ``features(config, waveform after the time shift)``: the layers before the softmax.
BUILDERS: dict[str, Callable] = {
    "dense": dense.features, "cnn": cnn.features, "wave": wave.features, "bncnn": bncnn.features,
    "rescnn": rescnn.features, "musicnn": pretrained.features, "vgg": pretrained.features,
    "efficientat": pretrained.features, "panns": pretrained.features,
}


def build_model(config: ModelConfig, pretrained_weights: bool = True) -> keras.Model:
    """Builds the uncompiled model ``config`` describes.

    Args:
        config: The model's configuration.
        pretrained_weights: For a pretrained family, load the released weights (false: the
            architecture alone, randomly initialized, as a test of the architecture needs).
    """
    waveform = keras.Input((window_samples(config.window_seconds),), name="waveform")
    x = RandomTimeShift(config.time_shift, name="time_shift", dtype="float32")(waveform)
    if config.recording_augment:
        x = RecordingConditions(config.recording_augment, name="recording_conditions", dtype="float32")(x)
    if FAMILIES[config.family].pretrained:
        x = BUILDERS[config.family](config, x, load_weights=pretrained_weights)
    else:
        x = BUILDERS[config.family](config, x)
    # float32 softmax whatever the dtype policy: probabilities near 0 and 1 need its range.
    probabilities = keras.layers.Dense(config.n_genres, activation="softmax", kernel_regularizer=regularizer(config),
                                       name="probabilities", dtype="float32")(x)
    # Keras model names take fewer characters than file names (no "=" or ",").
    return keras.Model(waveform, probabilities, name=re.sub(r"[^A-Za-z0-9_.-]", "_", config.name))


def build(name: str, **overrides) -> keras.Model:
    """Builds the uncompiled model ``name`` with config fields replaced by ``overrides``.

    Args:
        name: A registered name (``zoo.names()``) or any name of the grammar (``zoo.config``).
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
