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
import statistics
import sys
import tempfile
from pathlib import Path

from cli.runner import parser, quiet_tensorflow, run
from data.errors import UsageError
from serving.config import find_export

PROG = "python -m serving.bench"


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


def check(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The export to time and, with ``--http``, the folder of real music to send (None: synthetic).

    Raises:
        UsageError: for a value out of range, or a folder that is not one.
    """
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    if args.clients < 1 or args.requests < 1 or not args.max_seconds > 0:
        raise UsageError("--clients and --requests must be at least 1 and --max-seconds positive")
    shared = Path(__file__).resolve().parents[2] / "shared" / "real_excerpts"
    folder = Path(args.audio_dir) if args.audio_dir else (shared if shared.is_dir() else None)
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--audio-dir {folder} is not a folder")
    return find_export(args.model), folder


def bench(args: argparse.Namespace) -> int:
    """The command: times the export in a fresh process (or through the app) and prints what it measured."""
    export, folder = check(args)
    quiet_tensorflow(args.verbose)
    from serving import (  # the library loads TensorFlow: only once every flag is checked
        benchmarks,
        loadtest,
    )

    if not args.http:
        timings = benchmarks.time_export(export, args.repeats)
        print(f"model: {export}")
        print(f"load time:                 {timings['load_s']:.2f} s")
        print(f"latency, one 30-s clip:    {timings['latency_s'] * 1000:.1f} ms (median of {args.repeats})")
        print(f"throughput, 32 x 30 s:     {32 / timings['batch32_s']:.1f} clips/s "
              f"({timings['batch32_s']:.2f} s a batch)")
        return 0
    # --http: the app on loopback against the SavedModel called directly.
    with tempfile.TemporaryDirectory(prefix="gtzan-http-bench-") as work:
        files = benchmarks.clips_30s(folder, Path(work))
        direct = statistics.median(benchmarks.direct_latencies(export, files[0]))
        with loadtest.Server(export) as server:
            loadtest.load(server.url, files[:1], clients=1, requests=2, max_seconds=args.max_seconds)  # warm-up
            one = loadtest.load(server.url, files, clients=1, requests=max(1, args.requests // 4),
                                max_seconds=args.max_seconds)
            many = loadtest.load(server.url, files, clients=args.clients, requests=args.requests,
                                 max_seconds=args.max_seconds)
    source = f"real music from {folder}" if folder is not None else "synthetic music"
    print(f"model: {export}; 30-s clips of {source}")
    print(f"SavedModel called directly, one 30-s clip:  {direct * 1000:7.1f} ms (median of 5)")
    for name, result in (("1 client", one), (f"{args.clients} clients", many)):
        print(f"HTTP, {name:<11} {result.requests:4d} requests in {result.seconds:6.1f} s: {result.per_second:6.2f} "
              f"req/s, p50 {result.percentile(50) * 1000:7.1f} ms, p95 {result.percentile(95) * 1000:7.1f} ms, "
              f"errors {result.errors}")
    print(f"app overhead over the direct call (p50, 1 client): {(one.percentile(50) - direct) * 1000:.1f} ms")
    return 1 if one.errors or many.errors else 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv)


if __name__ == "__main__":
    sys.exit(main())
