"""Pretrained audio backbones with a new genre head: musicnn and VGG taggers, EfficientAT, PANNs' CNN14.

* ``musicnn-msd``, ``musicnn-mtt``, ``vgg-msd``, ``vgg-mtt``: the four music taggers of musicnn 0.1.0
  (Pons & Serra, 2019; weights read from its wheel by ``zoo.pretrained``), trained on 50 tags of the
  Million Song Dataset (``msd``) or MagnaTagATune (``mtt``), many of them genres;
* ``efficientat-mn04`` ... ``efficientat-mn40``, ``efficientat-mn40-ext``: EfficientAT's MobileNetV3
  audio taggers (Schmid et al., 2023), widths 0.4 to 4.0, trained on AudioSet's 527 classes;
* ``panns-cnn14`` (32 kHz) and ``panns-cnn14-16k``: PANNs' CNN14 (Kong et al., 2020), AudioSet.

The latter two families' weights are their authors' released PyTorch checkpoints, read by
``zoo.checkpoints`` without PyTorch. Their features were learned from far more audio than GTZAN
holds, which is what carries over to other artists and recordings. A genre model keeps the
backbone up to its features and puts a new head on them. Options:

* ``train=head|backend|midend|all``: which layers train. ``head`` is a probe on frozen features;
  ``backend`` adds the backbone's dense layer after its pooling (VGG: its last conv block);
  ``midend`` adds the blocks before it (musicnn's mid end, the VGG's last two blocks,
  EfficientAT's last three blocks and last convolution, CNN14's last block); ``all`` fine-tunes
  every pretrained layer. Pretrained batch normalization always keeps its statistics (a few GTZAN
  batches would overwrite what millions of clips set).
* ``head=256`` (or ``head=256,128``): hidden layers of the head; by default it is one softmax layer.
* ``dropout=BACKBONE,HEAD``: the backbone's own dropout (musicnn 0.5 before its dense layer, VGG
  0.25 between blocks, CNN14 0.2 after each block, as they were trained; EfficientAT has none in
  its features) and the head's.
* ``features=penultimate|pooled``: the head takes the backbone's penultimate layer (the one before
  its tags: musicnn 200-d, VGG 256-d, EfficientAT mn04 512-d, CNN14 2048-d) or its pooled features
  below it (musicnn 1506-d, EfficientAT mn04 384-d, CNN14 2048-d), with ``train=head``.

Several backbones side by side, ``musicnn-msd+musicnn-mtt`` or across families
``musicnn-msd+efficientat-mn04``: each sees the audio through its own front end (the two musicnn
families share one), the head takes their features concatenated, and ``train=`` applies to each as
its family defines it.

musicnn, EfficientAT and CNN14 take any window (they pool over time); the VGG takes at most 3 s
(187 frames; shorter windows are padded with silence).

Where every backbone is frozen up to a layer whose output does not change while the model trains
(:func:`frozen_features`), a training computes that output once per clip and window and trains the
rest on it (``training.features``).
"""

from __future__ import annotations

import re

from zoo.audioset import AUDIOSET_CLASSES
from zoo.families.base import Family, Preset, dashed

# Each family's backbones: the name users type after the family -> the checkpoint (ModelConfig.tagger).
TAGGERS = {
    "musicnn": {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"},
    "vgg": {"msd": "MSD_vgg", "mtt": "MTT_vgg"},
    "efficientat": {"mn04": "mn04_as", "mn05": "mn05_as", "mn10": "mn10_as", "mn20": "mn20_as", "mn30": "mn30_as",
                    "mn40": "mn40_as", "mn40-ext": "mn40_as_ext"},
    "panns": {"cnn14": "Cnn14", "cnn14-16k": "Cnn14_16k"},
}
# A backbone's full name (``efficientat-mn04``) -> its checkpoint, and each checkpoint's family.
BACKBONES = {f"{family}-{short}": tagger for family, named in TAGGERS.items() for short, tagger in named.items()}
BACKBONE_NAMES = {tagger: name for name, tagger in BACKBONES.items()}
FAMILY_OF = {tagger: family for family, named in TAGGERS.items() for tagger in named.values()}
# The weights' licences: musicnn's are read from the musicnn 0.1.0 wheel (zoo.pretrained), the others
# are their authors' releases (zoo.checkpoints).
MUSICNN_LICENCE = "ISC; Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019 (musicnn 0.1.0)"
EFFICIENTAT_LICENCE = "MIT; Copyright (c) 2022 Florian Schmid (EfficientAT)"
PANNS_LICENCE = "MIT; PANNs (Kong et al., 2020), the audioset_tagging_cnn repository's LICENSE.MIT"
LICENCES = {"musicnn": MUSICNN_LICENCE, "vgg": MUSICNN_LICENCE, "efficientat": EFFICIENTAT_LICENCE,
            "panns": PANNS_LICENCE}
TRAINABLE = ("head", "backend", "midend", "all")
FEATURES = ("penultimate", "pooled")
# The layer of each family whose output stays fixed while the parts above it train (musicnn: its
# pooling over time, below its dense layer; VGG: its flattened last pooling, its penultimate features;
# EfficientAT and CNN14: their pooling of the last feature map, below their dense layer).
FROZEN_LAYERS = {"musicnn": "musicnn_time_pool", "vgg": "vgg_flatten", "efficientat": "efficientat_pool",
                 "panns": "panns_pool"}
# How far each family may train with that layer still fixed.
FROZEN_BELOW = {"musicnn": ("head", "backend"), "vgg": ("head",), "efficientat": ("head", "backend"),
                "panns": ("head", "backend")}
# The families whose pooled features a head may take (the VGG's penultimate features are its pooling).
POOLED = ("musicnn", "efficientat", "panns")
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
    """``"MSD_musicnn"`` -> ``"msd"``: the tag set of a musicnn or VGG tagger."""
    return tagger.split("_")[0].lower()


def tag_names(tagger: str) -> tuple[str, ...]:
    """The names of a backbone's own outputs, in order: 50 tags for musicnn and VGG, 527 AudioSet classes."""
    if FAMILY_OF[tagger] in ("musicnn", "vgg"):
        return TAGS[tag_set(tagger)]
    return AUDIOSET_CLASSES


def label(tagger: str) -> str:
    """A backbone's name as Keras names take it: ``"mn04_as"`` -> ``"efficientat_mn04"``."""
    return BACKBONE_NAMES[tagger].replace("-", "_")


def taggers(config) -> tuple[str, ...]:
    """The backbones of a pretrained model config, in order (``"MSD_musicnn+mn04_as"`` -> both)."""
    return tuple(config.tagger.split("+")) if config.tagger else ()


def backbone_config(config, tagger: str):
    """The config of ``config``'s backbone ``tagger`` alone. A backbone of another family than the first
    keeps its own family's dropout (the name's ``dropout=`` is the first family's)."""
    return with_backbones(config, (tagger,))


def with_backbones(config, chosen: tuple[str, ...]):
    """``config`` on the backbones ``chosen`` (checkpoint names, in order) instead of its own: the family is
    the first one's, with that family's own dropout if it changes."""
    family = FAMILY_OF[chosen[0]]
    changes = {"family": family, "tagger": "+".join(chosen)}
    if family != config.family:
        changes["conv_dropout"] = FAMILY_DEFAULTS[family]["conv_dropout"]
    return config.replace(**changes)


def frozen_layer(tagger: str) -> str:
    """The layer of ``tagger``'s backbone whose output stays fixed while the layers above it train."""
    return FROZEN_LAYERS[FAMILY_OF[tagger]]


def frozen_features(config) -> str | None:
    """The frozen layer of ``config``'s first backbone when every backbone's output there never changes
    while the model trains, else None.

    That output depends on the window alone: each backbone is frozen up to it (``train=head``, and
    ``backend`` where the family has a dense layer above it), and nothing random comes before it (no
    time shift, recording conditions or SpecAugment in the model).
    """
    chosen = taggers(config)
    if not chosen or any(config.trainable not in FROZEN_BELOW[FAMILY_OF.get(t, "")] for t in chosen
                         if FAMILY_OF.get(t)) or any(t not in FAMILY_OF for t in chosen):
        return None
    if config.time_shift or config.recording_augment or any(config.spec_augment):
        return None
    return frozen_layer(chosen[0])


def _family(name: str, defaults: dict, presets: tuple[Preset, ...]) -> Family:
    shorts = "|".join(re.escape(short) for short in sorted(TAGGERS[name], key=len, reverse=True))

    def check(config) -> list[str]:
        problems = []
        chosen = taggers(config)
        unknown = [t for t in chosen if t not in FAMILY_OF]
        if not chosen or unknown or FAMILY_OF[chosen[0]] != name:
            return [f"{name} takes one of its backbones ({', '.join(f'{name}-{s}' for s in TAGGERS[name])}), "
                    f"then any others joined by '+'. Received: tagger={config.tagger!r}"]
        if len(set(chosen)) != len(chosen):
            problems.append(f"a backbone is named twice. Received: tagger={config.tagger!r}")
        kinds = {FAMILY_OF[t] for t in chosen}
        if config.features == "pooled" and (config.trainable != "head" or not kinds <= set(POOLED)):
            problems.append(f"features=pooled applies with train=head to {', '.join(POOLED)} backbones (the VGG's "
                            f"penultimate features are its pooling). Received: {config.tagger} with "
                            f"train={config.trainable}")
        if config.conv_filters:
            problems.append(f"{name} has no conv filters of its own. Received: conv_filters={config.conv_filters}")
        if "vgg" in kinds and config.window_seconds > VGG_MAX_SECONDS:
            problems.append(f"vgg takes windows of at most {VGG_MAX_SECONDS:g} s (187 frames); use musicnn for longer "
                            f"windows. Received: window_seconds={config.window_seconds:g}")
        return problems

    def render(config) -> str:
        return "+".join(BACKBONE_NAMES.get(t, t) for t in taggers(config))

    def parse(match) -> dict:
        names = [match["first"], *match["rest"].split("+")[1:]]
        unknown = [n for n in names if n not in BACKBONES]
        if unknown:
            raise ValueError(f"unknown backbone {unknown[0]!r}; expected one of {', '.join(BACKBONES)}")
        return {"tagger": "+".join(BACKBONES[n] for n in names)}

    return Family(name, re.compile(rf"^(?P<first>{name}-(?:{shorts}))(?P<rest>(?:\+[a-z0-9-]+)*)$"),
                  f"{name}-{next(iter(TAGGERS[name]))}[+other backbones]", parse=parse, render=render, check=check,
                  defaults=defaults, presets=presets, pretrained=True)


def _presets(name: str, describe) -> tuple[Preset, ...]:
    return tuple(Preset(f"{name}-{short}", f"{name}-{short}", describe(short) + ", with a new genre head")
                 for short in TAGGERS[name])


# Each family's dropout: its backbone's own (as it was trained), and the head's.
FAMILY_DEFAULTS = {"musicnn": {"conv_dropout": 0.5, "dense_dropout": 0.5},
                   "vgg": {"conv_dropout": 0.25, "dense_dropout": 0.5},
                   "efficientat": {"conv_dropout": 0.0, "dense_dropout": 0.5},
                   "panns": {"conv_dropout": 0.2, "dense_dropout": 0.5}}
MUSICNN = _family("musicnn", FAMILY_DEFAULTS["musicnn"], _presets(
    "musicnn", lambda tags: "musicnn (timbral and temporal filters over a 96-band log-mel, pooled over time) "
                            f"pretrained on {TAG_SETS[tags]}"))
VGG = _family("vgg", FAMILY_DEFAULTS["vgg"], _presets(
    "vgg", lambda tags: f"VGG-like 5-block CNN (3-s input) pretrained on {TAG_SETS[tags]}"))
EFFICIENTAT = _family("efficientat", FAMILY_DEFAULTS["efficientat"], _presets(
    "efficientat", lambda short: f"EfficientAT MobileNetV3 {short} (width {int(short[2:4]) / 10:g}"
                                 f"{', extended training' if short.endswith('ext') else ''}) pretrained on AudioSet"))
PANNS = _family("panns", FAMILY_DEFAULTS["panns"], _presets(
    "panns", lambda short: f"PANNs CNN14 ({'16' if short.endswith('16k') else '32'} kHz) pretrained on AudioSet"))


def render_head(units: tuple[int, ...]) -> str:
    """``(256, 128)`` -> ``"256,128"``."""
    return dashed(units)[1:].replace("-", ",")
