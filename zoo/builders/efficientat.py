"""EfficientAT's MobileNetV3 audio taggers in Keras 3, with the released AudioSet weights.

A re-implementation, written here, of the "mn" models of Schmid, Koutini & Widmer, "Efficient
large-scale audio tagging via transformer-to-CNN knowledge distillation" (ICASSP 2023; the
EfficientAT project, MIT licence): MobileNetV3-Large (Howard et al., 2019) on a 128-band log-mel,
scaled in width (``mn04``: 0.4 ... ``mn40``: 4.0), trained on AudioSet's 527 classes. Every width
is the same architecture: :data:`BLOCKS` scaled by :func:`make_divisible`, as the release does.

The Keras layers are named after the PyTorch modules they stand for (``features.4.block.2`` ->
``efficientat_features_4_block_2_...``), so :func:`load_weights` maps a ``state_dict`` onto them by
name and checks every shape. The model takes ``[batch, frames, 128]`` (``data.layers.EfficientATLogMel``)
and works channels-last on ``[batch, 128 bands, frames, channels]``; a strided convolution pads as
PyTorch does (``(k - 1) // 2`` on each side), not as Keras' ``same``.

Outputs: ``pooled`` (the mean of the last feature map over bands and frames, ``6 * adjust(160)``
channels: 384 for mn04), ``penultimate`` (Hardswish of the classifier's first dense layer: 512 for
mn04) and the 527 AudioSet ``logits``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoo.builders.blocks import flat_layers

N_MELS = 128
# The width multiplier of each released checkpoint (``ModelConfig.tagger``).
WIDTHS = {"mn04_as": 0.4, "mn05_as": 0.5, "mn10_as": 1.0, "mn20_as": 2.0, "mn30_as": 3.0, "mn40_as": 4.0,
          "mn40_as_ext": 4.0}
# MobileNetV3-Large: (input, kernel, expanded, output channels, squeeze-and-excitation, activation, stride).
BLOCKS = (
    (16, 3, 16, 16, False, "relu", 1), (16, 3, 64, 24, False, "relu", 2), (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2), (40, 5, 120, 40, True, "relu", 1), (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hard_swish", 2), (80, 3, 200, 80, False, "hard_swish", 1),
    (80, 3, 184, 80, False, "hard_swish", 1), (80, 3, 184, 80, False, "hard_swish", 1),
    (80, 3, 480, 112, True, "hard_swish", 1), (112, 3, 672, 112, True, "hard_swish", 1),
    (112, 5, 672, 160, True, "hard_swish", 2), (160, 5, 960, 160, True, "hard_swish", 1),
    (160, 5, 960, 160, True, "hard_swish", 1),
)
LAST_CHANNEL = 1280
AUDIOSET_CLASSES = 527
PREFIX = "efficientat_"


def make_divisible(value: float, divisor: int = 8) -> int:
    """The channel count a width multiplier gives: ``value`` rounded to a multiple of ``divisor``, never
    more than 10 % below it (MobileNet's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _name(path: str) -> str:
    return PREFIX + path.replace(".", "_")


def _bn(path: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=1e-3, name=_name(path))


def _conv(x, filters: int, kernel: int, stride: int, path: str, groups: int = 1):
    """A bias-free convolution padded as PyTorch pads it; depthwise when ``groups`` is the channel count."""
    if kernel > 1:
        x = keras.layers.ZeroPadding2D((kernel - 1) // 2, name=_name(path) + "_pad")(x)
    if groups > 1:
        return keras.layers.DepthwiseConv2D(kernel, strides=stride, use_bias=False, name=_name(path))(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=_name(path))(x)


def _conv_bn(x, filters: int, kernel: int, stride: int, path: str, activation: str | None, groups: int = 1):
    x = _conv(x, filters, kernel, stride, f"{path}.0", groups)
    x = _bn(f"{path}.1")(x)
    return keras.layers.Activation(activation, name=_name(path) + "_act")(x) if activation else x


@keras.saving.register_keras_serializable(package="gtzan")
class BandsFirst(keras.layers.Layer):
    """``[batch, frames, bands]`` -> ``[batch, bands, frames, 1]``: the log-mel as a one-channel image with
    the bands as rows, as the PyTorch models see it (``[batch, 1, bands, frames]``)."""

    def call(self, inputs):
        return ops.expand_dims(ops.transpose(inputs, (0, 2, 1)), -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2], input_shape[1], 1)


def _squeeze_excite(x, channels: int, path: str):
    """Channel squeeze-and-excitation: the mean over bands and frames -> dense, ReLU -> dense, sigmoid -> scale."""
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True, name=_name(path) + "_mean")(x)
    squeeze = keras.layers.Dense(make_divisible(channels // 4), activation="relu",
                                 name=_name(f"{path}.conc_se_layers.0.fc1"))(squeeze)
    scale = keras.layers.Dense(channels, activation="sigmoid", name=_name(f"{path}.conc_se_layers.0.fc2"))(squeeze)
    return keras.layers.Multiply(name=_name(path) + "_scale")([x, scale])


def mobilenet(mel, width: float):
    """EfficientAT's MobileNetV3 on the log-mel ``[batch, frames, 128]``: ``(pooled, penultimate, logits)``.

    Args:
        mel: The log-mel input tensor.
        width: The width multiplier (:data:`WIDTHS`).
    """
    def adjust(channels: int) -> int:
        return make_divisible(channels * width)

    x = BandsFirst(name=PREFIX + "bands_first")(mel)
    x = _conv_bn(x, adjust(BLOCKS[0][0]), 3, 2, "features.0", "hard_swish")
    for index, (inputs, kernel, expanded, outputs, se, activation, stride) in enumerate(BLOCKS, start=1):
        inputs, expanded, outputs = adjust(inputs), adjust(expanded), adjust(outputs)
        path, part, block_input = f"features.{index}.block", 0, x
        if expanded != inputs:
            x = _conv_bn(x, expanded, 1, 1, f"{path}.{part}", activation)
            part += 1
        x = _conv_bn(x, expanded, kernel, stride, f"{path}.{part}", activation, groups=expanded)
        part += 1
        if se:
            x = _squeeze_excite(x, expanded, f"{path}.{part}")
            part += 1
        x = _conv_bn(x, outputs, 1, 1, f"{path}.{part}", None)
        if stride == 1 and inputs == outputs:
            x = keras.layers.Add(name=_name(f"features.{index}") + "_residual")([block_input, x])
    last = adjust(BLOCKS[-1][3])
    x = _conv_bn(x, 6 * last, 1, 1, f"features.{len(BLOCKS) + 1}", "hard_swish")
    pooled = keras.layers.GlobalAveragePooling2D(name=PREFIX + "pool")(x)
    hidden = keras.layers.Dense(make_divisible(LAST_CHANNEL * width), name=_name("classifier.2"))(pooled)
    penultimate = keras.layers.Activation("hard_swish", name=PREFIX + "penultimate")(hidden)
    logits = keras.layers.Dense(AUDIOSET_CLASSES, name=_name("classifier.5"))(penultimate)
    return pooled, penultimate, logits


def load_weights(model: keras.Model, state: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> None:
    """Sets every EfficientAT layer of ``model`` from a PyTorch ``state_dict`` (``zoo.checkpoints``).

    Args:
        model: A model holding :func:`mobilenet`'s layers (some may be left out, as the tag layer of a
            genre model is).
        state: The checkpoint's tensors by name.
        skip: Names of state_dict entries the model leaves out on purpose.

    Raises:
        ValueError: naming the variable, for a tensor that is missing or whose shape does not fit, or
            a checkpoint tensor no layer takes.
    """
    used = set(skip)

    def take(key: str, shape) -> np.ndarray:
        if key not in state:
            raise ValueError(f"the checkpoint has no {key}: not an EfficientAT 'mn' checkpoint of this width")
        value = state[key]
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"the checkpoint's {key} has shape {tuple(value.shape)}, the model needs {tuple(shape)}: "
                             "another width or architecture")
        used.add(key)
        return value

    # The layer names are the PyTorch module paths with dots as underscores.
    paths = {key.rsplit(".", 1)[0].replace(".", "_"): key.rsplit(".", 1)[0] for key in state}
    for layer in flat_layers(model):
        if not layer.name.startswith(PREFIX) or not layer.weights:
            continue
        path = paths.get(layer.name[len(PREFIX):])
        if path is None:
            raise ValueError(f"the checkpoint has no weights for {layer.name}: not an EfficientAT 'mn' checkpoint")
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([take(f"{path}.weight", layer.gamma.shape), take(f"{path}.bias", layer.beta.shape),
                               take(f"{path}.running_mean", layer.moving_mean.shape),
                               take(f"{path}.running_var", layer.moving_variance.shape)])
            used.add(f"{path}.num_batches_tracked")
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel = layer.kernel.shape  # [k, k, channels, 1] <- PyTorch [channels, 1, k, k]
            weight = take(f"{path}.weight", (kernel[2], 1, kernel[0], kernel[1]))
            layer.set_weights([np.transpose(weight, (2, 3, 0, 1))])
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel.shape  # [k, k, in, out] <- PyTorch [out, in, k, k]
            layer.set_weights([np.transpose(take(f"{path}.weight", (kernel[3], kernel[2], kernel[0], kernel[1])),
                                            (2, 3, 1, 0))])
        elif isinstance(layer, keras.layers.Dense):
            kernel = layer.kernel.shape  # [in, out] <- PyTorch [out, in]
            layer.set_weights([take(f"{path}.weight", (kernel[1], kernel[0])).T, take(f"{path}.bias", (kernel[1],))])
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"the checkpoint holds {len(unused)} tensors no layer takes ({', '.join(unused[:3])}...): "
                         "another width or architecture")
