"""Measurements of the data pipeline for ``python -m data.bench``: clips per second of each path, and the
disk cache against the memory cache (``--cache disk``)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf
from keras import ops

from data import audiocache
from data.catalogue import SAMPLE_RATE
from data.decode import int16_to_float
from data.errors import RunFailed, UsageError, install_extra
from data.layers import LogMelSpectrogram
from data.pipeline import AUTOTUNE, DiskClips, decoded_dataset, epochs_dataset, fill_disk_cache, train_dataset

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
        raise UsageError(f"librosa is not installed: {install_extra('bench')}") from None
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


def clips_per_second(dataset: tf.data.Dataset) -> float:
    """One pass over ``dataset``, in elements per second."""
    start = time.perf_counter()
    count = sum(1 for _ in dataset)
    return count / (time.perf_counter() - start)


def first_pass_rates(clips, root: Path) -> dict[str, float]:
    """Clips per second of plain decoding, and of decoding and writing the disk cache into the empty ``root``."""
    with cache_mode("memory", root):
        decoding = clips_per_second(decoded_dataset(clips, cache=False))
    start = time.perf_counter()
    fill_disk_cache(clips, root)
    return {"decode": decoding, "decode + write": len(clips) / (time.perf_counter() - start)}


@contextlib.contextmanager
def cache_mode(mode: str, root: Path):
    """Within the block, decoded audio is kept as ``mode`` says, the disk cache at ``root``."""
    previous = audiocache.current()
    audiocache.configure(dataclasses.replace(previous, mode=mode, folder=str(root.parent)))
    try:
        yield
    finally:
        audiocache.configure(previous)


def evict(paths) -> None:
    """Asks the kernel to drop ``paths`` from its page cache, so the next read comes from the disk."""
    for path in paths:
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def window_rates(clips, root: Path, *, window_seconds: float, batch_size: int, epochs: int) -> dict[str, float]:
    """Training windows per second from the in-memory cache and from the disk cache (read from the disk, and
    again from the page cache): the best of ``REPEATS`` runs of ``epochs`` epochs of the training pipeline as
    training builds and iterates it (the disk read from the disk: evicted from the page cache before each run,
    so its first epoch reads the disk)."""
    def rate(decoded, before: Callable[[], None] = lambda: None) -> float:
        # As training iterates them: every epoch from one iterator (data.pipeline.epochs_dataset).
        windows = epochs_dataset(lambda: train_dataset(decoded, window_seconds=window_seconds, batch_size=batch_size,
                                                       seed=0), epochs)
        for _ in windows.take(1):  # warm-up: tracing, the memory cache filled
            pass
        rates = []
        for _ in range(REPEATS):
            before()
            start = time.perf_counter()
            count = sum(int(batch[0].shape[0]) for batch in windows)
            rates.append(count / (time.perf_counter() - start))
        return max(rates)

    with cache_mode("memory", root):
        memory = decoded_dataset(clips)
        sum(1 for _ in memory)  # filled once, as training fills it in its first epoch
        in_memory = rate(memory)
    with cache_mode("disk", root):
        disk = DiskClips.of(clips)
    return {"memory": in_memory, "disk, read from the disk": rate(disk, lambda: evict(disk.paths)),
            "disk, from the page cache": rate(disk)}


# A training run whose peak resident memory is printed when it ends (VmHWM: this process's own peak).
PEAK_SCRIPT = r"""
import atexit, runpy, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print(f"peak resident memory: {int(line.split()[1]) / 1024:.0f} MB", file=sys.stderr)
atexit.register(peak)
sys.argv = ["python -m tuning.train", *sys.argv[1:]]
runpy.run_module("tuning.train", run_name="__main__")
"""


def training_peak_mb(arguments: list[str], env: dict) -> tuple[float, float]:
    """Runs ``python -m tuning.train ARGUMENTS`` in a new process; returns its peak resident memory in MB and the
    windows per second its last epoch's training steps took (Keras' ``ms/step`` and the batch size).

    Raises:
        RunFailed: with the run's last line, if it failed.
    """
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, *arguments], capture_output=True, text=True, env=env)
    lines = result.stderr.strip().splitlines()
    found = [line for line in lines if line.startswith("peak resident memory: ")]
    steps = re.findall(r"(\d+)(ms|s)/step", result.stdout)
    if result.returncode != 0 or not found or not steps:
        raise RunFailed(f"the training run failed: {lines[-1:] if lines else result.returncode}")
    batch = int(arguments[arguments.index("--batch-size") + 1])
    number, unit = steps[-1]
    return float(found[-1].split()[-2]), batch / (int(number) / (1000 if unit == "ms" else 1))
