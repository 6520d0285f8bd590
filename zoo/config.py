"""Model names <-> :class:`ModelConfig`.

Grammar::

    NAME    := ARCH ("_" OPTION)*
    ARCH    := one family's pattern (see zoo.families):
               4fcLayers-1024-512-512          dense net, 3 to 5 layers
               3cnn-32-64-128-2fc-128          2-D CNN, 1 to 3 conv blocks, 1 to 5 dense layers
               wave-3cnn-32-64-128-2fc-128     1-D CNN on the raw waveform
               bncnn-32-64-128-256             batch-normalized CNN, global pooling
               rescnn-32-64-128-256            residual short-chunk CNN, global pooling
               musicnn-msd, musicnn-mtt        pretrained musicnn taggers with a genre head
               vgg-msd, vgg-mtt                pretrained VGG-like taggers (3-s input)
               efficientat-mn04 ... -mn40-ext  pretrained EfficientAT MobileNets (AudioSet)
               panns-cnn14, panns-cnn14-16k    pretrained PANNs CNN14 (AudioSet)
               musicnn-msd+efficientat-mn04    several backbones, features side by side
    OPTION  := "act=" ACTS | "conv=" ACTS | "fc=" ACTS       activations (both parts / conv / dense)
             | "l2=" FLOAT                                  L2 weight decay on every kernel
             | "dropout=" FLOAT "," FLOAT                   dropout after conv blocks, dense layers
             | "shift=" FLOAT                               random time shift, fraction of the window
             | "specaug=" INT "," INT                       SpecAugment: largest frequency-mask width
                                                            (bands) and time-mask width (frames)
             | "rec=" FLOAT                                 random recording conditions in training
                                                            (band limit, EQ tilt, gain, noise): the
                                                            chance of each per window
             | "train=" ("head"|"backend"|"midend"|"all")   pretrained models: which layers train
             | "head=" INT ("," INT)*                       pretrained models: hidden head layers
             | "features=" ("penultimate"|"pooled")         musicnn with train=head: the head's input
    ACTS    := SPEC ("," SPEC)*                             several: alternate layer by layer
    SPEC    := see zoo.activations (relu, leakyrelu0.01, elu1, shiftedrelu0.3, swish, maxout2)

Examples: ``4fcLayers-1024-512-512``, ``3cnn-32-64-128-5fc-256-256-256-128_act=elu1,shiftedrelu0.3``,
``wave-3cnn-32-64-128-2fc-128_dropout=0.1,0.2``, ``rescnn-32-64-128-256_specaug=8,16``,
``musicnn-msd_train=head``, ``musicnn-msd_train=midend_head=256_rec=0.5``,
``musicnn-msd+musicnn-mtt_train=head_features=pooled``, ``musicnn-msd+efficientat-mn04_train=head``. For the pretrained
families ``dropout=`` is the tagger's own dropout and the head's (``zoo.families.pretrained``). Registered
names (the study's own names of its variants, ...) are the families' presets (``zoo.families``).
Nothing here imports Keras: names and configs load in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

from data.catalogue import GTZAN_GENRES
from data.config import DictConfig, check_window_seconds
from data.errors import install_extra
from zoo.activations import parse_activation
from zoo.families import FAMILIES
from zoo.families.pretrained import FEATURES, TRAINABLE, render_head

DEFAULT_ACTIVATION = "leakyrelu"
# The Keras backends the zoo runs on (``KERAS_BACKEND``), each with the package it needs.
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
GRAMMAR_HELP = (
    "names look like " + ", ".join(family.syntax for family in FAMILIES.values())
    + ", optionally followed by _act=elu1, _conv=..., _fc=maxout2, _l2=1e-05, _dropout=0.1,0.2, _shift=0.15, "
    "_specaug=8,16, _rec=0.5 (and for the pretrained backbones _train=head|backend|midend|all, _head=256, "
    "_features=pooled)"
)
PRETRAINED_OPTIONS = ("train", "head", "features")


@dataclasses.dataclass(frozen=True)
class ModelConfig(DictConfig):
    """Everything a builder needs: the name's parts plus the input and output settings.

    Attributes:
        family: A key of ``zoo.families.FAMILIES``.
        conv_filters: Filters of each conv block.
        dense_units: Sizes of the hidden dense layers (the output layer is not listed).
        conv_activation: Activation specs cycled over the conv blocks.
        dense_activation: Activation specs cycled over the hidden dense layers.
        weight_decay: PyTorch-style weight decay on every kernel (adds
            ``weight_decay / 2 * sum(w ** 2)`` to the loss, i.e. ``weight_decay * w`` to the gradient).
        conv_dropout: Dropout rate after each conv block.
        dense_dropout: Dropout rate after each hidden dense layer (before the softmax for
            the global-pooling families).
        time_shift: Largest random time shift in training, as a fraction of the window.
        spec_augment: Largest (frequency, time) mask widths of SpecAugment in training, in
            bands and frames; ``(0, 0)`` disables it. Spectrogram families only.
        window_seconds: Input length in seconds at 22050 Hz.
        n_genres: Number of output classes.
        n_fft: Spectrogram FFT length (spectrogram models).
        hop_length: Spectrogram hop in samples.
        n_mels: Mel bands.
        recording_augment: Chance of each random recording condition (band limit, EQ tilt,
            gain, noise; ``data.layers.RecordingConditions``) per training window; 0 disables them.
        tagger: The pretrained tagger of a pretrained family (``MSD_musicnn``, ...), else ``""``.
        trainable: Which layers of a pretrained model train: ``head``, ``backend``, ``midend``
            or ``all`` (``zoo.families.pretrained``); ``all`` for every other family.
        features: What a pretrained model's head takes: the tagger's ``penultimate`` features,
            or musicnn's ``pooled`` mid-end features (``zoo.families.pretrained``).
    """

    family: str
    conv_filters: tuple[int, ...] = ()
    dense_units: tuple[int, ...] = ()
    conv_activation: tuple[str, ...] = (DEFAULT_ACTIVATION,)
    dense_activation: tuple[str, ...] = (DEFAULT_ACTIVATION,)
    weight_decay: float = 0.0
    conv_dropout: float = 0.0
    dense_dropout: float = 0.0
    time_shift: float = 0.0
    spec_augment: tuple[int, int] = (0, 0)
    window_seconds: float = 3.0
    n_genres: int = len(GTZAN_GENRES)
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    recording_augment: float = 0.0
    tagger: str = ""
    trainable: str = "all"
    features: str = "penultimate"

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {tuple(FAMILIES)}. Received: family={self.family!r}")
        problems = FAMILIES[self.family].check(self)
        if any(int(v) != v or v < 1 for v in (*self.conv_filters, *self.dense_units)):
            problems.append(f"filters and units must be positive integers. Received: {self.conv_filters}, {self.dense_units}")
        for field in ("conv_activation", "dense_activation"):
            specs = getattr(self, field)
            if not specs:
                problems.append(f"{field} needs at least one activation")
            for spec in specs:
                try:
                    kind, _ = parse_activation(spec)
                except ValueError as error:
                    problems.append(str(error))
                    continue
                if kind == "maxout" and field == "conv_activation":
                    problems.append(f"maxout is for dense layers only. Received: conv_activation={specs}")
        if self.trainable not in TRAINABLE:
            problems.append(f"trainable must be one of {', '.join(TRAINABLE)}. Received: trainable={self.trainable!r}")
        elif self.trainable != "all" and not FAMILIES[self.family].pretrained:
            problems.append(f"train={self.trainable} applies to pretrained models (musicnn-*, vgg-*, efficientat-*, "
                            f"panns-*), not to {self.family}")
        if self.features not in FEATURES:
            problems.append(f"features must be one of {', '.join(FEATURES)}. Received: features={self.features!r}")
        if self.tagger and not FAMILIES[self.family].pretrained:
            problems.append(f"tagger applies to pretrained models, not to {self.family}. Received: tagger={self.tagger!r}")
        if FAMILIES[self.family].pretrained and (self.n_fft, self.hop_length, self.n_mels) != (1024, 512, 64):
            problems.append("a pretrained model's spectrogram is fixed (the one its weights were trained on); n_fft, "
                            "hop_length and n_mels cannot be changed")
        if not 0.0 <= self.recording_augment <= 1.0:
            problems.append(f"recording_augment must be in [0, 1]. Received: recording_augment={self.recording_augment!r}")
        for field in ("conv_dropout", "dense_dropout", "time_shift"):
            if not 0.0 <= getattr(self, field) < 1.0:
                problems.append(f"{field} must be in [0, 1). Received: {field}={getattr(self, field)!r}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be non-negative. Received: weight_decay={self.weight_decay!r}")
        if len(self.spec_augment) != 2 or any(int(v) != v or v < 0 for v in self.spec_augment):
            problems.append(f"spec_augment must be two non-negative integers. Received: spec_augment={self.spec_augment!r}")
        elif any(self.spec_augment) and not FAMILIES[self.family].spectrogram:
            problems.append(f"spec_augment applies to spectrogram models, not to {self.family} models")
        try:
            check_window_seconds(self.window_seconds)
        except ValueError as error:
            problems.append(str(error))
        if self.n_genres < 2:
            problems.append(f"n_genres must be at least 2. Received: n_genres={self.n_genres!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def default(self, field: str):
        """The value ``field`` takes when a name does not mention it (family defaults first)."""
        family_defaults = FAMILIES[self.family].defaults
        if field in family_defaults:
            return family_defaults[field]
        return next(f.default for f in dataclasses.fields(self) if f.name == field)

    @property
    def name(self) -> str:
        """The canonical name of the architecture and its options (not of window or output size)."""
        options = [f"{key}={value}" for key, _, render in OPTIONS if (value := render(self)) is not None]
        return "_".join([FAMILIES[self.family].render(self), *options])


def _differs(config: ModelConfig, *fields: str) -> bool:
    return any(getattr(config, f) != config.default(f) for f in fields)


def _render_activations(part: str) -> Callable[[ModelConfig], str | None]:
    def render(config: ModelConfig) -> str | None:
        same = config.conv_activation == config.dense_activation
        if part == "act":
            return ",".join(config.conv_activation) if same and _differs(config, "conv_activation") else None
        if same:
            return None
        field = "conv_activation" if part == "conv" else "dense_activation"
        return ",".join(getattr(config, field)) if _differs(config, field) else None

    return render


def _parse_activations(part: str) -> Callable[[str], dict]:
    def parse(value: str) -> dict:
        specs = tuple(value.split(","))
        for spec in specs:
            parse_activation(spec)
        fields = {"act": ("conv_activation", "dense_activation"), "conv": ("conv_activation",),
                  "fc": ("dense_activation",)}[part]
        return dict.fromkeys(fields, specs)

    return parse


def _pair(value: str, kind: type) -> tuple:
    first, second = value.split(",")
    return kind(first), kind(second)


# The options of the grammar: (key, value -> fields, config -> value or None when default).
OPTIONS: tuple[tuple[str, Callable[[str], dict], Callable[[ModelConfig], str | None]], ...] = (
    ("act", _parse_activations("act"), _render_activations("act")),
    ("conv", _parse_activations("conv"), _render_activations("conv")),
    ("fc", _parse_activations("fc"), _render_activations("fc")),
    ("l2", lambda v: {"weight_decay": float(v)},
     lambda c: f"{c.weight_decay:g}" if _differs(c, "weight_decay") else None),
    ("dropout", lambda v: dict(zip(("conv_dropout", "dense_dropout"), _pair(v, float))),
     lambda c: f"{c.conv_dropout:g},{c.dense_dropout:g}" if _differs(c, "conv_dropout", "dense_dropout") else None),
    ("shift", lambda v: {"time_shift": float(v)},
     lambda c: f"{c.time_shift:g}" if _differs(c, "time_shift") else None),
    ("specaug", lambda v: {"spec_augment": _pair(v, int)},
     lambda c: "{},{}".format(*c.spec_augment) if _differs(c, "spec_augment") else None),
    ("rec", lambda v: {"recording_augment": float(v)},
     lambda c: f"{c.recording_augment:g}" if _differs(c, "recording_augment") else None),
    ("train", lambda v: {"trainable": v}, lambda c: c.trainable if _differs(c, "trainable") else None),
    ("head", lambda v: {"dense_units": tuple(int(u) for u in v.split(","))},
     lambda c: render_head(c.dense_units) if FAMILIES[c.family].pretrained and c.dense_units else None),
    ("features", lambda v: {"features": v}, lambda c: c.features if _differs(c, "features") else None),
)


def parse_name(name: str) -> ModelConfig:
    """Parses a canonical model name (see the module docstring).

    Raises:
        ValueError: if the name does not follow the grammar; the message echoes it.
    """
    arch, *options = name.split("_")
    for family in FAMILIES.values():
        if match := family.pattern.match(arch):
            try:
                fields = {"family": family.name, **family.defaults, **family.parse(match)}
            except ValueError as error:
                raise ValueError(f"{name!r}: {error}") from None
            break
    else:
        raise ValueError(f"unknown model name {name!r}: {GRAMMAR_HELP}")
    parsers = {key: parse for key, parse, _ in OPTIONS}
    for option in options:
        key, _, value = option.partition("=")
        try:
            if key not in parsers:
                raise ValueError(f"unknown option {key!r}")
            if key in PRETRAINED_OPTIONS and not family.pretrained:
                raise ValueError(f"{key}= applies to pretrained models (musicnn-*, vgg-*, efficientat-*, panns-*)")
            fields.update(parsers[key](value))
        except ValueError as error:
            raise ValueError(f"bad option {option!r} in model name {name!r} ({error}): {GRAMMAR_HELP}") from None
    try:
        return ModelConfig(**fields)
    except ValueError as error:
        raise ValueError(f"model name {name!r}: {error}") from None


def check_backend_installed(backend: str) -> None:
    """Raises ``ValueError`` naming the package and how to install it if ``backend`` cannot run here."""
    package = BACKENDS[backend]
    if importlib.util.find_spec(package) is None:
        raise ValueError(f"the {backend} backend needs {package}, not installed: {install_extra(backend)}")


def configured_backend() -> str:
    """The Keras backend a process started now runs, read as Keras reads it but without importing it:
    ``$KERAS_BACKEND``, else ``backend`` in ``$KERAS_HOME/keras.json`` (``~/.keras``), else TensorFlow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"
