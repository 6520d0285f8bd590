"""Genre models on pretrained backbones (``zoo.families.pretrained``): musicnn, VGG, EfficientAT, CNN14.

Each backbone, up to the features its head takes, is a nested ``keras.Model`` named after its
family (``musicnn``, ``efficientat``, ...; ``musicnn_msd``, ``efficientat_mn04``, ... for several
side by side) holding the released weights; in front of it, its family's front end computed from
the 22050-Hz waveform inside the model (:func:`front_end`: musicnn's log-mel at the input's rate;
for the AudioSet backbones a resampler to their rate, then their own log-mel), and after it the new
head. The weights are loaded when the model is built; a saved model holds them.

Where every backbone is frozen up to a layer (``zoo.families.pretrained.frozen_features``),
:func:`feature_extractor` computes one backbone's output of that layer from the waveform and
:func:`feature_view` is the rest of the model on it, sharing the model's layers: training the view
trains the model.
"""

from __future__ import annotations

import keras
from keras import ops

from data.catalogue import SAMPLE_RATE
from data.config import window_samples
from data.layers import EfficientATLogMel, MusicnnLogMel, PannsLogMel, Resample, SpecAugment
from zoo import checkpoints, pretrained
from zoo.builders import efficientat, musicnn, panns
from zoo.builders.blocks import dense_stack
from zoo.config import ModelConfig
from zoo.families.pretrained import (
    BACKBONES, FAMILY_OF, backbone_config, frozen_features, frozen_layer, label, tag_names, taggers,
)

# The layers of each part, by name prefix; a part trains when ``trainable`` reaches it.
PARTS = {
    "musicnn": {"backend": ("musicnn_dense",), "midend": ("musicnn_mid",),
                "all": ("musicnn_timbral", "musicnn_temporal")},
    "vgg": {"backend": ("vgg_conv5",), "midend": ("vgg_conv4",), "all": ("vgg_conv1", "vgg_conv2", "vgg_conv3")},
    "efficientat": {"backend": ("efficientat_classifier_2",),
                    "midend": tuple(f"efficientat_features_{i}_" for i in (13, 14, 15, 16)),
                    "all": ("efficientat_features_",)},
    "panns": {"backend": ("panns_fc1",), "midend": ("panns_conv_block6_",), "all": ("panns_conv_block",)},
}
REACHES = {"head": (), "backend": ("backend",), "midend": ("backend", "midend"), "all": ("backend", "midend", "all")}
# The sample rate each AudioSet backbone's front end takes (the 22050-Hz waveform is resampled to it).
RATES = {"mn04_as": 32000, "mn05_as": 32000, "mn10_as": 32000, "mn20_as": 32000, "mn30_as": 32000, "mn40_as": 32000,
         "mn40_as_ext": 32000, "Cnn14": 32000, "Cnn14_16k": 16000}


@keras.saving.register_keras_serializable(package="gtzan")
class FitFrames(keras.layers.Layer):
    """Pads ``[batch, frames, bands]`` with zeros (silence after log compression) to ``frames`` frames,
    or keeps the first ``frames``: the VGG's dense layers were trained on exactly 187."""

    def __init__(self, frames: int, **kwargs):
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, inputs):
        length = inputs.shape[1]
        # A Python int where the length is static (always under JAX, whose pad widths must be);
        # a tensor for TensorFlow's windows of unknown length.
        missing = max(self.frames - length, 0) if length is not None else ops.maximum(self.frames - ops.shape(inputs)[1], 0)
        return ops.pad(inputs, ((0, 0), (0, missing), (0, 0)))[:, :self.frames]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


def front_end_key(tagger: str) -> str:
    """Backbones with the same key share one front end in a model (musicnn's taggers and the VGGs)."""
    family = FAMILY_OF[tagger]
    if family in ("musicnn", "vgg"):
        return "musicnn"
    return "panns_16k" if tagger == "Cnn14_16k" else family


def front_end(tagger: str, waveform):
    """``tagger``'s input computed from the 22050-Hz ``waveform`` ``[batch, samples]``: musicnn's log-mel at
    the input's own rate, or a resampler to the backbone's rate followed by its own log-mel."""
    key = front_end_key(tagger)
    if key == "musicnn":
        return MusicnnLogMel(name="musicnn_log_mel", dtype="float32")(waveform)
    resampled = Resample(SAMPLE_RATE, RATES[tagger], name=f"{key}_resample", dtype="float32")(waveform)
    if key == "efficientat":
        return EfficientATLogMel(name="efficientat_log_mel", dtype="float32")(resampled)
    return PannsLogMel(**panns.FRONT_ENDS[tagger], name=f"{key}_log_mel", dtype="float32")(resampled)


def weights_fingerprint(tagger: str) -> dict:
    """What identifies ``tagger``'s weights (their published checksums), for cache keys."""
    if tagger in pretrained.CHECKPOINTS:
        return pretrained.CHECKPOINTS[tagger]
    return {"file": checkpoints.RELEASES[tagger].file, "sha256": checkpoints.weights_digest(tagger)}


def _core(config: ModelConfig, tagger: str):
    """``(mel input, features, weight loader)`` of one backbone: its layers up to what the head takes, and
    the function that loads its released weights into a model holding them."""
    family = FAMILY_OF[tagger]
    pooled = config.features == "pooled"
    if family == "musicnn":
        mel = keras.Input((None, musicnn.N_MELS), name="log_mel")
        features, _ = musicnn.musicnn_features(mel, dropout=config.conv_dropout)
        skip = ("musicnn_tags",) + (("musicnn_dense", "musicnn_dense_bn") if pooled else ())
        if pooled:  # up to the batch-normalized pooling: no dropout, no dense layer
            features = keras.Model(mel, features).get_layer("musicnn_pool_bn").output
        return mel, features, lambda model: musicnn.load_weights(model, pretrained.read_checkpoint(tagger),
                                                                 musicnn.MUSICNN_NAMES, skip=skip)
    if family == "vgg":
        mel = keras.Input((musicnn.VGG_FRAMES, musicnn.N_MELS), name="log_mel")
        features = musicnn.vgg_features(mel, musicnn.VGG_POOLS[tagger], dropout=config.conv_dropout)
        return mel, features, lambda model: musicnn.load_weights(model, pretrained.read_checkpoint(tagger),
                                                                 musicnn.VGG_NAMES, skip=("vgg_tags",))
    if family == "efficientat":
        mel = keras.Input((None, efficientat.N_MELS), name="log_mel")
        pooled_features, penultimate, _ = efficientat.mobilenet(mel, efficientat.WIDTHS[tagger])
        skip = ("classifier.5.weight", "classifier.5.bias") + (("classifier.2.weight", "classifier.2.bias") if pooled
                                                                else ())
        return mel, pooled_features if pooled else penultimate, lambda model: efficientat.load_weights(
            model, checkpoints.load_release(tagger), skip=skip)
    mel = keras.Input((None, panns.N_MELS), name="log_mel")
    pooled_features, penultimate, _ = panns.cnn14(mel, dropout=config.conv_dropout)
    skip = ("fc_audioset.weight", "fc_audioset.bias") + (("fc1.weight", "fc1.bias") if pooled else ())
    return mel, pooled_features if pooled else penultimate, lambda model: panns.load_weights(
        model, checkpoints.load_release(tagger), skip=skip, front_end=panns.FRONT_ENDS[tagger])


def backbone(config: ModelConfig, name: str | None = None, load_weights: bool = True) -> keras.Model:
    """One pretrained backbone (``config.tagger`` names one) up to the features its head takes, weights
    loaded (unless ``load_weights`` is false: the architecture alone), trainable as ``config`` says.

    Raises:
        data.errors.InputError: if the weights cannot be found or fail their checksum.
    """
    mel, features, load = _core(config, config.tagger)
    family = FAMILY_OF[config.tagger]
    model = keras.Model(mel, features, name=name or family)
    if load_weights:
        load(model)
    trained = tuple(prefix for part in REACHES[config.trainable] for prefix in PARTS[family][part])
    for layer in model.layers:
        # Batch normalization keeps the pretrained statistics (frozen, so it runs in inference mode).
        frozen = isinstance(layer, keras.layers.BatchNormalization) or not layer.name.startswith(trained)
        layer.trainable = not frozen
    return model


def features(config: ModelConfig, waveform, load_weights: bool = True):
    """Each backbone's front end, the pretrained backbone(s), then the head's hidden layers and dropout."""
    chosen = taggers(config)
    inputs = {}
    outputs = []
    for tagger in chosen:
        key = front_end_key(tagger)
        if key not in inputs:
            mel = front_end(tagger, waveform)
            if any(config.spec_augment):
                mel = SpecAugment(*config.spec_augment, name="spec_augment" if not inputs else f"spec_augment_{key}",
                                  dtype="float32")(mel)
            inputs[key] = mel
        mel = inputs[key]
        if FAMILY_OF[tagger] == "vgg":
            mel = FitFrames(musicnn.VGG_FRAMES, name="vgg_frames" if len(chosen) == 1 else f"{label(tagger)}_frames",
                            dtype="float32")(mel)
        name = FAMILY_OF[tagger] if len(chosen) == 1 else label(tagger)
        outputs.append(backbone(backbone_config(config, tagger), name=name, load_weights=load_weights)(mel))
    x = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="tagger_features")(outputs)
    if config.dense_dropout and not config.dense_units:
        return keras.layers.Dropout(config.dense_dropout, name="head_dropout")(x)
    return dense_stack(config, x, first_layer=0)  # dropout after each hidden layer


def tagger_model(name: str) -> keras.Model:
    """A pretrained backbone as it was trained, on the 22050-Hz waveform: ``musicnn-msd``, ``efficientat-mn04``,
    ``panns-cnn14``, ... -> a model from ``waveform [batch, samples]`` to ``{"tags": [batch, tags],
    "penultimate": [batch, features]}``: its own tag probabilities (50 tags, or AudioSet's 527 classes)
    and the layer before them.

    Raises:
        ValueError: for another name.
        data.errors.InputError: if the weights cannot be found or fail their checksum.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown pretrained backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    tagger = BACKBONES[name]
    family = FAMILY_OF[tagger]
    waveform = keras.Input((None,), name="waveform")
    mel = front_end(tagger, waveform)
    if family in ("musicnn", "vgg"):
        if family == "vgg":
            mel = FitFrames(musicnn.VGG_FRAMES, name="vgg_frames", dtype="float32")(mel)
        core = musicnn.musicnn_tagger() if family == "musicnn" else musicnn.vgg_tagger(tagger)
        musicnn.load_weights(core, pretrained.read_checkpoint(tagger),
                             musicnn.MUSICNN_NAMES if family == "musicnn" else musicnn.VGG_NAMES)
        return keras.Model(waveform, core(mel), name=f"{label(tagger)}_tagger")
    log_mel = keras.Input((None, mel.shape[-1]), name="log_mel")
    if family == "efficientat":
        _, penultimate, logits = efficientat.mobilenet(log_mel, efficientat.WIDTHS[tagger])
        load = efficientat.load_weights
    else:
        _, penultimate, logits = panns.cnn14(log_mel, dropout=0.0)
        load = panns.load_weights
    tags = keras.layers.Activation("sigmoid", name="tags")(logits)
    core = keras.Model(log_mel, {"tags": tags, "penultimate": penultimate}, name=f"{family}_core")
    if family == "efficientat":
        load(core, checkpoints.load_release(tagger))
    else:
        load(core, checkpoints.load_release(tagger), front_end=panns.FRONT_ENDS[tagger])
    return keras.Model(waveform, core(mel), name=f"{label(tagger)}_tagger")


def tags_of(name: str) -> tuple[str, ...]:
    """The names of ``tagger_model(name)``'s tags, in order."""
    return tag_names(BACKBONES[name])


def feature_extractor(config: ModelConfig) -> keras.Model:
    """The frozen part of one backbone of ``config``, on the waveform: ``[batch, window]`` ->
    ``[batch, features]``, the output of :func:`~zoo.families.pretrained.frozen_layer`.

    It depends on the backbone alone (its layers up to there are never trained), so every model of
    that backbone shares what it computes.

    Raises:
        ValueError: if ``config`` has no frozen layer, or names two backbones.
        data.errors.InputError: if the weights cannot be found or fail their checksum.
    """
    if frozen_features(config) is None or len(taggers(config)) != 1:
        raise ValueError(f"{config.name} has no frozen features of one backbone (train=head, or backend where the "
                         "family has a dense layer above its pooling; no augmentation; one backbone)")
    waveform = keras.Input((window_samples(config.window_seconds),), name="waveform")
    mel = front_end(config.tagger, waveform)
    if FAMILY_OF[config.tagger] == "vgg":
        mel = FitFrames(musicnn.VGG_FRAMES, name="vgg_frames", dtype="float32")(mel)
    tagger = backbone(config.replace(trainable="head", features="penultimate"))
    frozen = keras.Model(tagger.input, tagger.get_layer(frozen_layer(config.tagger)).output,
                         name=f"{tagger.name}_frozen")
    return keras.Model(waveform, frozen(mel), name=f"{label(config.tagger)}_features")


def feature_view(model: keras.Model, config: ModelConfig) -> keras.Model:
    """``model`` above its frozen features: ``[batch, features]`` (each backbone's, concatenated in order)
    -> probabilities, built from ``model``'s own layers, so that training the view trains ``model``.

    Raises:
        ValueError: if ``config`` has no frozen features.
    """
    if frozen_features(config) is None:
        raise ValueError(f"{config.name} has no frozen features (train=head, or backend where the family has a dense "
                         "layer above its pooling; no augmentation)")
    nested = [candidate for candidate in model.layers if isinstance(candidate, keras.Model)]
    uppers, widths = [], []
    for tagger, part in zip(taggers(config), nested):
        cut = part.get_layer(frozen_layer(tagger)).output
        widths.append(cut.shape[-1])
        # Above the frozen layer: e.g. musicnn's batch norm, dropout and dense layer (none for the VGG).
        uppers.append(None if cut is part.output else keras.Model(cut, part.output, name=f"{part.name}_top"))
    inputs = keras.Input((sum(widths),), name="features")
    outputs, start = [], 0
    for upper, width in zip(uppers, widths):
        piece = inputs if len(nested) == 1 else keras.layers.Lambda(
            lambda t, begin=start, end=start + width: t[:, begin:end], name=f"features_{len(outputs)}")(inputs)
        outputs.append(piece if upper is None else upper(piece))
        start += width
    last = nested[-1]
    x = outputs[0]
    if len(outputs) > 1:
        last = model.get_layer("tagger_features")
        x = last(outputs)
    # The head is a chain of layers after the backbones (dropout, hidden layers, the softmax).
    for head_layer in model.layers[model.layers.index(last) + 1:]:
        x = head_layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_on_features")
