"""Benchmark: decode + log-mel throughput against a librosa baseline, and cache memory.

Usage::

    python -m data.bench [--data-dir DIR] [--clips N]
    python -m data.bench --cache disk [--data-dir DIR] [--clips N] [--memory-budget-gb 0.1]

Both paths compute the same features (same FFT size, hop and mel bands) from the same files
in the same run: the project's path (in-graph decoding to int16 as the pipeline caches it,
then ``LogMelSpectrogram``, parallel tf.data map) and librosa's (``librosa.load(sr=22050)`` +
``melspectrogram`` + ``power_to_db``, one file after another, as it is usually written).
Each is warmed up first, then all are timed three times in turns, keeping each one's best run.

First the whole set is decoded into the int16 in-memory cache and the growth and peak of
resident memory are reported. From that cache, two parts of the path are timed alone: the
log-mel layer, and the STFT it starts with. Every path that computes these features does the
STFT, so with this STFT its rate bounds the speed-up reachable on this machine. The
ratio is printed last. Without ``--data-dir`` a synthetic GTZAN-shaped set of 30-s clips is
generated into the cache. Needs the ``bench`` extra (librosa).

``--cache disk`` measures the disk cache of decoded audio (``data.audiocache``) instead: the first
pass (decode and write) beside plain decoding, in clips per second; training windows per second
(3-s windows, batches of 32, five epochs from one iterator as training reads them, best of three
runs) from the in-memory cache and from the disk cache, read from the disk (each entry dropped from
the page cache before a run) and from the page cache; what a
training step of ``bncnn-32-64-128-256`` consumes, in windows per second, from a short
``tuning.train`` run; and the peak resident memory of a training run on a synthetic set of 30-s
clips four times larger than ``--memory-budget-gb`` (``--cache auto``: it streams from disk)
against the budget plus the model's own memory (the same run on 100 clips of 3 s, in memory).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import tempfile
from pathlib import Path

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.audiocache import DECODING
from data.catalogue import SAMPLE_RATE, scan
from data.errors import UsageError, install_extra
from data.sources import synthetic_data_dir

PROG = "python -m data.bench"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--data-dir", help="dataset folder (default: synthetic 30-s clips, generated once)")
    result.add_argument("--clips", type=int, default=200, help="clips to time (default: 200)")
    result.add_argument("--cache", choices=["disk"], help="measure the disk cache of decoded audio instead")
    result.add_argument("--memory-budget-gb", type=float, default=0.1,
                        help="with --cache disk: the budget of the memory run (default: 0.1; its set is 4x larger)")
    return result


def bench(args: argparse.Namespace) -> int:
    """The command: measures each path and prints what it measured."""
    if args.clips < 1:
        raise UsageError(f"--clips must be at least 1, got {args.clips}")
    flags.check_folder(args.data_dir, "data directory")
    if not args.memory_budget_gb > 0:
        raise UsageError(f"--memory-budget-gb must be positive, got {args.memory_budget_gb}")
    if args.cache is None and importlib.util.find_spec("librosa") is None:  # looked for, not imported: it takes seconds
        raise UsageError(f"librosa is not installed: {install_extra('bench')}")
    quiet_tensorflow(args.verbose)
    from data import benchmarks, layers, pipeline, processes  # the library loads TensorFlow: once every flag is checked

    data_dir = args.data_dir or synthetic_data_dir(clips_per_genre=20, seconds=30.0, seed=0)
    if args.cache == "disk":
        return disk(args, data_dir, benchmarks)
    catalogue = scan(data_dir)
    clips = list(catalogue.clips)[: args.clips]
    layer = layers.LogMelSpectrogram()
    print(f"data: {catalogue.root} ({len(clips)} clips timed), features: n_fft={layer.n_fft} "
          f"hop={layer.hop_length} n_mels={layer.n_mels}")

    before = processes.resident_memory_mb()
    cache = pipeline.decoded_dataset(catalogue.clips, mode="memory").map(lambda audio, label, index: audio)
    samples = sum(int(audio.shape[0]) for audio in cache)
    for _ in cache:  # second pass reads the cache
        pass
    seconds = samples / SAMPLE_RATE
    growth = processes.resident_memory_mb() - before
    print(f"cache: {len(catalogue.clips)} clips, {seconds / 3600:.2f} h of audio, RSS grew {growth:.0f} MB "
          f"({growth / max(seconds, 1e-9) * 30 * 1000 / 1024:.2f} GB per 1000 clips of 30 s), "
          f"peak RSS {benchmarks.peak_rss_mb():.0f} MB")

    cached = cache.take(len(clips))
    decoded = pipeline.decoded_dataset(clips, cache=False, mode="memory").map(lambda audio, label, index: audio)
    rates = benchmarks.best_rates({
        "from the cache, STFT alone": benchmarks.dataset_run(benchmarks.on_clips(cached, benchmarks.stft(layer))),
        "from the cache, log-mel": benchmarks.dataset_run(benchmarks.on_clips(cached, layer)),
        "project decode + log-mel": benchmarks.dataset_run(benchmarks.on_clips(decoded, layer)),
        "librosa load + mel + dB": benchmarks.librosa_run(clips, layer),
    })
    for name, rate in rates.items():
        print(f"{name + ':':31s} {rate:8.1f} clips/s")
    theirs = rates["librosa load + mel + dB"]
    print(f"{'bound from the STFT alone:':31s} {rates['from the cache, STFT alone'] / theirs:8.1f}x librosa")
    print(f"speed-up over librosa: {rates['project decode + log-mel'] / theirs:.1f}x")
    return 0


def disk(args: argparse.Namespace, data_dir, benchmarks) -> int:
    """``--cache disk``: the disk cache against the memory cache, the first pass, and memory under a budget."""
    clips = list(scan(data_dir).clips)[: args.clips]
    print(f"data: {data_dir} ({len(clips)} clips), 3-s windows, batches of 32, {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory(prefix="gtzan-disk-bench-") as work:
        first = benchmarks.first_pass_rates(clips, Path(work) / "first" / DECODING)
        print(f"{'first pass, plain decoding:':44s} {first['decode']:8.1f} clips/s")
        print(f"{'first pass, decode + write the disk cache:':44s} {first['decode + write']:8.1f} clips/s")
        rates = benchmarks.window_rates(clips, Path(work) / "windows" / DECODING, window_seconds=3.0, batch_size=32,
                                        epochs=5)
        for name, rate in rates.items():
            print(f"{'training windows, ' + name + ':':44s} {rate:8.0f} windows/s"
                  + ("" if name == "memory" else f" ({rate / rates['memory']:.2f}x memory)"))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        small = synthetic_data_dir(clips_per_genre=10, seconds=3.0, seed=1)
        budget = args.memory_budget_gb * 1e9
        big = synthetic_data_dir(clips_per_genre=math.ceil(4 * budget / (30 * SAMPLE_RATE * 2) / 10), seconds=30.0,
                                 seed=1)
        run = ["bncnn-32-64-128-256", "--epochs", "2", "--batch-size", "32", "--wandb", "disabled"]
        own, step = benchmarks.training_peak_mb([*run, "--data-dir", str(small), "--cache", "memory", "--out",
                                                 str(Path(work) / "small")], env)
        print(f"{'a training step of bncnn-32-64-128-256 takes:':44s} {step:8.0f} windows/s")
        peak, _ = benchmarks.training_peak_mb([*run, "--data-dir", str(big), "--memory-budget-gb",
                                               str(args.memory_budget_gb), "--cache-dir", str(Path(work) / "budget"),
                                               "--out", str(Path(work) / "big")], env)
    size = sum(1 for _ in big.rglob("*.wav")) * 30 * SAMPLE_RATE * 2 / 1e9
    print(f"peak memory of training on 100 clips of 3 s in memory (the model's own): {own:.0f} MB")
    print(f"peak memory of training on {size:.2f} GB of decoded audio with a {args.memory_budget_gb:g} GB budget "
          f"(--cache auto): {peak:.0f} MB, {'within' if peak <= own + budget / 1e6 else 'over'} the budget plus the "
          f"model's own ({own + budget / 1e6:.0f} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv)


if __name__ == "__main__":
    sys.exit(main())
