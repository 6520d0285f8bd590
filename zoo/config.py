"""Model names <-> :class:`ModelConfig`.

Canonical grammar (the study's architecture names, plus options)::

    NAME    := ARCH ("_" OPTION)*
    ARCH    := Dfc "Layers" ("-" UNITS){D-1}                 dense net, D = 3..5 layers
             | ["wave-"] C "cnn" ("-" FILTERS){C} "-" D "fc" ("-" UNITS){D-1}
                                                            CNN, C = 1..3 conv blocks, D = 1..5 dense
                                                            layers; "wave-": 1-D convs on the waveform
             | "bncnn" ("-" FILTERS){2..6}                   batch-normalized CNN, global pooling
    OPTION  := "act=" ACTS | "conv=" ACTS | "fc=" ACTS       activations (both parts / conv / dense)
             | "l2=" FLOAT                                  L2 weight decay on every kernel
             | "dropout=" FLOAT "," FLOAT                   dropout after conv blocks, dense layers
             | "shift=" FLOAT                               random time shift, fraction of the window
    ACTS    := SPEC ("," SPEC)*                             several: alternate layer by layer
    SPEC    := see zoo.activations (relu, leakyrelu0.01, elu1, shiftedrelu0.3, swish, maxout2)

Examples: ``4fcLayers-1024-512-512``, ``3cnn-32-64-128-2fc-128``,
``3cnn-32-64-128-5fc-256-256-256-128_act=elu1,shiftedrelu0.3``,
``wave-3cnn-32-64-128-2fc-128_dropout=0.1,0.2``. The study's own names for its variants
(``3cnn5fc-ELU-1alpha``, ``weight_decay-1e-05``, ...) are aliases, see ``zoo.registry``.
"""

from __future__ import annotations

import dataclasses
import re

from data.catalogue import GTZAN_GENRES
from zoo.activations import parse_activation

FAMILIES = ("dense", "cnn", "wave", "bncnn")
DEFAULT_ACTIVATION = "leakyrelu"
GRAMMAR_HELP = (
    "names look like 4fcLayers-1024-512-512 (3 to 5 dense layers), 3cnn-32-64-128-2fc-128 "
    "(1 to 3 conv blocks, 1 to 5 dense layers), wave-3cnn-32-64-128-2fc-128 (waveform input) or "
    "bncnn-32-64-128-256, optionally followed by _act=elu1, _conv=..., _fc=maxout2, _l2=1e-05, "
    "_dropout=0.1,0.2, _shift=0.15"
)

# Per-family defaults that differ from the dataclass defaults; names omit default options.
FAMILY_DEFAULTS: dict[str, dict] = {
    "bncnn": {"conv_activation": ("relu",), "dense_activation": ("relu",), "dense_dropout": 0.3},
}

_DENSE = re.compile(r"^(?P<layers>\d+)fcLayers(?P<units>(?:-\d+)*)$")
_CNN = re.compile(r"^(?P<wave>wave-)?(?P<blocks>\d+)cnn(?P<filters>(?:-\d+)+)-(?P<layers>\d+)fc(?P<units>(?:-\d+)*)$")
_BNCNN = re.compile(r"^bncnn(?P<filters>(?:-\d+)+)$")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything a builder needs; the name's part plus the input and output settings.

    Attributes:
        family: ``"dense"``, ``"cnn"`` (2-D convs on the log-mel spectrogram), ``"wave"``
            (1-D convs on the waveform) or ``"bncnn"`` (batch-normalized CNN).
        conv_filters: Filters of each conv block.
        dense_units: Sizes of the hidden dense layers (the output layer is not listed).
        conv_activation: Activation specs cycled over the conv blocks.
        dense_activation: Activation specs cycled over the hidden dense layers.
        weight_decay: PyTorch-style weight decay on every kernel (adds
            ``weight_decay / 2 * sum(w ** 2)`` to the loss, i.e. ``weight_decay * w`` to the gradient).
        conv_dropout: Dropout rate after each conv block.
        dense_dropout: Dropout rate after each hidden dense layer.
        time_shift: Largest random time shift in training, as a fraction of the window.
        window_seconds: Input length in seconds at 22050 Hz.
        n_genres: Number of output classes.
        n_fft: Spectrogram FFT length (spectrogram models).
        hop_length: Spectrogram hop in samples.
        n_mels: Mel bands.
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
    window_seconds: float = 3.0
    n_genres: int = len(GTZAN_GENRES)
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64

    def __post_init__(self):
        problems = []
        if self.family not in FAMILIES:
            problems.append(f"family must be one of {FAMILIES}. Received: family={self.family!r}")
        if self.family in ("cnn", "wave") and not 1 <= len(self.conv_filters) <= 3:
            problems.append(f"a CNN has 1 to 3 conv blocks. Received: conv_filters={self.conv_filters}")
        if self.family == "bncnn" and not 2 <= len(self.conv_filters) <= 6:
            problems.append(f"bncnn has 2 to 6 conv blocks. Received: conv_filters={self.conv_filters}")
        if self.family == "dense" and not 2 <= len(self.dense_units) <= 4:
            problems.append(f"a dense net has 3 to 5 layers (2 to 4 hidden). Received: dense_units={self.dense_units}")
        if self.family in ("cnn", "wave") and len(self.dense_units) > 4:
            problems.append(f"a CNN has 1 to 5 dense layers (0 to 4 hidden). Received: dense_units={self.dense_units}")
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
        for field in ("conv_dropout", "dense_dropout"):
            if not 0.0 <= getattr(self, field) < 1.0:
                problems.append(f"{field} must be in [0, 1). Received: {field}={getattr(self, field)!r}")
        if not 0.0 <= self.time_shift < 1.0:
            problems.append(f"time_shift must be in [0, 1). Received: time_shift={self.time_shift!r}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be non-negative. Received: weight_decay={self.weight_decay!r}")
        if self.window_seconds <= 0 or self.n_genres < 2:
            problems.append(
                f"window_seconds must be positive and n_genres at least 2. "
                f"Received: window_seconds={self.window_seconds!r}, n_genres={self.n_genres!r}"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def name(self) -> str:
        """The canonical name of the architecture and its options (not of window or output size)."""
        units = "".join(f"-{u}" for u in self.dense_units)
        filters = "".join(f"-{f}" for f in self.conv_filters)
        if self.family == "dense":
            arch = f"{len(self.dense_units) + 1}fcLayers{units}"
        elif self.family == "bncnn":
            arch = f"bncnn{filters}"
        else:
            prefix = "wave-" if self.family == "wave" else ""
            arch = f"{prefix}{len(self.conv_filters)}cnn{filters}-{len(self.dense_units) + 1}fc{units}"
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        defaults.update(FAMILY_DEFAULTS.get(self.family, {}))
        differs = lambda field: getattr(self, field) != defaults[field]  # noqa: E731
        options = []
        if self.conv_activation == self.dense_activation and differs("conv_activation"):
            options.append("act=" + ",".join(self.conv_activation))
        else:
            if differs("conv_activation"):
                options.append("conv=" + ",".join(self.conv_activation))
            if differs("dense_activation"):
                options.append("fc=" + ",".join(self.dense_activation))
        if differs("weight_decay"):
            options.append(f"l2={self.weight_decay:g}")
        if differs("conv_dropout") or differs("dense_dropout"):
            options.append(f"dropout={self.conv_dropout:g},{self.dense_dropout:g}")
        if differs("time_shift"):
            options.append(f"shift={self.time_shift:g}")
        return "_".join([arch, *options])


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split("-") if v)


def parse_name(name: str) -> ModelConfig:
    """Parses a canonical model name (see the module docstring).

    Raises:
        ValueError: if the name does not follow the grammar; the message echoes it.
    """
    arch, *options = name.split("_")
    fields: dict = {}
    if match := _DENSE.match(arch):
        units = _numbers(match["units"])
        if int(match["layers"]) != len(units) + 1:
            raise ValueError(f"{name!r}: {match['layers']}fcLayers needs {int(match['layers']) - 1} hidden sizes, got {len(units)}")
        fields.update(family="dense", dense_units=units)
    elif match := _CNN.match(arch):
        filters, units = _numbers(match["filters"]), _numbers(match["units"])
        if int(match["blocks"]) != len(filters) or int(match["layers"]) != len(units) + 1:
            raise ValueError(
                f"{name!r}: {match['blocks']}cnn needs {match['blocks']} filter counts and "
                f"{match['layers']}fc needs {int(match['layers']) - 1} hidden sizes"
            )
        fields.update(family="wave" if match["wave"] else "cnn", conv_filters=filters, dense_units=units)
    elif match := _BNCNN.match(arch):
        fields.update(family="bncnn", conv_filters=_numbers(match["filters"]), **FAMILY_DEFAULTS["bncnn"])
    else:
        raise ValueError(f"unknown model name {name!r}: {GRAMMAR_HELP}")
    for option in options:
        key, _, value = option.partition("=")
        try:
            if key in ("act", "conv", "fc"):
                specs = tuple(value.split(","))
                for spec in specs:
                    parse_activation(spec)
                if key in ("act", "conv"):
                    fields["conv_activation"] = specs
                if key in ("act", "fc"):
                    fields["dense_activation"] = specs
            elif key == "l2":
                fields["weight_decay"] = float(value)
            elif key == "dropout":
                conv, dense = value.split(",")
                fields.update(conv_dropout=float(conv), dense_dropout=float(dense))
            elif key == "shift":
                fields["time_shift"] = float(value)
            else:
                raise ValueError(f"unknown option {key!r}")
        except ValueError as error:
            raise ValueError(f"bad option {option!r} in model name {name!r} ({error}): {GRAMMAR_HELP}") from None
    try:
        return ModelConfig(**fields)
    except ValueError as error:
        raise ValueError(f"model name {name!r}: {error}") from None
