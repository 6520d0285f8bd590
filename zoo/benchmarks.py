"""Measurements of model training for ``python -m zoo.bench``: FLOPs, samples per second, matmul rate."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf


def set_precision(precision: str) -> str:
    """Sets Keras' global dtype policy (``float32``, ``mixed_float16``, ...); returns its compute dtype."""
    keras.mixed_precision.set_dtype_policy(precision)
    return keras.mixed_precision.dtype_policy().compute_dtype


def matmul_flops_per_second(size: int = 2048, repeats: int = 20, dtype: str = "float32") -> float:
    """Measured ``dtype`` matmul rate of this machine, in FLOP/s."""
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    run = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    run()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        run().numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def forward_flops(model: keras.Model, samples: int) -> float:
    """Forward-pass FLOPs for one example, counted by TensorFlow's profiler."""
    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec([1, samples], tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def training_samples_per_second(build: Callable[[], keras.Model], batch_size: int, steps: int, jit_compile,
                                repeats: int = 3) -> float:
    """Best samples per second of ``repeats`` timed runs of ``fit`` steps on random in-memory waveforms.

    ``build`` makes the model, in a cleared Keras session (each measurement starts alike).

    The best of several runs is reported because single runs on this kind of shared 2-core
    machine varied by up to 2x between identical calls.
    """
    keras.backend.clear_session()
    model = build()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (batch_size, model.input_shape[1])).astype(np.float32)
    y = rng.integers(0, model.output_shape[1], batch_size)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # warm-up: tracing, compilation
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        rates.append(batch_size * steps / (time.perf_counter() - start))
    return max(rates)
