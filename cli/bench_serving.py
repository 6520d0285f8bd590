"""Benchmark: latency and throughput of an exported model, directly, format against format, or through the web app.

Usage::

    python -m serving.bench [--model EXPORT_DIR] [--repeats 10]
    python -m serving.bench --http [--model EXPORT_DIR] [--clients 4] [--requests 40] [--max-seconds 120]
    python -m serving.bench --hostile [--model EXPORT_DIR] [--clients 48]
    python -m serving.bench --compare exports/<model>/<version> [--repeats 10]

A new Python process that imports only the model's runtime (TensorFlow for a SavedModel, ONNX
Runtime, LiteRT or OpenVINO for ``--model`` a ``model.onnx``, ``.tflite`` or ``.xml``) loads it
(load time reported apart), warms it up, then times one 30-s clip, its windows in one call (median
latency over ``--repeats`` calls), and 32 clips of 30 s in one call (clips per second), and
reports its peak memory.

``--compare VERSION_DIR`` times every format of one export (SavedModel, ONNX, LiteRT, OpenVINO:
``zoo.evaluate --formats``) side by side, each in a fresh process that imports only numpy and its
runtime: load time, the latency of one 30-s clip (its windows in one call, median and p95 of
``--repeats``), the throughput of 8 clips in one call, the process's peak memory, and the largest
difference of each format's window probabilities from the SavedModel's on real 30-s clips (as
``--http`` makes them), with the share of clips whose best genre is the same. Where the CPU has
bfloat16 units, OpenVINO also runs in bfloat16 (the toolkit serves it in float32).

``--http`` starts ``python -m serving.app`` on a loopback port and sends it real 30-s clips
(the real GTZAN excerpts of ``../shared/real_excerpts`` or ``--audio-dir`` end to end; synthetic
music without them) as uploads: first from one client, then from ``--clients`` at once, each run
bounded by ``--requests`` and ``--max-seconds``. It prints requests per second, p50/p95 latency
and errors (``serving.loadtest``), and the overhead of the app (upload, decoding, JSON) over
calling the model directly in one process on the same clip.

``--hostile`` starts the app (its default limits) with its upload folder watched, and sends what a
hostile or careless client would: files whose headers declare huge rates or channel counts, a
truncated MP3 (twice, with another upload between), ``--clients`` 30-minute recordings at once
while ``/api/health`` is asked every 50 ms, and a 1-GB body. It prints each answer's status, the
server's resident memory growth, the slowest health answer, and how fast and how late the big
body was refused.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from cli.runner import parser, quiet_tensorflow, run, warn
from data.errors import UsageError, install_extra
from serving.config import ABOUT_FILE, FORMAT_FILES, FORMAT_RUNTIMES, FORMATS, MODEL_HELP, find_export

PROG = "python -m serving.bench"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--model", help=MODEL_HELP)
    result.add_argument("--repeats", type=int, default=10, help="timed single-clip calls (default: 10)")
    result.add_argument("--compare", metavar="VERSION_DIR",
                        help="time every format of this export side by side (exports/<model>/<version>)")
    http = result.add_argument_group("HTTP (--http)")
    http.add_argument("--http", action="store_true", help="benchmark the web app on loopback instead")
    http.add_argument("--clients", type=int, help="concurrent clients (default: 4; 48 with --hostile)")
    http.add_argument("--requests", type=int, default=40, help="requests per run at most (default: 40)")
    http.add_argument("--max-seconds", type=float, default=120.0, help="seconds per run at most (default: 120)")
    http.add_argument("--audio-dir", help="folder of real recordings to cut the 30-s clips from "
                                          "(default: ../shared/real_excerpts if it is there)")
    http.add_argument("--hostile", action="store_true", help="hostile clients against the web app on loopback instead")
    return result


def check(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The export to time and, with ``--http``, the folder of real music to send (None: synthetic).

    Raises:
        UsageError: for a value out of range, or a folder that is not one.
    """
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    if args.clients is None:
        args.clients = 48 if args.hostile else 4
    if args.clients < 1 or args.requests < 1 or not args.max_seconds > 0:
        raise UsageError("--clients and --requests must be at least 1 and --max-seconds positive")
    shared = Path(__file__).resolve().parents[2] / "shared" / "real_excerpts"
    folder = Path(args.audio_dir) if args.audio_dir else (shared if shared.is_dir() else None)
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--audio-dir {folder} is not a folder")
    if args.compare is not None:
        if args.model or args.http or args.hostile:
            raise UsageError("--compare times the formats of the export it names; it goes with neither --model, "
                             "--http nor --hostile")
        return compare_folder(args.compare), folder
    return find_export(args.model), folder


def compare_folder(text: str) -> Path:
    """The export version folder ``--compare`` names, checked: it holds this toolkit's description and a model.

    Raises:
        UsageError: naming what is missing.
    """
    folder = Path(text)
    if not (folder / ABOUT_FILE).is_file():
        raise UsageError(f"--compare {text}: not an export version folder of this toolkit (no {ABOUT_FILE}); "
                         "expected exports/<model>/<version> as python -m zoo.evaluate writes it")
    present = [name for name in FORMATS if (folder / FORMAT_FILES[name]).is_file()]
    if not present:
        raise UsageError(f"--compare {text}: holds no exported model; export one with python -m zoo.evaluate "
                         "TARGET --formats savedmodel,onnx,litert,openvino")
    return folder


def bench(args: argparse.Namespace) -> int:
    """The command: times the export in a fresh process (or through the app) and prints what it measured."""
    export, folder = check(args)
    if args.http and args.hostile:
        raise UsageError("--http and --hostile are two benchmarks; give one")
    quiet_tensorflow(args.verbose)
    from serving import benchmarks, loadtest  # the library loads TensorFlow: only once every flag is checked

    if args.compare is not None:
        return compare(args, export, folder, benchmarks)
    if args.hostile:
        return hostile(args, export, benchmarks, loadtest)
    if not args.http:
        with tempfile.TemporaryDirectory(prefix="gtzan-bench-") as work:
            timings = benchmarks.time_export(export, args.repeats, Path(work))
        print(f"model: {export} ({timings['runtime']})")
        print(f"load time:                 {timings['load_s']:.2f} s")
        print(f"latency, one 30-s clip:    {statistics.median(timings['latencies_s']) * 1000:.1f} ms "
              f"(median of {args.repeats})")
        print(f"throughput, 32 x 30 s:     {32 / timings['batch_s']:.1f} clips/s ({timings['batch_s']:.2f} s a batch)")
        print(f"peak memory:               {timings['peak_mb']:.0f} MB")
        return 0
    # --http: the app on loopback against the model called directly.
    with tempfile.TemporaryDirectory(prefix="gtzan-http-bench-") as work:
        files, real = benchmarks.clips_30s(folder, Path(work))
        direct = statistics.median(benchmarks.direct_latencies(export, files[0]))
        with loadtest.Server(export, "--max-concurrent", str(args.clients)) as server:
            loadtest.load(server.url, files[:1], clients=1, requests=2, max_seconds=args.max_seconds)  # warm-up
            one = loadtest.load(server.url, files, clients=1, requests=max(1, args.requests // 4),
                                max_seconds=args.max_seconds)
            many = loadtest.load(server.url, files, clients=args.clients, requests=args.requests,
                                 max_seconds=args.max_seconds)
    source = (f"real music from {folder}" if real else
              "synthetic music" + (f" ({folder} holds too little)" if folder is not None else ""))
    print(f"model: {export}; 30-s clips of {source}")
    print(f"model called directly, one 30-s clip:       {direct * 1000:7.1f} ms (median of 5)")
    for name, result in (("1 client", one), (f"{args.clients} clients", many)):
        print(f"HTTP, {name:<11} {result.requests:4d} requests in {result.seconds:7.2f} s: {result.per_second:6.2f} "
              f"req/s, p50 {result.percentile(50) * 1000:7.1f} ms, p95 {result.percentile(95) * 1000:7.1f} ms, "
              f"errors {result.errors}")
    print(f"app overhead over the direct call (p50, 1 client): {(one.percentile(50) - direct) * 1000:.1f} ms")
    return 1 if one.errors or many.errors else 0


def compare(args: argparse.Namespace, export: Path, audio_dir: Path | None, benchmarks) -> int:
    """``--compare``: every format of one export side by side, one table."""
    missing = [name for name in FORMAT_RUNTIMES if (export / FORMAT_FILES[name]).is_file()
               and importlib.util.find_spec(FORMAT_RUNTIMES[name]) is None]
    for name in missing:
        warn(PROG, f"{name} left out: its runtime {FORMAT_RUNTIMES[name]} is not installed "
                   f"({install_extra(name)})")
    with tempfile.TemporaryDirectory(prefix="gtzan-compare-") as work:
        rows, real = benchmarks.compare_formats(export, audio_dir, args.repeats, Path(work), skip=missing)
    source = f"real music from {audio_dir}" if real else "synthetic music"
    print(f"model: {export}; {rows[0]['clips']} 30-s clips of {source}; {os.cpu_count()} CPU cores; "
          f"differences from {rows[0]['format']}")
    print(f"{'format':<17}{'runtime':<20}{'load s':>7}{'p50 ms':>9}{'p95 ms':>9}{'clips/s':>9}{'peak MB':>9}"
          f"{'max |dp|':>10}{'same top-1':>11}")
    for row in rows:
        latencies = sorted(row["latencies_s"])
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        print(f"{row['format']:<17}{row['runtime']:<20}{row['load_s']:>7.2f}{statistics.median(latencies) * 1000:>9.1f}"
              f"{p95 * 1000:>9.1f}{row['clips'] / row['batch_s']:>9.1f}{row['peak_mb']:>9.0f}{row['max_diff']:>10.1e}"
              f"{row['same_top1']:>11.0%}")
    about = json.loads((export / ABOUT_FILE).read_text())
    if not about.get("model"):
        return 0
    cost = benchmarks.arithmetic(about, rows[0]["windows_per_clip"])
    floor = cost["gflop"] / cost["matmul_gflops"]
    print(f"arithmetic of a 30-s clip: {cost['gflop']:.1f} GFLOP (SavedModel, FFT), {cost['gflop_portable']:.1f} "
          f"GFLOP (the other formats' DFT front end); float32 matmul here {cost['matmul_gflops']:.0f} GFLOP/s, so at "
          f"least {floor * 1000:.0f} ms a clip in float32")
    return 0


def hostile(args: argparse.Namespace, export: Path, benchmarks, loadtest) -> int:
    """``--hostile``: what the app does with hostile uploads, in its default limits."""
    with tempfile.TemporaryDirectory(prefix="gtzan-hostile-bench-") as work:
        files = benchmarks.hostile_files(Path(work) / "files", long_seconds=1800)
        spool = Path(work) / "spool"
        spool.mkdir()
        with loadtest.Server(export, spool=spool) as server:
            print(f"model: {export}; the app with its default limits (--max-concurrent = {os.cpu_count()} cores)")
            for name, path in files.items():
                if "minutes" in name:
                    continue
                result = loadtest.storm(server, path.name, path.read_bytes(), clients=1, timeout=120)
                print(f"{name + ':':40s} answered {sorted(result['statuses'])}, server memory "
                      f"+{result['rss_growth_mb']:.0f} MB")
            cut = files["truncated MP3 (10 s declared)"]
            answers = [loadtest.answer(server.url, cut), loadtest.answer(server.url, files["8 channels at 384 kHz, 2 s (FLAC)"]),
                       loadtest.answer(server.url, cut)]
            print(f"truncated MP3 twice, another upload between: same answer {answers[0] == answers[2]}, "
                  f"{answers[0].get('seconds')} s decoded of the 10 s its header declares")
            long = next(path for name, path in files.items() if "minutes" in name)
            result = loadtest.storm(server, long.name, long.read_bytes(), clients=args.clients, timeout=600)
            print(f"{args.clients} uploads of 30 minutes ({long.stat().st_size / 1e6:.0f} MB each) at once: answers "
                  f"{dict(sorted(result['statuses'].items()))}, slowest /api/health {result['health_max_s'] * 1000:.0f} ms, "
                  f"server memory +{result['rss_growth_mb']:.0f} MB, {result['seconds']:.0f} s")
            big = loadtest.big_body(server, 1024)
            print(f"a 1-GB body: answered {big['status']} after {big['answered_s']:.2f} s, {big['sent_mb']:.0f} MB "
                  f"sent, at most {big['spool_peak_mb']:.0f} MB on the server's disk")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv)


if __name__ == "__main__":
    sys.exit(main())
