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

import argparse
import sys

import zoo
from cli.runner import parser, quiet_tensorflow, run
from data.config import check_window_seconds, window_samples
from data.errors import UsageError
from training.config import PRECISIONS
from zoo.families.bncnn import RECOMMENDED
from zoo.families.cnn import REFERENCE_CNN

PROG = "python -m zoo.bench"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--window-seconds", type=float, default=3.0, help="input window (default: 3)")
    result.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    result.add_argument("--steps", type=int, default=10, help="timed training steps per run (default: 10)")
    result.add_argument("--n-mels", type=int, help="mel bands of the models (default: the zoo default)")
    result.add_argument("--models", nargs="+", default=[REFERENCE_CNN, RECOMMENDED], help="zoo names")
    result.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="dtype policy of the models (default: float32)")
    return result


def bench(args: argparse.Namespace) -> int:
    """The command: measures each model with and without XLA and prints what it measured."""
    try:
        check_window_seconds(args.window_seconds)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.batch_size < 1 or args.steps < 1 or (args.n_mels is not None and args.n_mels < 1):
        raise UsageError("--batch-size, --steps and --n-mels must be at least 1")
    overrides = {"window_seconds": args.window_seconds, **({"n_mels": args.n_mels} if args.n_mels else {})}
    configs = []
    for name in args.models:
        try:
            configs.append((name, zoo.configure(name, **overrides)))
        except ValueError as error:
            raise UsageError(str(error)) from None
    samples = window_samples(args.window_seconds)
    quiet_tensorflow(args.verbose)
    from zoo import benchmarks  # the library loads TensorFlow: only once every flag is checked

    compute = benchmarks.set_precision(args.precision)
    matmul = benchmarks.matmul_flops_per_second(dtype=compute)
    print(f"{compute} matmul rate: {matmul / 1e9:.1f} GFLOP/s; {args.precision} models, window {args.window_seconds:g} s, "
          f"batch {args.batch_size}, {configs[0][1].n_mels} mel bands")
    print(f"{'model':<36} {'XLA':>4} {'GFLOP/sample':>13} {'samples/s':>10} {'GFLOP/s':>8} {'of matmul':>9}")
    for name, config in configs:
        flops = 3 * benchmarks.forward_flops(zoo.build_model(config), samples)  # forward + backward ~ 3x forward
        for jit in (False, True):
            rate = benchmarks.training_samples_per_second(lambda config=config: zoo.build_model(config),
                                                          args.batch_size, args.steps, jit)
            print(f"{name:<36} {'on' if jit else 'off':>4} {flops / 1e9:13.3f} {rate:10.1f} "
                  f"{flops * rate / 1e9:8.1f} {flops * rate / matmul:9.1%}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv)


if __name__ == "__main__":
    sys.exit(main())
