"""The model registry: readable names -> uncompiled Keras models.

``build(name, **overrides)`` accepts every registered name and any name of the grammar in
``zoo.config``; ``names(pattern)`` lists the registered ones. The study's sections are
listed here as data, and the search spaces in ``tuning`` use the same lists.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch

import keras

from zoo.builders import build_model
from zoo.config import ModelConfig, parse_name

# The study's architectures, section by section.
STUDY_MLP = (
    "3fcLayers-512-256", "3fcLayers-1024-512", "3fcLayers-2048-1024",
    "4fcLayers-1024-512-256", "4fcLayers-1024-512-512", "4fcLayers-2048-1024-512",
    "5fcLayers-1024-512-256-256", "5fcLayers-2048-1024-512-256", "5fcLayers-2048-2048-1024-512",
)
STUDY_CNN = (
    "1cnn-32-2fc-128", "1cnn-32-3fc-256-128", "1cnn-64-2fc-256",
    "2cnn-32-64-2fc-128", "2cnn-32-64-3fc-256-128", "2cnn-64-128-2fc-256", "2cnn-64-128-4fc-256-256-128",
    "3cnn-32-64-128-2fc-128", "3cnn-32-64-128-3fc-256-128", "3cnn-32-64-128-4fc-256-256-128",
    "3cnn-32-64-128-5fc-256-256-256-128", "3cnn-32-32-64-3fc-128-128", "3cnn-64-64-128-2fc-256",
    "3cnn-64-128-128-5fc-256-256-128-128",
)
REFERENCE_CNN = "3cnn-32-64-128-2fc-128"
# The activation section varies the activations of this CNN; the regularization and
# input sections start from it as well (the study's final models are its variants).
ACTIVATION_BASE = "3cnn-32-64-128-5fc-256-256-256-128"
# Study name -> option suffix on ACTIVATION_BASE ("" = its default, LeakyReLU everywhere).
STUDY_ACTIVATIONS = {
    "3cnn5fc-LeakyReLU": "",
    "3cnn5fc-ELU-1alpha": "act=elu1",
    "3cnn5fc-ELU-0.5alpha": "act=elu0.5",
    "3cnn5fc-ShiftedReLU0.3": "act=shiftedrelu0.3",
    "3cnn5fc-Swish": "act=swish",
    "3cnn-LeakyReLU-5fc-Maxout": "fc=maxout2",
    "3cnn5fc-ELU-ShiftedReLU0.3-intercalado": "act=elu1,shiftedrelu0.3",
    "3cnn5fc-LeakyReLU-Swish-intercalado": "act=leakyrelu,swish",
}
STUDY_WEIGHT_DECAYS = (1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1)
STUDY_TIME_SHIFTS = (0.15, 0.2)
STUDY_DROPOUTS = ((0.1, 0.2), (0.3, 0.5), (0.2, 0.4))
STRONG_MODEL = "bncnn-32-64-128-256"


def _with_options(base: str, options: str) -> str:
    return f"{base}_{options}" if options else base


def regularization_variants(base: str = ACTIVATION_BASE) -> dict[str, str]:
    """The study's 12 regularization names -> canonical names on ``base``."""
    variants = {f"weight_decay-{wd:g}": _with_options(base, f"l2={wd:g}") for wd in STUDY_WEIGHT_DECAYS}
    variants.update({f"time_shift-{s:g}": _with_options(base, f"shift={s:g}") for s in STUDY_TIME_SHIFTS})
    variants.update({f"dropout{c:g}cnn-{f:g}fc": _with_options(base, f"dropout={c:g},{f:g}") for c, f in STUDY_DROPOUTS})
    return variants


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered name: the canonical name it stands for and a one-line description."""

    name: str
    canonical: str
    description: str


_REGISTRY: dict[str, Entry] = {}


def register(name: str, description: str, canonical: str | None = None) -> None:
    """Registers ``name`` (standing for ``canonical``, default itself) with a description."""
    canonical = canonical or name
    parse_name(canonical)  # a registered name must parse
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = Entry(name, canonical, description)


def names(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"3cnn*"``), in registry order."""
    return [name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern)]


def describe(name: str) -> str:
    """The one-line description of a registered name."""
    return _REGISTRY[name].description


def resolve(name: str) -> ModelConfig:
    """The configuration a (registered or grammatical) name stands for.

    Raises:
        ValueError: echoing the name, explaining the grammar and suggesting close names.
    """
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string. Received: name={name!r}")
    entry = _REGISTRY.get(name)
    try:
        return parse_name(entry.canonical if entry else name)
    except ValueError as error:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{error}.{hint}") from None


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


def _register_study() -> None:
    for name in STUDY_MLP:
        register(name, f"dense net on the flattened log-mel window: {name.split('-', 1)[1].replace('-', ', ')} hidden units")
    for name in STUDY_CNN:
        register(name, "2-D CNN on the log-mel spectrogram (3x3 convs, LeakyReLU, 2x2 max pooling), then dense layers")
    for name, options in STUDY_ACTIVATIONS.items():
        register(name, f"{ACTIVATION_BASE} with activations {options or 'LeakyReLU'}", _with_options(ACTIVATION_BASE, options))
    for name, canonical in regularization_variants().items():
        register(name, f"{ACTIVATION_BASE} with {canonical.split('_', 1)[1]}", canonical)
    for base in (REFERENCE_CNN, ACTIVATION_BASE):
        register(f"wave-{base}", "1-D CNN on the raw waveform (strided stem, kernel-3 convs, max pooling 4)")
    register(STRONG_MODEL, "batch-normalized 4-block CNN with global average+max pooling (~0.4 M weights)")


_register_study()
