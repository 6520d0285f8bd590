"""Pretrained music taggers with a new genre head: ``musicnn-msd``, ``musicnn-mtt``, ``vgg-msd``, ``vgg-mtt``.

The four taggers of musicnn 0.1.0 (Pons & Serra, 2019; weights read from its wheel by
``zoo.pretrained``), each trained on 50 tags of the Million Song Dataset (``msd``) or
MagnaTagATune (``mtt``), many of them genres. Their features were learned from far more music
than GTZAN holds, which is what carries over to other artists and recordings. A genre model
keeps the tagger up to its penultimate features (musicnn: 200-d; VGG: the 256-d flattened last
pooling), drops the tag layer and puts a new head on them. Options:

* ``train=head|backend|midend|all``: which layers train. ``head`` is a probe on frozen
  features; ``backend`` adds the pretrained layers after the pooling over time (VGG: its last
  conv block); ``midend`` adds musicnn's mid end (VGG: its last two blocks); ``all`` fine-tunes
  every pretrained convolution. Pretrained batch normalization always keeps its statistics
  (a few GTZAN batches would overwrite what millions of songs set).
* ``head=256`` (or ``head=256,128``): hidden layers of the head; by default it is one softmax layer.
* ``dropout=BACKBONE,HEAD``: the tagger's own dropout (musicnn 0.5 before its dense layer, VGG
  0.25 between blocks, as they were trained) and the head's.
* ``features=pooled`` (musicnn, ``train=head``): the head takes musicnn's pooled mid-end features
  (1506-d: max and mean over time, batch-normalized) instead of its 200-d penultimate layer.

Two taggers of a family side by side, ``musicnn-msd+musicnn-mtt``: both see the same log-mel, and
the head takes their features concatenated.

musicnn takes any window (it pools over time); the VGG takes at most 3 s (187 frames; shorter
windows are padded with silence).

Where the tagger is frozen up to a layer whose output does not change while the model trains
(:func:`frozen_features`), a training can compute that output once per clip and window and train
the rest on it (``training.features``).
"""

from __future__ import annotations

import re

from zoo.families.base import Family, Preset, dashed

# The weights' licence (they are read from the musicnn 0.1.0 wheel by zoo.pretrained).
LICENCE = "ISC; Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019 (musicnn 0.1.0)"
TAGGERS = {"musicnn": {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}, "vgg": {"msd": "MSD_vgg", "mtt": "MTT_vgg"}}
TRAINABLE = ("head", "backend", "midend", "all")
FEATURES = ("penultimate", "pooled")
# The layer of each tagger whose output stays fixed while the parts above it train (musicnn: its
# pooling over time, below its dense layer; VGG: its flattened last pooling, its penultimate features).
FROZEN_LAYERS = {"musicnn": "musicnn_time_pool", "vgg": "vgg_flatten"}
# How far each family may train with that layer still fixed.
FROZEN_BELOW = {"musicnn": ("head", "backend"), "vgg": ("head",)}
VGG_MAX_SECONDS = 3.0
# The tag sets, in the order of each tagger's outputs.
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock", "jazz",
    "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica",
    "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)
TAGS = {"msd": MSD_TAGS, "mtt": MTT_TAGS}
TAG_SETS = {"msd": "50 Million Song Dataset (last.fm) tags", "mtt": "50 MagnaTagATune tags"}


def tag_set(tagger: str) -> str:
    """``"MSD_musicnn"`` -> ``"msd"``."""
    return tagger.split("_")[0].lower()


def taggers(config) -> tuple[str, ...]:
    """The taggers of a pretrained model config, in order (``"MSD_musicnn+MTT_musicnn"`` -> both)."""
    return tuple(config.tagger.split("+")) if config.tagger else ()


def frozen_features(config) -> str | None:
    """The layer of ``config``'s tagger(s) whose output never changes while the model trains, or None.

    That output depends on the window alone: the tagger is frozen up to it (``train=head``, and
    ``backend`` for musicnn), and nothing random comes before it (no time shift, recording
    conditions or SpecAugment in the model).
    """
    family = config.family
    if family not in FROZEN_LAYERS or config.trainable not in FROZEN_BELOW[family]:
        return None
    if config.time_shift or config.recording_augment or any(config.spec_augment):
        return None
    return FROZEN_LAYERS[family]


def _family(name: str, defaults: dict, presets: tuple[Preset, ...]) -> Family:
    def check(config) -> list[str]:
        problems = []
        chosen = taggers(config)
        if not chosen or any(t not in TAGGERS[name].values() for t in chosen) or len(set(chosen)) != len(chosen):
            problems.append(f"{name} takes the tagger {' or '.join(TAGGERS[name].values())}, or both joined by '+'. "
                            f"Received: tagger={config.tagger!r}")
        if config.features == "pooled" and (name != "musicnn" or config.trainable != "head"):
            problems.append(f"features=pooled applies to musicnn with train=head (its dense layer is left out). "
                            f"Received: {name} with train={config.trainable}")
        if config.conv_filters:
            problems.append(f"{name} has no conv filters of its own. Received: conv_filters={config.conv_filters}")
        if name == "vgg" and config.window_seconds > VGG_MAX_SECONDS:
            problems.append(f"vgg takes windows of at most {VGG_MAX_SECONDS:g} s (187 frames); use musicnn for longer "
                            f"windows. Received: window_seconds={config.window_seconds:g}")
        return problems

    def render(config) -> str:
        return "+".join(f"{name}-{tag_set(tagger)}" for tagger in taggers(config))

    def parse(match) -> dict:
        chosen = [TAGGERS[name][match["tags"]]] + ([TAGGERS[name][match["tags2"]]] if match["tags2"] else [])
        return {"tagger": "+".join(chosen)}

    return Family(name, re.compile(rf"^{name}-(?P<tags>msd|mtt)(?:\+{name}-(?P<tags2>msd|mtt))?$"),
                  f"{name}-msd[+{name}-mtt]", parse=parse, render=render, check=check, defaults=defaults,
                  presets=presets, pretrained=True)


def _presets(name: str, architecture: str) -> tuple[Preset, ...]:
    return tuple(Preset(f"{name}-{tags}", f"{name}-{tags}", f"{architecture} pretrained on {TAG_SETS[tags]}, "
                        "fine-tuned with a new genre head")
                 for tags in ("msd", "mtt"))


MUSICNN = _family("musicnn", {"conv_dropout": 0.5, "dense_dropout": 0.5}, _presets(
    "musicnn", "musicnn (timbral and temporal filters over a 96-band log-mel, pooled over time)"))
VGG = _family("vgg", {"conv_dropout": 0.25, "dense_dropout": 0.5}, _presets("vgg", "VGG-like 5-block CNN (3-s input)"))


def render_head(units: tuple[int, ...]) -> str:
    """``(256, 128)`` -> ``"256,128"``."""
    return dashed(units)[1:].replace("-", ",")
