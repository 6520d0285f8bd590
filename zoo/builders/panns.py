"""PANNs' CNN14 in Keras 3, converted from its released AudioSet checkpoints.

A re-implementation, written here, of CNN14 from Kong et al., "PANNs: Large-scale pretrained
audio neural networks for audio pattern recognition" (IEEE/ACM TASLP, 2020; MIT licence): batch
normalization over the 64 mel bands of a log-mel (``data.layers.PannsLogMel``), six blocks of two
3x3 convolutions (64 ... 2048 channels) each followed by average pooling, the mean over bands, the
max plus the mean over frames (``pooled``, 2048-d), a 2048-unit ReLU layer (``penultimate``, the
embedding of the release) and the 527 AudioSet logits. ``Cnn14`` takes 32-kHz audio, ``Cnn14_16k``
16-kHz audio (another front end, the same network).

The Keras layers are named after the PyTorch modules (``conv_block1.conv1`` ->
``panns_conv_block1_conv1``), and :func:`load_weights` maps a ``state_dict`` onto them by name,
checking every shape. Dropout (0.2 after each block in training, as the release was trained) is the
config's ``conv_dropout``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from data.layers import slaney_mel_filters
from zoo.builders.blocks import flat_layers

CHANNELS = (64, 128, 256, 512, 1024, 2048)
AUDIOSET_CLASSES = 527
N_MELS = 64
PREFIX = "panns_"
# The front end of each released checkpoint (data.layers.PannsLogMel's arguments).
FRONT_ENDS = {"Cnn14": {"sample_rate": 32000, "n_fft": 1024, "hop_length": 320, "n_mels": 64, "f_min": 50.0,
                        "f_max": 14000.0},
              "Cnn14_16k": {"sample_rate": 16000, "n_fft": 512, "hop_length": 160, "n_mels": 64, "f_min": 50.0,
                            "f_max": 8000.0}}


def _name(path: str) -> str:
    return PREFIX + path.replace(".", "_")


@keras.saving.register_keras_serializable(package="gtzan")
class MaxPlusMean(keras.layers.Layer):
    """CNN14's pooling over time: ``[batch, frames, channels]`` -> the max plus the mean over frames."""

    def call(self, inputs):
        return ops.max(inputs, axis=1) + ops.mean(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="gtzan")
class BandMean(keras.layers.Layer):
    """The mean over the band axis: ``[batch, frames, bands, channels]`` -> ``[batch, frames, channels]``."""

    def call(self, inputs):
        return ops.mean(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[3])


def cnn14(mel, dropout: float = 0.2):
    """CNN14 on the log-mel ``[batch, frames, 64]``: ``(pooled, penultimate, logits)``."""
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=_name("bn0"))(mel)  # over the bands, as bn0 is
    x = keras.layers.Reshape((-1, N_MELS, 1), name=PREFIX + "add_channel")(x)  # [batch, frames, bands, 1]
    for index, channels in enumerate(CHANNELS, start=1):
        block = f"conv_block{index}"
        for conv in (1, 2):
            x = keras.layers.ZeroPadding2D(1, name=_name(f"{block}.conv{conv}") + "_pad")(x)
            x = keras.layers.Conv2D(channels, 3, use_bias=False, name=_name(f"{block}.conv{conv}"))(x)
            x = keras.layers.BatchNormalization(epsilon=1e-5, name=_name(f"{block}.bn{conv}"))(x)
            x = keras.layers.ReLU(name=_name(f"{block}.relu{conv}"))(x)
        if index < len(CHANNELS):  # the last block pools 1x1: nothing
            x = keras.layers.AveragePooling2D(2, name=_name(block) + "_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=_name(block) + "_dropout")(x)
    pooled = MaxPlusMean(name=PREFIX + "pool")(BandMean(name=PREFIX + "band_mean")(x))
    penultimate = keras.layers.Dense(2048, activation="relu", name=_name("fc1"))(pooled)
    logits = keras.layers.Dense(AUDIOSET_CLASSES, name=_name("fc_audioset"))(penultimate)
    return pooled, penultimate, logits


def load_weights(model: keras.Model, state: dict[str, np.ndarray], skip: tuple[str, ...] = (),
                 front_end: dict | None = None) -> None:
    """Sets every CNN14 layer of ``model`` from a PyTorch ``state_dict`` (``zoo.checkpoints``).

    The front end's own fixed tensors (``spectrogram_extractor.*``, ``logmel_extractor.*``) are not
    weights: ``data.layers.PannsLogMel`` computes the same. With ``front_end`` (the layer's
    arguments), the checkpoint's mel filter bank must be the one that layer computes, so weights
    trained on another front end (the 16-kHz CNN14's in the 32-kHz model) are refused.

    Raises:
        ValueError: naming the variable, for a tensor that is missing or whose shape does not fit, or
            a checkpoint tensor no layer takes.
    """
    used = set(skip) | {key for key in state if key.startswith(("spectrogram_extractor.", "logmel_extractor."))}
    if front_end is not None and "logmel_extractor.melW" in state:
        expected = slaney_mel_filters(front_end["sample_rate"], front_end["n_fft"], front_end["n_mels"],
                                      front_end["f_min"], front_end["f_max"])
        found = state["logmel_extractor.melW"]
        if found.shape != expected.shape or not np.allclose(found, expected, atol=1e-6):
            raise ValueError(f"the checkpoint's mel filter bank ({found.shape}) is not this front end's "
                             f"({front_end['sample_rate']} Hz, FFT {front_end['n_fft']}): another CNN14 variant")

    def take(key: str, shape) -> np.ndarray:
        if key not in state:
            raise ValueError(f"the checkpoint has no {key}: not a CNN14 checkpoint")
        if tuple(state[key].shape) != tuple(shape):
            raise ValueError(f"the checkpoint's {key} has shape {tuple(state[key].shape)}, the model needs "
                             f"{tuple(shape)}: not a CNN14 checkpoint")
        used.add(key)
        return state[key]

    paths = {key.rsplit(".", 1)[0].replace(".", "_"): key.rsplit(".", 1)[0] for key in state}
    for layer in flat_layers(model):
        if not layer.name.startswith(PREFIX) or not layer.weights:
            continue
        path = paths.get(layer.name[len(PREFIX):])
        if path is None:
            raise ValueError(f"the checkpoint has no weights for {layer.name}: not a CNN14 checkpoint")
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([take(f"{path}.weight", layer.gamma.shape), take(f"{path}.bias", layer.beta.shape),
                               take(f"{path}.running_mean", layer.moving_mean.shape),
                               take(f"{path}.running_var", layer.moving_variance.shape)])
            used.add(f"{path}.num_batches_tracked")
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel.shape
            layer.set_weights([np.transpose(take(f"{path}.weight", (kernel[3], kernel[2], kernel[0], kernel[1])),
                                            (2, 3, 1, 0))])
        elif isinstance(layer, keras.layers.Dense):
            kernel = layer.kernel.shape
            layer.set_weights([take(f"{path}.weight", (kernel[1], kernel[0])).T, take(f"{path}.bias", (kernel[1],))])
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"the checkpoint holds {len(unused)} tensors no layer takes ({', '.join(unused[:3])}...): "
                         "not a CNN14 checkpoint")
