"""Benchmark: latency and throughput of an exported SavedModel, directly or through the web app.

Usage::

    python -m serving.bench [--model EXPORT_DIR] [--repeats 10]
    python -m serving.bench --http [--model EXPORT_DIR] [--clients 4] [--requests 40] [--max-seconds 120]

A new Python process that imports only TensorFlow loads the SavedModel (load time reported
apart), warms it up, then times ``serving_default`` on one 30-s clip (median latency over
``--repeats`` calls) and on a batch of 32 clips of 30 s (clips per second).

``--http`` starts ``python -m serving.app`` on a loopback port and sends it real 30-s clips
(the real GTZAN excerpts of ``../shared/real_excerpts`` or ``--audio-dir`` end to end; synthetic
music without them) as uploads: first from one client, then from ``--clients`` at once, each run
bounded by ``--requests`` and ``--max-seconds``. It prints requests per second, p50/p95 latency
and errors (``serving.loadtest``), and the overhead of the app (upload, decoding, JSON) over
calling the SavedModel directly in one process on the same clip.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from cli.runner import parser, quiet_tensorflow, run
from data.errors import RunFailed, UsageError
from serving.prediction import find_export

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


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--model", help="SavedModel folder (default: the newest under exports/); only trusted models")
    result.add_argument("--repeats", type=int, default=10, help="timed single-clip calls (default: 10)")
    http = result.add_argument_group("HTTP (--http)")
    http.add_argument("--http", action="store_true", help="benchmark the web app on loopback instead")
    http.add_argument("--clients", type=int, default=4, help="concurrent clients (default: 4)")
    http.add_argument("--requests", type=int, default=40, help="requests per run at most (default: 40)")
    http.add_argument("--max-seconds", type=float, default=120.0, help="seconds per run at most (default: 120)")
    http.add_argument("--audio-dir", help="folder of real recordings to cut the 30-s clips from "
                                          "(default: ../shared/real_excerpts if it is there)")
    return result


def clips_30s(folder: Path | None, out: Path, count: int = 4) -> list[Path]:
    """``count`` 30-s PCM16 WAV clips of real music from ``folder`` end to end (synthetic without one)."""
    import numpy as np
    import soundfile

    from data.catalogue import SAMPLE_RATE
    from serving.prediction import read_audio

    length = 30 * SAMPLE_RATE
    if folder is not None:
        files = sorted(Path(folder).rglob("*.wav")) + sorted(Path(folder).rglob("*.au"))
        music = np.concatenate([read_audio(f) for f in files[: 40 * count]]) if files else np.zeros(0, np.float32)
    else:
        music = np.zeros(0, np.float32)
    if music.size < length * count:
        from data.synthesis import render_clip

        music = np.concatenate([render_clip(g, 30.0, np.random.default_rng(i)) for i, g in
                                enumerate(("jazz", "rock", "disco", "metal")[:count])]).astype(np.float32)
    paths = []
    for i in range(count):
        paths.append(out / f"clip{i}.wav")
        soundfile.write(paths[-1], music[i * length:(i + 1) * length], SAMPLE_RATE, subtype="PCM_16")
    return paths


def http_bench(args: argparse.Namespace) -> int:
    """``--http``: the app on loopback against the SavedModel called directly."""
    import tempfile
    import time

    import numpy as np
    from serving.loadtest import Server, load
    from serving.prediction import read_audio

    if args.clients < 1 or args.requests < 1 or not args.max_seconds > 0:
        raise UsageError("--clients and --requests must be at least 1 and --max-seconds positive")
    export = find_export(args.model)
    quiet_tensorflow(args.verbose)
    shared = Path(__file__).resolve().parents[2] / "shared" / "real_excerpts"
    folder = Path(args.audio_dir) if args.audio_dir else (shared if shared.is_dir() else None)
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--audio-dir {folder} is not a folder")
    with tempfile.TemporaryDirectory(prefix="gtzan-http-bench-") as work:
        files = clips_30s(folder, Path(work))
        import tensorflow as tf

        serve = tf.saved_model.load(str(export)).signatures["serving_default"]
        audio = tf.constant(read_audio(files[0])[None])
        serve(waveform=audio)  # warm-up
        direct = []
        for _ in range(5):
            start = time.perf_counter()
            serve(waveform=audio)["probabilities"].numpy()
            direct.append(time.perf_counter() - start)
        with Server(export) as server:
            load(server.url, files[:1], clients=1, requests=2, max_seconds=args.max_seconds)  # warm-up
            one = load(server.url, files, clients=1, requests=max(1, args.requests // 4), max_seconds=args.max_seconds)
            many = load(server.url, files, clients=args.clients, requests=args.requests, max_seconds=args.max_seconds)
    source = f"real music from {folder}" if folder is not None else "synthetic music"
    print(f"model: {export}; 30-s clips of {source}")
    print(f"SavedModel called directly, one 30-s clip:  {np.median(direct) * 1000:7.1f} ms (median of 5)")
    for name, result in (("1 client", one), (f"{args.clients} clients", many)):
        print(f"HTTP, {name:<11} {result.requests:4d} requests in {result.seconds:6.1f} s: {result.per_second:6.2f} req/s, "
              f"p50 {result.percentile(50) * 1000:7.1f} ms, p95 {result.percentile(95) * 1000:7.1f} ms, "
              f"errors {result.errors}")
    print(f"app overhead over the direct call (p50, 1 client): {(one.percentile(50) - np.median(direct)) * 1000:.1f} ms")
    return 1 if one.errors or many.errors else 0


def bench(args: argparse.Namespace) -> int:
    """The command: times the export in a fresh process (or through the app) and prints what it measured."""
    if args.http:
        return http_bench(args)
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    export = find_export(args.model)
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(export), str(args.repeats)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RunFailed(f"the benchmark process failed: {result.stderr.strip().splitlines()[-1:]}")
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"model: {export}")
    print(f"load time:                 {timings['load_s']:.2f} s")
    print(f"latency, one 30-s clip:    {timings['latency_s'] * 1000:.1f} ms (median of {args.repeats})")
    print(f"throughput, 32 x 30 s:     {32 / timings['batch32_s']:.1f} clips/s ({timings['batch32_s']:.2f} s a batch)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv, tensorflow=False)


if __name__ == "__main__":
    sys.exit(main())
