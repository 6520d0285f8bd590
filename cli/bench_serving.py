"""Benchmark: latency and throughput of an exported model, directly, format against format, or through the web app.

Usage::

    python -m serving.bench [--model EXPORT_DIR] [--repeats 10]
    python -m serving.bench --http [--model EXPORT_DIR] [--clients 4] [--requests 40] [--max-seconds 120]
    python -m serving.bench --hostile [--model EXPORT_DIR] [--clients 48]
    python -m serving.bench --compare exports/<model>/<version> [--repeats 10]
    python -m serving.bench --soak [--model EXPORT_DIR] [--minutes 10] [--clients N]
    python -m serving.bench --library [--model EXPORT_DIR] [--clips 20] [--songs 4] [--workers N]

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

``--soak`` starts the app (its default limits, its upload folder watched) and drives it for
``--minutes`` with ``--clients`` clients (the app's concurrency by default), each sending in a
random order valid 30-s clips (half of its requests), truncated MP3s, bodies that declare more than
``--max-upload-mb`` and uploads cut off half-way by a reset, with a burst of ``--max-concurrent`` +
``--max-queue`` clips every 30 s. It prints the server's resident memory, open file descriptors,
threads and temporary files after a warm-up and once a minute, and at the end once the app is idle,
with each kind of request's answers; it exits 1 if a count grew from start to end, or memory by more
than 64 MB over the second half (the first half fills the allocator's arenas and the runtime's caches,
which then stay; a leak keeps growing).

``--library`` times tagging a library (``serving.predict --out``) against today's loop of one file
after another, on ``--clips`` real 30-s clips (as ``--http`` makes them) and ``--songs`` synthetic
4-minute songs in MP3: files per second of each, the model alone on decoded windows (the bound no
path passes), then ``--precision bfloat16`` and ``int8`` where they run, with their agreement with
float32 on the real clips (refused below 99%, as ``serving.predict`` refuses them), and the peak
memory of tagging a 10-minute MP3.
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
from serving.config import ABOUT_FILE, FORMAT_FILES, FORMAT_RUNTIMES, FORMATS, MODEL_HELP, Limits, find_export
from serving.library import default_workers

PROG = "python -m serving.bench"
SOAK_RSS_SLACK_MB = 64.0  # the resident memory a soak may move by: allocator arenas and caches breathe


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--model", help=MODEL_HELP)
    result.add_argument("--repeats", type=int, default=10, help="timed single-clip calls (default: 10)")
    result.add_argument("--compare", metavar="VERSION_DIR",
                        help="time every format of this export side by side (exports/<model>/<version>)")
    http = result.add_argument_group("HTTP (--http)")
    http.add_argument("--http", action="store_true", help="benchmark the web app on loopback instead")
    http.add_argument("--clients", type=int,
                      help="concurrent clients (default: 4; 48 with --hostile; the app's --max-concurrent with --soak)")
    http.add_argument("--requests", type=int, default=40, help="requests per run at most (default: 40)")
    http.add_argument("--max-seconds", type=float, default=120.0, help="seconds per run at most (default: 120)")
    http.add_argument("--audio-dir", help="folder of real recordings to cut the 30-s clips from "
                                          "(default: ../shared/real_excerpts if it is there)")
    http.add_argument("--hostile", action="store_true", help="hostile clients against the web app on loopback instead")
    soak = result.add_argument_group("soak (--soak)")
    soak.add_argument("--soak", action="store_true",
                      help="drive the web app with a mix of good and hostile requests for --minutes and report what "
                           "it holds at the start and the end (exit 1 if anything grew)")
    soak.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default: 10)")
    library = result.add_argument_group("tagging a library (--library)")
    library.add_argument("--library", action="store_true",
                         help="time serving.predict --out against one file after another, on real clips and MP3 songs")
    library.add_argument("--clips", type=int, default=20, help="real 30-s clips (default: 20)")
    library.add_argument("--songs", type=int, default=4, help="synthetic 4-minute MP3 songs (default: 4)")
    library.add_argument("--workers", type=int, default=default_workers(),
                         help=f"decoding processes (default: {default_workers()} on this machine)")
    return result


def check(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The export to time and, with ``--http``, the folder of real music to send (None: synthetic).

    Raises:
        UsageError: for a value out of range, or a folder that is not one.
    """
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    if sum((args.http, args.hostile, args.soak, args.library, args.compare is not None)) > 1:
        raise UsageError("--http, --hostile, --soak, --library and --compare are five benchmarks; give one")
    if args.clips < 1 or args.songs < 1 or args.workers < 1:
        raise UsageError(f"--clips, --songs and --workers must be at least 1, got {args.clips}, {args.songs} and "
                         f"{args.workers}")
    if args.clients is None:
        args.clients = 48 if args.hostile else Limits().concurrent if args.soak else 4
    if args.clients < 1 or args.requests < 1 or not args.max_seconds > 0:
        raise UsageError("--clients and --requests must be at least 1 and --max-seconds positive")
    if not args.minutes > 0:
        raise UsageError(f"--minutes must be positive, got {args.minutes:g}")
    shared = Path(__file__).resolve().parents[2] / "shared" / "real_excerpts"
    folder = Path(args.audio_dir) if args.audio_dir else (shared if shared.is_dir() else None)
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--audio-dir {folder} is not a folder")
    if args.compare is not None:
        if args.model:
            raise UsageError("--compare times the formats of the export it names; it does not take --model")
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
    quiet_tensorflow(args.verbose)
    from serving import benchmarks, loadtest  # the library loads TensorFlow: only once every flag is checked

    if args.compare is not None:
        return compare(args, export, folder, benchmarks)
    if args.hostile:
        return hostile(args, export, folder, benchmarks, loadtest)
    if args.soak:
        return soak(args, export, folder, benchmarks, loadtest)
    if args.library:
        return library(args, export, folder, benchmarks)
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


def hostile(args: argparse.Namespace, export: Path, audio_dir: Path | None, benchmarks, loadtest) -> int:
    """``--hostile``: what the app does with hostile uploads and a burst of ordinary ones, in its default limits.

    Every client here sends its whole body before it reads the answer, as most HTTP libraries do."""
    with tempfile.TemporaryDirectory(prefix="gtzan-hostile-bench-") as work:
        files = benchmarks.hostile_files(Path(work) / "files", long_seconds=1800)
        (clip,), real = benchmarks.clips_30s(audio_dir, Path(work), count=1)
        spool = Path(work) / "spool"
        spool.mkdir()
        with loadtest.Server(export, spool=spool) as server:
            limits = Limits()
            print(f"model: {export}; the app with its default limits (--max-concurrent = {limits.concurrent} cores, "
                  f"--max-queue {limits.queue}, --queue-timeout {limits.queue_timeout_s:g} s)")
            result = loadtest.storm(server, clip.name, clip.read_bytes(), clients=16, timeout=120)
            print(f"16 clips of 30 s ({'real' if real else 'synthetic'} music) at once: answers "
                  f"{dict(sorted(result['statuses'].items()))}, slowest /api/health "
                  f"{result['health_max_s'] * 1000:.0f} ms, {result['seconds']:.1f} s")
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


def soak(args: argparse.Namespace, export: Path, audio_dir: Path | None, benchmarks, loadtest) -> int:
    """``--soak``: the app on its default limits driven for ``--minutes``; exit 1 if anything it holds grew."""
    limits = Limits()
    burst = limits.concurrent + limits.queue
    with tempfile.TemporaryDirectory(prefix="gtzan-soak-") as work:
        (clip,), real = benchmarks.clips_30s(audio_dir, Path(work), count=1)
        truncated = benchmarks.hostile_files(Path(work) / "files", long_seconds=60)["truncated MP3 (10 s declared)"]
        spool = Path(work) / "spool"
        spool.mkdir()
        with loadtest.Server(export, spool=spool) as server:
            print(f"model: {export}; the app with its default limits (--max-concurrent {limits.concurrent}, --max-queue "
                  f"{limits.queue}); {args.clients} clients sending valid 30-s clips of {'real' if real else 'synthetic'}"
                  f" music (half), truncated files, bodies declared over --max-upload-mb and uploads cut off "
                  f"half-way, and a burst of {burst} clips every 30 s, for {args.minutes:g} minutes")
            result = loadtest.soak(server, clip, truncated, seconds=args.minutes * 60, clients=args.clients,
                                   burst=burst, burst_every_s=30.0, upload_cap_mb=limits.max_upload_mb,
                                   on_sample=lambda s, v: print(f"  after {s / 60:4.1f} min: {v}", flush=True))
    print(f"start (after a warm-up, idle): {result.start}")
    print(f"end (idle again):              {result.end}")
    for kind, statuses in result.statuses.items():
        print(f"  {kind:<24} answers {dict(sorted(statuses.items()))}")
    grown = result.growth(SOAK_RSS_SLACK_MB)
    at, steady = result.steady
    print(f"grew: {'; '.join(grown)}" if grown else
          f"nothing grew (resident memory within {SOAK_RSS_SLACK_MB:g} MB over the second half: "
          f"{steady.rss_mb:.0f} MB at {at / 60:.1f} min, {result.end.rss_mb:.0f} MB at the end; the counts not at all)")
    return 1 if grown else 0


def library(args: argparse.Namespace, export: Path, audio_dir: Path | None, benchmarks) -> int:
    """``--library``: today's loop, ``--out`` in float32 and in the reduced precisions, the model's bound."""
    with tempfile.TemporaryDirectory(prefix="gtzan-library-bench-") as work:
        for line in benchmarks.library_bench(export, audio_dir, Path(work), clips=args.clips, songs=args.songs,
                                             workers=args.workers):
            print(line, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv)


if __name__ == "__main__":
    sys.exit(main())
