"""Genre models on the pretrained musicnn and VGG taggers (``zoo.families.pretrained``).

The tagger, up to its penultimate features, is a nested ``keras.Model`` named ``musicnn`` or
``vgg`` holding the checkpoint's weights; in front of it, musicnn's log-mel front end
(``data.layers.MusicnnLogMel``, computed from the 22050 Hz waveform inside the model), and
after it the new head. The weights are loaded when the model is built; a saved model holds them.
"""

from __future__ import annotations

import keras
from keras import ops

from data.layers import MusicnnLogMel, SpecAugment
from zoo import pretrained
from zoo.builders import musicnn
from zoo.builders.blocks import dense_stack
from zoo.config import ModelConfig
from zoo.families.pretrained import TAGGERS

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
        missing = ops.maximum(self.frames - ops.shape(inputs)[1], 0)
        return ops.pad(inputs, ((0, 0), (0, missing), (0, 0)))[:, :self.frames]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


def backbone(config: ModelConfig) -> keras.Model:
    """The pretrained tagger up to its penultimate features, weights loaded, trainable as ``config`` says.

    Raises:
        data.errors.InputError: if the weights cannot be found or fail their checksum.
    """
    if config.family == "musicnn":
        mel = keras.Input((None, musicnn.N_MELS), name="log_mel")
        features, _ = musicnn.musicnn_features(mel, dropout=config.conv_dropout)
        names = musicnn.MUSICNN_NAMES
    else:
        mel = keras.Input((musicnn.VGG_FRAMES, musicnn.N_MELS), name="log_mel")
        features = musicnn.vgg_features(mel, musicnn.VGG_POOLS[config.tagger], dropout=config.conv_dropout)
        names = musicnn.VGG_NAMES
    model = keras.Model(mel, features, name=config.family)
    # The tag layer is not part of the backbone: its checkpoint variables are left out on purpose.
    musicnn.load_weights(model, pretrained.read_checkpoint(config.tagger), names, skip=(f"{config.family}_tags",))
    trained = tuple(prefix for part in REACHES[config.trainable] for prefix in PARTS[config.family][part])
    for layer in model.layers:
        # Batch normalization keeps the pretrained statistics (frozen, so it runs in inference mode).
        frozen = isinstance(layer, keras.layers.BatchNormalization) or not layer.name.startswith(trained)
        layer.trainable = not frozen
    return model


def features(config: ModelConfig, waveform):
    """musicnn's log-mel of the waveform, the pretrained backbone, then the head's hidden layers and dropout."""
    x = MusicnnLogMel(name="musicnn_log_mel", dtype="float32")(waveform)
    if any(config.spec_augment):
        x = SpecAugment(*config.spec_augment, name="spec_augment", dtype="float32")(x)
    if config.family == "vgg":
        x = FitFrames(musicnn.VGG_FRAMES, name="vgg_frames", dtype="float32")(x)
    x = backbone(config)(x)
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
