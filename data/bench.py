"""Benchmark: decode + log-mel throughput against a librosa baseline, and cache memory.

Usage::

    python -m data.bench [--data-dir DIR] [--clips N]

Both paths compute the same features from the same files in the same run: the project's
path (in-graph decoding and ``LogMelSpectrogram``, parallel tf.data map) and librosa's
(``librosa.load(sr=22050)`` + ``melspectrogram`` + ``power_to_db``, one file after another,
as it is usually written). Each is warmed up on one file first, then timed twice, keeping the
better run. Then the whole set is
decoded into the int16 in-memory cache and the peak resident memory is reported. Without
``--data-dir`` a synthetic GTZAN-shaped set of 30-s clips is generated into the cache.
The ratio is printed last. Needs the ``bench`` extra (librosa).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import tensorflow as tf

from data.catalogue import SAMPLE_RATE, DataError, scan
from data.layers import LogMelSpectrogram
from data.pipeline import AUTOTUNE, decoded_dataset, resident_memory_mb
from data.sources import synthetic_data_dir

PROG = "python -m data.bench"
# Each path is timed this many times and its best run kept: single runs on a shared 2-core
# machine varied by up to 2x between identical calls.
REPEATS = 2


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def project_clips_per_second(clips, layer: LogMelSpectrogram) -> float:
    """Decodes and computes log-mel features of ``clips``; returns clips per second."""
    features = decoded_dataset(clips, cache=False).map(
        lambda audio, label, index: layer(tf.cast(audio, tf.float32)[None] / 32768.0), num_parallel_calls=AUTOTUNE
    )
    for _ in features.take(1):  # warm-up: tracing and thread pools
        pass
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        count = sum(1 for _ in features)
        rates.append(count / (time.perf_counter() - start))
    return max(rates)


def librosa_clips_per_second(clips, layer: LogMelSpectrogram) -> float:
    """The librosa baseline on ``clips``; returns clips per second."""
    import librosa

    def features(path: str):
        audio, _ = librosa.load(path, sr=SAMPLE_RATE)
        mel = librosa.feature.melspectrogram(
            y=audio, sr=SAMPLE_RATE, n_fft=layer.n_fft, hop_length=layer.hop_length, n_mels=layer.n_mels
        )
        return librosa.power_to_db(mel)

    features(clips[0].path)  # warm-up: librosa's lazy imports and caches
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for clip in clips:
            features(clip.path)
        rates.append(len(clips) / (time.perf_counter() - start))
    return max(rates)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="dataset folder (default: synthetic 30-s clips, generated once)")
    parser.add_argument("--clips", type=int, default=200, help="clips to time (default: 200)")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be at least 1, got {args.clips}")
    try:
        import librosa  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: librosa is not installed; pip install librosa (the 'bench' extra)", file=sys.stderr)
        return 2
    try:
        data_dir = args.data_dir or synthetic_data_dir(clips_per_genre=20, seconds=30.0, seed=0)
        catalogue = scan(data_dir)
    except DataError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    clips = list(catalogue.clips)[: args.clips]
    layer = LogMelSpectrogram()
    print(f"data: {catalogue.root} ({len(clips)} clips), {tf.config.threading.get_inter_op_parallelism_threads() or 'all'} "
          f"inter-op threads, features: n_fft={layer.n_fft} hop={layer.hop_length} n_mels={layer.n_mels}")

    ours = project_clips_per_second(clips, layer)
    print(f"project decode + log-mel: {ours:8.1f} clips/s")
    theirs = librosa_clips_per_second(clips, layer)
    print(f"librosa load + mel + dB:  {theirs:8.1f} clips/s")

    before = resident_memory_mb()
    cached = decoded_dataset(catalogue.clips)
    samples = sum(int(tf.size(audio)) for audio, _, _ in cached)
    for _ in cached:  # second pass reads the cache
        pass
    seconds = samples / SAMPLE_RATE
    growth = resident_memory_mb() - before
    print(f"cache: {len(catalogue.clips)} clips, {seconds / 3600:.2f} h of audio, RSS grew {growth:.0f} MB "
          f"({growth / max(seconds, 1e-9) * 30 * 1000 / 1024:.2f} GB per 1000 clips of 30 s), peak RSS {_peak_rss_mb():.0f} MB")
    print(f"speed-up over librosa: {ours / theirs:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
