"""Measurements of the data pipeline for ``python -m data.bench``: clips per second of each path."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import tensorflow as tf
from keras import ops

from data.catalogue import SAMPLE_RATE
from data.decode import int16_to_float
from data.errors import UsageError
from data.layers import LogMelSpectrogram
from data.pipeline import AUTOTUNE

# Each path is timed this many times and its best run kept: single runs on a shared 2-core
# machine varied by up to 2x between identical calls.
REPEATS = 3


def librosa_module():
    """librosa, the benchmarks' extra: imported by the baseline that uses it, not with this module.

    Raises:
        UsageError: if it is not installed, with the line that installs it.
    """
    try:
        import librosa
    except ImportError:
        raise UsageError("librosa is not installed; pip install librosa (the 'bench' extra)") from None
    return librosa


def peak_rss_mb() -> float:
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
    librosa = librosa_module()

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
