"""Benchmark: training throughput of the reference CNN and the stronger model on this machine.

Usage::

    python -m zoo.bench [--window-seconds 3] [--batch-size 32] [--steps 20] [--models NAME ...]
        [--precision float32|mixed_float16|mixed_bfloat16]

For each model: samples per second of ``model.fit`` steps (Adam, random waveforms held in
memory, after warm-up; the best of three timed runs), the model's FLOPs per training sample (3 x the forward FLOPs counted
by TensorFlow's profiler), and the achieved FLOP rate as a fraction of this machine's
matmul rate in the compute dtype (float32, or float16 / bfloat16 under mixed precision),
measured in the same run on 2048 x 2048 matrices: on a GPU, the fraction of its peak that the
training reaches.
"""

from __future__ import annotations

import sys
import time

import keras
import numpy as np
import tensorflow as tf

import zoo
from data import cli
from data.pipeline import window_samples
from zoo.presets import REFERENCE_CNN, STRONG_MODEL

PROG = "python -m zoo.bench"


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


def training_samples_per_second(model: keras.Model, batch_size: int, steps: int, jit_compile,
                                repeats: int = 3) -> float:
    """Best samples per second of ``repeats`` timed runs of ``fit`` steps on random in-memory waveforms.

    The best of several runs is reported because single runs on this kind of shared 2-core
    machine varied by up to 2x between identical calls.
    """
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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = cli.parser(PROG, __doc__)
    parser.add_argument("--window-seconds", type=float, default=3.0, help="input window (default: 3)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per run (default: 10)")
    parser.add_argument("--n-mels", type=int, help="mel bands of the models (default: the zoo default)")
    parser.add_argument("--models", nargs="+", default=[REFERENCE_CNN, STRONG_MODEL], help="zoo names")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_float16", "mixed_bfloat16"],
                        help="dtype policy of the models (default: float32)")
    args = parser.parse_args(argv)
    if args.window_seconds <= 0 or args.batch_size < 1 or args.steps < 1 or (args.n_mels is not None and args.n_mels < 1):
        parser.error("--window-seconds must be positive, --batch-size, --steps and --n-mels at least 1")
    overrides = {"window_seconds": args.window_seconds, **({"n_mels": args.n_mels} if args.n_mels else {})}
    samples = window_samples(args.window_seconds)
    keras.mixed_precision.set_dtype_policy(args.precision)
    compute = keras.mixed_precision.dtype_policy().compute_dtype
    matmul = matmul_flops_per_second(dtype=compute)
    print(f"{compute} matmul rate: {matmul / 1e9:.1f} GFLOP/s; {args.precision} models, window {args.window_seconds:g} s, "
          f"batch {args.batch_size}, {args.n_mels or zoo.configure(REFERENCE_CNN).n_mels} mel bands")
    print(f"{'model':<36} {'XLA':>4} {'GFLOP/sample':>13} {'samples/s':>10} {'GFLOP/s':>8} {'of matmul':>9}")
    for name in args.models:
        try:
            model = zoo.build(name, **overrides)
        except ValueError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return 2
        flops = 3 * forward_flops(model, samples)  # forward + backward ~ 3x forward
        for jit in (False, True):
            keras.backend.clear_session()
            model = zoo.build(name, **overrides)
            rate = training_samples_per_second(model, args.batch_size, args.steps, jit)
            print(f"{name:<36} {'on' if jit else 'off':>4} {flops / 1e9:13.3f} {rate:10.1f} "
                  f"{flops * rate / 1e9:8.1f} {flops * rate / matmul:9.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
