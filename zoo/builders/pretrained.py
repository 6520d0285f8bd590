"""Genre models on the pretrained musicnn and VGG taggers (``zoo.families.pretrained``).

The tagger, up to its penultimate features, is a nested ``keras.Model`` named ``musicnn`` or
``vgg`` (``musicnn_msd`` and ``musicnn_mtt`` for two taggers side by side) holding the
checkpoint's weights; in front of it, musicnn's log-mel front end (``data.layers.MusicnnLogMel``,
computed from the 22050 Hz waveform inside the model), and after it the new head. The weights are
loaded when the model is built; a saved model holds them.

Where the tagger is frozen up to a layer (``zoo.families.pretrained.frozen_features``),
:func:`feature_extractor` computes that layer's output from the waveform and :func:`feature_view`
is the rest of the model on it, sharing the model's layers: training the view trains the model.
"""

from __future__ import annotations

import keras
from keras import ops

from data.layers import MusicnnLogMel, SpecAugment
from zoo import pretrained
from zoo.builders import musicnn
from zoo.builders.blocks import dense_stack
from zoo.config import ModelConfig
from zoo.families.pretrained import TAGGERS, frozen_features, tag_set, taggers

# The layers of each part, by name prefix; a part trains when ``trainable`` reaches it.
PARTS = {
    "musicnn": {"backend": ("musicnn_dense",), "midend": ("musicnn_mid",),
                "all": ("musicnn_timbral", "musicnn_temporal")},
    "vgg": {"backend": ("vgg_conv5",), "midend": ("vgg_conv4",), "all": ("vgg_conv1", "vgg_conv2", "vgg_conv3")},
}
REACHES = {"head": (), "backend": ("backend",), "midend": ("backend", "midend"), "all": ("backend", "midend", "all")}


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


def backbone(config: ModelConfig, name: str | None = None) -> keras.Model:
    """One pretrained tagger (``config.tagger`` names one) up to the features its head takes, weights
    loaded, trainable as ``config`` says.

    Raises:
        data.errors.InputError: if the weights cannot be found or fail their checksum.
    """
    skip = (f"{config.family}_tags",)  # the tag layer is not part of the backbone: left out on purpose
    if config.family == "musicnn":
        mel = keras.Input((None, musicnn.N_MELS), name="log_mel")
        features, _ = musicnn.musicnn_features(mel, dropout=config.conv_dropout)
        names = musicnn.MUSICNN_NAMES
    else:
        mel = keras.Input((musicnn.VGG_FRAMES, musicnn.N_MELS), name="log_mel")
        features = musicnn.vgg_features(mel, musicnn.VGG_POOLS[config.tagger], dropout=config.conv_dropout)
        names = musicnn.VGG_NAMES
    model = keras.Model(mel, features, name=name or config.family)
    if config.features == "pooled":  # up to the batch-normalized pooling: no dropout, no dense layer
        model = keras.Model(mel, model.get_layer("musicnn_pool_bn").output, name=model.name)
        skip += ("musicnn_dense", "musicnn_dense_bn")
    musicnn.load_weights(model, pretrained.read_checkpoint(config.tagger), names, skip=skip)
    trained = tuple(prefix for part in REACHES[config.trainable] for prefix in PARTS[config.family][part])
    for layer in model.layers:
        # Batch normalization keeps the pretrained statistics (frozen, so it runs in inference mode).
        frozen = isinstance(layer, keras.layers.BatchNormalization) or not layer.name.startswith(trained)
        layer.trainable = not frozen
    return model


def backbones(config: ModelConfig) -> list[keras.Model]:
    """The backbone of each of ``config``'s taggers: named after the family for one tagger (``musicnn``),
    after the family and tag set for two (``musicnn_msd``, ``musicnn_mtt``)."""
    chosen = taggers(config)
    return [backbone(config.replace(tagger=tagger),
                     name=config.family if len(chosen) == 1 else f"{config.family}_{tag_set(tagger)}")
            for tagger in chosen]


def features(config: ModelConfig, waveform):
    """musicnn's log-mel of the waveform, the pretrained backbone(s), then the head's hidden layers and dropout."""
    x = MusicnnLogMel(name="musicnn_log_mel", dtype="float32")(waveform)
    if any(config.spec_augment):
        x = SpecAugment(*config.spec_augment, name="spec_augment", dtype="float32")(x)
    if config.family == "vgg":
        x = FitFrames(musicnn.VGG_FRAMES, name="vgg_frames", dtype="float32")(x)
    outputs = [model(x) for model in backbones(config)]
    x = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="tagger_features")(outputs)
    if config.dense_dropout and not config.dense_units:
        return keras.layers.Dropout(config.dense_dropout, name="head_dropout")(x)
    return dense_stack(config, x, first_layer=0)  # dropout after each hidden layer


def tagger_model(name: str) -> keras.Model:
    """A pretrained tagger as it was trained, on the 22050 Hz waveform: ``musicnn-msd``, ``musicnn-mtt``,
    ``vgg-msd`` or ``vgg-mtt`` -> a model from ``waveform [batch, samples]`` to ``{"tags": [batch, 50],
    "penultimate": [batch, 200 or 256]}``.

    Raises:
        ValueError: for another name.
        data.errors.InputError: if the weights cannot be found or fail their checksum.
    """
    family, _, tags = name.partition("-")
    if family not in TAGGERS or tags not in TAGGERS[family]:
        choices = ", ".join(f"{f}-{t}" for f in TAGGERS for t in TAGGERS[f])
        raise ValueError(f"unknown pretrained tagger {name!r}; expected one of {choices}")
    tagger = TAGGERS[family][tags]
    waveform = keras.Input((None,), name="waveform")
    mel = MusicnnLogMel(name="musicnn_log_mel", dtype="float32")(waveform)
    if family == "vgg":
        mel = FitFrames(musicnn.VGG_FRAMES, name="vgg_frames", dtype="float32")(mel)
    core = musicnn.musicnn_tagger() if family == "musicnn" else musicnn.vgg_tagger(tagger)
    musicnn.load_weights(core, pretrained.read_checkpoint(tagger), musicnn.MUSICNN_NAMES if family == "musicnn"
                         else musicnn.VGG_NAMES)
    return keras.Model(waveform, core(mel), name=f"{family}_{tags}_tagger")


def feature_extractor(config: ModelConfig) -> keras.Model:
    """The frozen part of one tagger of ``config``, on the waveform: ``[batch, samples]`` ->
    ``[batch, features]``, the output of :func:`~zoo.families.pretrained.frozen_features`'s layer.

    It depends on the tagger alone (its layers up to there are never trained), so every model of
    that tagger shares what it computes.

    Raises:
        ValueError: if ``config`` has no frozen layer, or names two taggers.
        data.errors.InputError: if the weights cannot be found or fail their checksum.
    """
    layer = frozen_features(config)
    if layer is None or len(taggers(config)) != 1:
        raise ValueError(f"{config.name} has no frozen features of one tagger (train=head, or backend for musicnn, "
                         "no augmentation, one tagger)")
    waveform = keras.Input((None,), name="waveform")
    mel = MusicnnLogMel(name="musicnn_log_mel", dtype="float32")(waveform)
    if config.family == "vgg":
        mel = FitFrames(musicnn.VGG_FRAMES, name="vgg_frames", dtype="float32")(mel)
    tagger = backbone(config.replace(trainable="head", features="penultimate"))
    frozen = keras.Model(tagger.input, tagger.get_layer(layer).output, name=f"{tagger.name}_frozen")
    return keras.Model(waveform, frozen(mel), name=f"{config.family}_{tag_set(config.tagger)}_features")


def feature_view(model: keras.Model, config: ModelConfig) -> keras.Model:
    """``model`` above its frozen features: ``[batch, features]`` (each tagger's, concatenated in order)
    -> probabilities, built from ``model``'s own layers, so that training the view trains ``model``.

    Raises:
        ValueError: if ``config`` has no frozen features.
    """
    layer = frozen_features(config)
    if layer is None:
        raise ValueError(f"{config.name} has no frozen features (train=head, or backend for musicnn, no augmentation)")
    nested = [candidate for candidate in model.layers if isinstance(candidate, keras.Model)]
    uppers = []
    for tagger in nested:
        cut = tagger.get_layer(layer).output
        # Above the frozen layer: musicnn's batch norm, dropout and dense layer (none for the VGG).
        uppers.append(None if cut is tagger.output else keras.Model(cut, tagger.output, name=f"{tagger.name}_top"))
    widths = [tagger.get_layer(layer).output.shape[-1] for tagger in nested]
    inputs = keras.Input((sum(widths),), name="features")
    outputs, start = [], 0
    for upper, width in zip(uppers, widths):
        part = inputs if len(nested) == 1 else keras.layers.Lambda(
            lambda t, begin=start, end=start + width: t[:, begin:end], name=f"features_{len(outputs)}")(inputs)
        outputs.append(part if upper is None else upper(part))
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
