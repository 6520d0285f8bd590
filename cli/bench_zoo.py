"""Benchmark: training throughput of the reference CNN and the stronger model on this machine.

Usage::

    python -m zoo.bench [--window-seconds 3] [--batch-size 32] [--steps 20] [--models NAME ...]
        [--precision float32|mixed_float16|mixed_bfloat16] [--backends tensorflow jax torch] [--blocks]

For each model and each way its backend compiles a training step (TensorFlow: graph and XLA;
JAX: ``jax.jit``; PyTorch: eager and ``torch.compile``): samples per second of ``model.fit`` steps
(Adam, random waveforms held in memory, after warm-up; the best of three timed runs), the model's
FLOPs per training sample (3 x the forward FLOPs counted by TensorFlow's profiler), and the achieved
FLOP rate as a fraction of this machine's matmul rate in the compute dtype (float32, or float16 /
bfloat16 under mixed precision), measured in the same run on 2048 x 2048 matrices: on a GPU, the
fraction of its peak that the training reaches.

Without ``--backends`` it measures under the running Keras backend (``KERAS_BACKEND``, TensorFlow
by default); with it, under each one named, one process each, side by side, with each rate as a
fraction of TensorFlow's best for the model. ``--blocks`` adds where a forward pass spends its
time: milliseconds per batch in the front end, each block up to its pooling layer, and the head.
"""

from __future__ import annotations

import argparse
import sys

import zoo
from cli.runner import parser, quiet_tensorflow, run
from data.config import check_window_seconds
from data.errors import UsageError
from training.config import PRECISIONS
from zoo.config import BACKENDS, check_backend_installed
from zoo.families.bncnn import FROM_SCRATCH
from zoo.families.cnn import REFERENCE_CNN

PROG = "python -m zoo.bench"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--window-seconds", type=float, default=3.0, help="input window (default: 3)")
    result.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    result.add_argument("--steps", type=int, default=10, help="timed training steps per run (default: 10)")
    result.add_argument("--n-mels", type=int, help="mel bands of the models (default: the zoo default)")
    result.add_argument("--models", nargs="+", default=[REFERENCE_CNN, FROM_SCRATCH], help="zoo names")
    result.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="dtype policy of the models (default: float32)")
    result.add_argument("--backends", nargs="+", choices=BACKENDS, metavar="BACKEND",
                        help=f"Keras backends to measure side by side, one process each: {', '.join(BACKENDS)} "
                             "(default: the running one, KERAS_BACKEND)")
    result.add_argument("--blocks", action="store_true",
                        help="also time a forward pass block by block (front end, each pooling layer, head)")
    return result


def bench(args: argparse.Namespace) -> int:
    """The command: measures each model in each compile mode of each backend and prints what it measured."""
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
    for backend in args.backends or ():
        try:
            check_backend_installed(backend)
        except ValueError as error:
            raise UsageError(f"--backends: {error}") from None
    quiet_tensorflow(args.verbose)
    from zoo import benchmarks  # the library loads TensorFlow: only once every flag is checked

    if args.backends:
        results = [benchmarks.measure_under(backend, configs, args.batch_size, args.steps, args.precision,
                                             args.blocks) for backend in dict.fromkeys(args.backends)]
    else:
        results = [benchmarks.measure(configs, args.batch_size, args.steps, args.precision, args.blocks)]
    print_table(results, args, configs[0][1].n_mels)
    if args.blocks:
        print_blocks(results, args.batch_size)
    return 0


def print_blocks(results: list[dict], batch_size: int) -> None:
    """Milliseconds of a forward pass per block, one column per backend."""
    for model in results[0]["blocks"]:
        print(f"\n{model}: forward pass of a batch of {batch_size}, ms per block (up to the layer named)")
        print(f"{'block':<16}" + "".join(f"{result['backend']:>11}" for result in results))
        columns = [dict(result["blocks"][model]) for result in results]
        for layer, _ in results[0]["blocks"][model]:
            print(f"{layer:<16}" + "".join(f"{column[layer]:11.1f}" for column in columns))
        print(f"{'total':<16}" + "".join(f"{sum(column.values()):11.1f}" for column in columns))


def print_table(results: list[dict], args: argparse.Namespace, n_mels: int) -> None:
    """One row per model, backend and compile mode; FLOP figures from TensorFlow's measurement."""
    tensorflow = next((result for result in results if result["backend"] == "tensorflow"), None)
    matmul = tensorflow["matmul_flops_per_second"] if tensorflow else None
    flops = {row["model"]: row["flops_per_sample"] for row in tensorflow["rows"]} if tensorflow else {}
    best = {}
    for row in tensorflow["rows"] if tensorflow else []:
        best[row["model"]] = max(best.get(row["model"], 0.0), row["samples_per_second"])
    compute = results[0]["compute_dtype"]
    print((f"{compute} matmul rate: {matmul / 1e9:.1f} GFLOP/s; " if matmul else "")
          + f"{args.precision} models, window {args.window_seconds:g} s, batch {args.batch_size}, {n_mels} mel bands")
    print(f"{'model':<28} {'backend':<10} {'compiled':<13} {'GFLOP/sample':>12} {'samples/s':>9} {'GFLOP/s':>7} "
          f"{'of matmul':>9} {'of TF':>6}")
    for row in (row for result in results for row in result["rows"]):
        model, rate = row["model"], row["samples_per_second"]
        flop = flops.get(model)
        print(f"{model:<28} {row['backend']:<10} {row['compile']:<13} "
              + (f"{flop / 1e9:12.3f} " if flop else f"{'-':>12} ") + f"{rate:9.1f} "
              + (f"{flop * rate / 1e9:7.1f} {flop * rate / matmul:9.1%} " if flop and matmul else f"{'-':>7} {'-':>9} ")
              + (f"{rate / best[model]:5.2f}x" if model in best else f"{'-':>6}"))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv)


if __name__ == "__main__":
    sys.exit(main())
