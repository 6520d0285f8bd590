"""Benchmark: latency and throughput of an exported SavedModel on the CPU, in a fresh process.

Usage::

    python -m serving.bench [--model EXPORT_DIR] [--repeats 10]

A new Python process that imports only TensorFlow loads the SavedModel (load time reported
apart), warms it up, then times ``serving_default`` on one 30-s clip (median latency over
``--repeats`` calls) and on a batch of 32 clips of 30 s (clips per second).
"""

from __future__ import annotations

import json
import subprocess
import sys

from data import cli
from serving.predict import PredictError, find_export

PROG = "python -m serving.bench"

_SCRIPT = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
path, repeats = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
serve = tf.saved_model.load(path).signatures["serving_default"]
load = time.perf_counter() - start
rng = np.random.default_rng(0)
one = tf.constant(rng.normal(0, 0.1, (1, 661500)).astype(np.float32))
batch = tf.constant(rng.normal(0, 0.1, (32, 661500)).astype(np.float32))
serve(waveform=one); serve(waveform=batch)  # warm-up: first calls build the kernels
latencies = []
for _ in range(repeats):
    start = time.perf_counter()
    serve(waveform=one)["probabilities"].numpy()
    latencies.append(time.perf_counter() - start)
start = time.perf_counter()
for _ in range(max(1, repeats // 5)):
    serve(waveform=batch)["probabilities"].numpy()
batch_seconds = (time.perf_counter() - start) / max(1, repeats // 5)
print(json.dumps({"load_s": load, "latency_s": float(np.median(latencies)), "batch32_s": batch_seconds}))
"""


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = cli.parser(PROG, __doc__)
    parser.add_argument("--model", help="SavedModel folder (default: the newest under exports/)")
    parser.add_argument("--repeats", type=int, default=10, help="timed single-clip calls (default: 10)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        export = find_export(args.model)
    except PredictError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(export), str(args.repeats)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"{PROG}: error: the benchmark process failed: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return 1
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"model: {export}")
    print(f"load time:                 {timings['load_s']:.2f} s")
    print(f"latency, one 30-s clip:    {timings['latency_s'] * 1000:.1f} ms (median of {args.repeats})")
    print(f"throughput, 32 x 30 s:     {32 / timings['batch32_s']:.1f} clips/s ({timings['batch32_s']:.2f} s a batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
