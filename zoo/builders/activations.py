"""The activation layers of the study (Keras), and the layer for an activation spec (``zoo.activations``)."""

from __future__ import annotations

import keras
from keras import ops

from zoo.activations import parse_activation


@keras.saving.register_keras_serializable(package="gtzan")
class ShiftedReLU(keras.layers.Layer):
    """Shifted ReLU: ``f(x) = max(x, -shift)``.

    The ELU paper's SReLU (Clevert et al., 2016) has its floor at -1 (``shift=1``); the
    shift is a parameter here (the study used 0.3). Like ELU it lets mean activations
    move towards zero, without the exponential.

    Args:
        shift: Non-negative distance of the floor below zero.
        **kwargs: Base layer arguments.
    """

    def __init__(self, shift: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if shift < 0:
            raise ValueError(f"shift must be non-negative. Received: shift={shift!r}")
        self.shift = float(shift)

    def call(self, inputs):
        return ops.maximum(inputs, -self.shift)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "shift": self.shift}


@keras.saving.register_keras_serializable(package="gtzan")
class Maxout(keras.layers.Layer):
    """Maxout dense layer (Goodfellow et al., 2013): ``y_j = max_k (x W_jk + b_jk)``.

    Each of the ``units`` outputs is the largest of ``pieces`` affine functions of the
    input, so the layer learns its own piecewise-linear convex activation.

    Args:
        units: Output size.
        pieces: Affine pieces per output unit (at least 2).
        kernel_regularizer: Optional regularizer of the kernel.
        **kwargs: Base layer arguments.
    """

    def __init__(self, units: int, pieces: int = 2, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if int(units) != units or units < 1:
            raise ValueError(f"units must be a positive integer. Received: units={units!r}")
        if int(pieces) != pieces or pieces < 2:
            raise ValueError(f"pieces must be an integer of at least 2. Received: pieces={pieces!r}")
        self.units = int(units)
        self.pieces = int(pieces)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.dense = keras.layers.Dense(self.units * self.pieces, kernel_regularizer=self.kernel_regularizer)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        pieces = ops.reshape(self.dense(inputs), (-1, self.units, self.pieces))
        return ops.max(pieces, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "pieces": self.pieces,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }


def activation_layer(spec: str, name: str | None = None) -> keras.layers.Layer:
    """Returns the Keras layer for an activation spec (not ``maxout``, which is a dense layer)."""
    kind, value = parse_activation(spec)
    if kind == "relu":
        return keras.layers.ReLU(name=name)
    if kind == "leakyrelu":
        return keras.layers.LeakyReLU(negative_slope=value, name=name)
    if kind == "elu":
        return keras.layers.ELU(alpha=value, name=name)
    if kind == "shiftedrelu":
        return ShiftedReLU(value, name=name)
    if kind == "swish":
        return keras.layers.Activation("silu", name=name)
    raise ValueError(f"maxout replaces a dense layer and cannot follow a convolution. Received: {spec!r}")
