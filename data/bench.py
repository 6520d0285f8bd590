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

import resource
import sys
import time
from collections.abc import Callable

import tensorflow as tf
from keras import ops

from data import cli
from data.catalogue import SAMPLE_RATE, DataError, scan
from data.decode import int16_to_float
from data.layers import LogMelSpectrogram
from data.pipeline import AUTOTUNE, decoded_dataset, resident_memory_mb
from data.sources import synthetic_data_dir

PROG = "python -m data.bench"
# Each path is timed this many times and its best run kept: single runs on a shared 2-core
# machine varied by up to 2x between identical calls.
REPEATS = 3


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def dataset_run(dataset: tf.data.Dataset) -> Callable[[], float]:
    """Warms ``dataset`` up (tracing, thread pools); returns a function timing one pass in clips/s."""
    for _ in dataset.take(1):
        pass

    def run() -> float:
        start = time.perf_counter()
        count = sum(1 for _ in dataset)
        return count / (time.perf_counter() - start)

    return run


def on_clips(audio: tf.data.Dataset, fn) -> tf.data.Dataset:
    """Maps ``fn`` over int16 clips as a batch of one float waveform, in parallel."""
    return audio.map(lambda samples: fn(int16_to_float(samples)[None]), num_parallel_calls=AUTOTUNE)


def stft(layer: LogMelSpectrogram):
    """The layer's STFT alone, as power summed per frame.

    Summed so that the element handed back is as small as the log-mel one: copying out the
    whole spectrogram would be timed otherwise.
    """
    return lambda waveform: ops.sum(layer.power_spectrogram(waveform), axis=-1)


def librosa_run(clips, layer: LogMelSpectrogram) -> Callable[[], float]:
    """The librosa baseline, warmed up; returns a function timing one pass in clips/s."""
    import librosa

    def features(path: str):
        audio, _ = librosa.load(path, sr=SAMPLE_RATE)
        mel = librosa.feature.melspectrogram(
            y=audio, sr=SAMPLE_RATE, n_fft=layer.n_fft, hop_length=layer.hop_length, n_mels=layer.n_mels
        )
        return librosa.power_to_db(mel)

    features(clips[0].path)  # librosa's lazy imports and caches

    def run() -> float:
        start = time.perf_counter()
        for clip in clips:
            features(clip.path)
        return len(clips) / (time.perf_counter() - start)

    return run


def best_rates(runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Times every path ``REPEATS`` times, taking turns, and keeps each path's best rate.

    Taking turns spreads each path's runs over the whole measurement, so a slow spell of a
    shared machine does not fall on all the runs of one path.
    """
    best = dict.fromkeys(runs, 0.0)
    for _ in range(REPEATS):
        for name, run in runs.items():
            best[name] = max(best[name], run())
    return best


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = cli.parser(PROG, __doc__)
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
    print(f"data: {catalogue.root} ({len(clips)} clips timed), features: n_fft={layer.n_fft} "
          f"hop={layer.hop_length} n_mels={layer.n_mels}")

    before = resident_memory_mb()
    cache = decoded_dataset(catalogue.clips).map(lambda audio, label, index: audio)
    samples = sum(int(tf.size(audio)) for audio in cache)
    for _ in cache:  # second pass reads the cache
        pass
    seconds = samples / SAMPLE_RATE
    growth = resident_memory_mb() - before
    print(f"cache: {len(catalogue.clips)} clips, {seconds / 3600:.2f} h of audio, RSS grew {growth:.0f} MB "
          f"({growth / max(seconds, 1e-9) * 30 * 1000 / 1024:.2f} GB per 1000 clips of 30 s), peak RSS {_peak_rss_mb():.0f} MB")

    cached = cache.take(len(clips))
    decoded = decoded_dataset(clips, cache=False).map(lambda audio, label, index: audio)
    rates = best_rates({
        "from the cache, STFT alone": dataset_run(on_clips(cached, stft(layer))),
        "from the cache, log-mel": dataset_run(on_clips(cached, layer)),
        "project decode + log-mel": dataset_run(on_clips(decoded, layer)),
        "librosa load + mel + dB": librosa_run(clips, layer),
    })
    for name, rate in rates.items():
        print(f"{name + ':':31s} {rate:8.1f} clips/s")
    theirs = rates["librosa load + mel + dB"]
    print(f"{'bound from the STFT alone:':31s} {rates['from the cache, STFT alone'] / theirs:8.1f}x librosa")
    print(f"speed-up over librosa: {rates['project decode + log-mel'] / theirs:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
