"""Measurements of model training for ``python -m zoo.bench``: FLOPs, samples per second, matmul rate,
under the running Keras backend or, each in its own process, under several."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from data.config import window_samples
from data.errors import RunFailed
from data.processes import last_error_line, run_python
from zoo.builders import build_model
from zoo.config import ModelConfig

# How each backend can compile a training step (``Model.compile(jit_compile=)``), the one
# ``training.loop.jit_compile`` trains with first: TensorFlow's graph (XLA measured slower on CPUs),
# ``jax.jit`` (op by op JAX is several times slower, never used), PyTorch eager and ``torch.compile``.
COMPILE_MODES = {"tensorflow": (("graph", False), ("XLA", True)), "jax": (("jax.jit", True),),
                 "torch": (("eager", False), ("torch.compile", True))}
# The folder that holds the packages, for the processes that measure other backends.


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
    # The profiler's FLOP registry calls a TensorFlow 1 helper that logs a deprecation warning on
    # every count; the count is right, so that warning says nothing to a user of the benchmark.
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel(logging.ERROR)
    try:
        return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
    finally:
        logger.setLevel(level)


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
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)  # warm-up: tracing, compilation
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        rates.append(batch_size * steps / (time.perf_counter() - start))
    return max(rates)


def forward_milliseconds_by_block(model: keras.Model, batch_size: int, repeats: int = 10) -> list[tuple[str, float]]:
    """Where a forward pass spends its time: ``(layer, ms)`` for the front end, each pooling layer and
    the output, each the best time of the model up to that layer minus the time up to the one before
    (a cheap block can come out slightly negative: timing noise).

    The models up to each boundary are compiled as the backend predicts (``predict_on_batch``).
    """
    boundaries = [layer.name for layer in model.layers
                  if layer.name in ("log_mel", "musicnn_log_mel") or layer.name.endswith("_pool")]
    boundaries.append(model.layers[-1].name)
    x = np.random.default_rng(0).normal(0, 0.1, (batch_size, model.input_shape[1])).astype(np.float32)
    found, before = [], 0.0
    for name in dict.fromkeys(boundaries):
        part = keras.Model(model.input, model.get_layer(name).output)
        part.predict_on_batch(x)  # warm-up: tracing, compilation
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            part.predict_on_batch(x)
            times.append(time.perf_counter() - start)
        total = 1000 * min(times)
        found.append((name, total - before))
        before = total
    return found


def measure(configs: list[tuple[str, ModelConfig]], batch_size: int, steps: int, precision: str,
            blocks: bool = False) -> dict:
    """Training rates of each model under the running backend, in each of its compile modes.

    Returns:
        ``{"backend", "compute_dtype", "matmul_flops_per_second", "rows": [{"model", "backend", "compile",
        "flops_per_sample", "samples_per_second"}], "blocks": {model: [(layer, ms), ...]}}``. FLOPs (3 x the
        forward FLOPs, counted by TensorFlow's profiler) and the matmul rate are TensorFlow's measurements:
        None under another backend. ``blocks`` (:func:`forward_milliseconds_by_block`) only if asked.
    """
    backend = keras.backend.backend()
    compute = set_precision(precision)
    tensorflow = backend == "tensorflow"
    rows = []
    for name, config in configs:
        flops = 3 * forward_flops(build_model(config), window_samples(config.window_seconds)) if tensorflow else None
        for label, jit in COMPILE_MODES[backend]:
            rate = training_samples_per_second(lambda config=config: build_model(config), batch_size, steps, jit)
            rows.append({"model": name, "backend": backend, "compile": label, "flops_per_sample": flops,
                         "samples_per_second": rate})
    timed = {name: forward_milliseconds_by_block(build_model(config), batch_size) for name, config in configs} \
        if blocks else {}
    return {"backend": backend, "compute_dtype": compute,
            "matmul_flops_per_second": matmul_flops_per_second(dtype=compute) if tensorflow else None, "rows": rows,
            "blocks": timed}


def measure_under(backend: str, configs: list[tuple[str, ModelConfig]], batch_size: int, steps: int,
                  precision: str, blocks: bool = False) -> dict:
    """:func:`measure` in a new process running ``backend`` (a Keras backend is chosen once per process).

    Raises:
        RunFailed: when that process fails (with its last error line).
    """
    request = json.dumps({"configs": [[name, config.to_dict()] for name, config in configs], "batch_size": batch_size,
                          "steps": steps, "precision": precision, "blocks": blocks})
    code = ("import json, sys; from zoo.benchmarks import measure; from zoo.config import ModelConfig; "
            "r = json.loads(sys.argv[1]); configs = [(n, ModelConfig.from_dict(c)) for n, c in r['configs']]; "
            "print('RESULT ' + json.dumps(measure(configs, r['batch_size'], r['steps'], r['precision'], r['blocks'])))")
    done = run_python(code, request, backend=backend)
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not found:
        raise RunFailed(f"measuring under {backend} failed: {last_error_line(done)}")
    return json.loads(found[-1][len("RESULT "):])
