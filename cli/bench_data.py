"""Benchmark: decode + log-mel throughput against a librosa baseline, and cache memory.

Usage::

    python -m data.bench [--data-dir DIR] [--clips N]

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
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.catalogue import SAMPLE_RATE, scan
from data.errors import UsageError
from data.sources import synthetic_data_dir

PROG = "python -m data.bench"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--data-dir", help="dataset folder (default: synthetic 30-s clips, generated once)")
    result.add_argument("--clips", type=int, default=200, help="clips to time (default: 200)")
    return result


def bench(args: argparse.Namespace) -> int:
    """The command: measures each path and prints what it measured."""
    if args.clips < 1:
        raise UsageError(f"--clips must be at least 1, got {args.clips}")
    flags.check_folder(args.data_dir, "data directory")
    if importlib.util.find_spec("librosa") is None:  # looked for, not imported: that takes seconds
        raise UsageError("librosa is not installed; pip install librosa (the 'bench' extra)")
    quiet_tensorflow(args.verbose)
    from data import benchmarks, layers, pipeline  # the library loads TensorFlow: once every flag is checked

    data_dir = args.data_dir or synthetic_data_dir(clips_per_genre=20, seconds=30.0, seed=0)
    catalogue = scan(data_dir)
    clips = list(catalogue.clips)[: args.clips]
    layer = layers.LogMelSpectrogram()
    print(f"data: {catalogue.root} ({len(clips)} clips timed), features: n_fft={layer.n_fft} "
          f"hop={layer.hop_length} n_mels={layer.n_mels}")

    before = pipeline.resident_memory_mb()
    cache = pipeline.decoded_dataset(catalogue.clips).map(lambda audio, label, index: audio)
    samples = sum(int(audio.shape[0]) for audio in cache)
    for _ in cache:  # second pass reads the cache
        pass
    seconds = samples / SAMPLE_RATE
    growth = pipeline.resident_memory_mb() - before
    print(f"cache: {len(catalogue.clips)} clips, {seconds / 3600:.2f} h of audio, RSS grew {growth:.0f} MB "
          f"({growth / max(seconds, 1e-9) * 30 * 1000 / 1024:.2f} GB per 1000 clips of 30 s), "
          f"peak RSS {benchmarks.peak_rss_mb():.0f} MB")

    cached = cache.take(len(clips))
    decoded = pipeline.decoded_dataset(clips, cache=False).map(lambda audio, label, index: audio)
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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, bench, argv)


if __name__ == "__main__":
    sys.exit(main())
