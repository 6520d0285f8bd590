"""tf.data pipeline: decode clips in parallel, cache them, cut training and evaluation windows.

Decoded audio is cached as **int16**: every GTZAN file is PCM16, so int16 keeps every bit of
it at half the memory of float32 (a full 1000-clip GTZAN takes about 1.3 GB instead of
2.6 GB); samples become float32 in [-1, 1) after the cache. The cache is in memory, or on disk
and streamed when the decoded set is larger than the memory budget (``data.audiocache``).

* Training: shuffle clips, take one random window of ``window_seconds`` per clip per epoch,
  batch, prefetch. A clip shorter than a window is zero-padded at the end. All the epochs of
  a fit are one dataset (:func:`epochs_dataset`), the same sequence from every iterator.
* Evaluation: every non-overlapping window of each clip, in order; the last partial window is
  dropped (a clip shorter than one window gives one zero-padded window), each window
  carrying its clip's label and index so that predictions can be averaged per clip.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from keras import ops

from data import audiocache
from data.catalogue import CODECS, Clip
from data.config import window_samples
from data.decode import decode_file, int16_to_float

AUTOTUNE = tf.data.AUTOTUNE
# Clips the training shuffle holds: the whole training part of GTZAN.
SHUFFLE_BUFFER = 1024
# Evaluation windows per batch when they stream from the disk cache: small, so that the batch and the
# model's activations for it stay small beside the memory budget.
STREAMED_EVAL_BATCH = 32
logger = logging.getLogger(__name__)


def decoded_dataset(clips: Sequence[Clip], cache: bool = True, mode: str | None = None) -> tf.data.Dataset:
    """Decodes ``clips`` in parallel into ``(audio int16 [samples], label int32, index int32)``.

    ``index`` is the clip's position in ``clips``. Clips that soundfile fails to decode
    come out empty and are dropped (the catalogue's header check lets few through).

    Where the decoded audio is kept follows ``data.audiocache`` (``--cache``): in memory, or in
    the disk cache, written on the first pass and read back on every pass after (whether or not
    ``cache`` asks to keep it), in the same order, so the dataset yields the same elements either way.

    Args:
        clips: Clips to decode.
        cache: Keep the decoded audio after the first pass (in memory, or on disk).
        mode: ``memory`` or ``disk`` (None: as ``data.audiocache.choose`` decides for these clips).
    """
    if not clips:
        raise ValueError("no clips to decode")
    if (mode or audiocache.choose("clips", held=clips)) == "disk":
        return streamed_dataset(clips)
    ds = _decoded(clips).filter(lambda audio, label, index: tf.size(audio) > 0)
    return ds.cache() if cache else ds


def _decoded(clips: Sequence[Clip]) -> tf.data.Dataset:
    """Every clip decoded, in order (an empty array for a clip that fails to decode)."""
    paths = [clip.path for clip in clips]
    codecs = [CODECS.index(clip.codec) for clip in clips]
    labels = [clip.label for clip in clips]
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths), tf.constant(codecs, tf.int32), tf.constant(labels, tf.int32), tf.range(len(clips)))
    )

    def decode(path, codec, label, index):
        return decode_file(path, codec, dtype=tf.int16), label, index

    return ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)


def fill_disk_cache(clips: Sequence[Clip], root: Path | None = None) -> list[Path]:
    """Writes the disk cache's entry of every clip that has none yet (``data.audiocache``); returns every
    clip's entry.

    Decoding runs in parallel in tf.data; each entry is written whole or not at all, so a pass that is
    killed keeps what it finished and the next one writes the rest. A clip that fails to decode gets an
    empty entry (it is left out, as from the memory cache, and not decoded again). Processes that fill
    the same cache at once (the workers of a search) take turns: the first decodes, the others find
    its entries.
    """
    root = root or audiocache.current().root
    paths, missing = audiocache.missing_entries(clips, root)
    if not missing:
        return paths
    with audiocache.filling(root):  # one process writes at a time; the others find its entries after
        paths, missing = audiocache.missing_entries(clips, root)
        if missing:
            audiocache.remove_leftovers(root)
            logger.info("decoding %d clips into %s", len(missing), root)
            todo = [clips[i] for i in missing]
            for audio, _, position in _decoded(todo).as_numpy_iterator():
                audiocache.write_entry(paths[missing[position]], audio)
    return paths


@dataclasses.dataclass(frozen=True)
class DiskClips:
    """Clips kept in the disk cache, for training: each epoch decodes only the window it draws from each entry.

    Attributes:
        paths: Each clip's entry (``fill_disk_cache``), in the clips' order.
        labels: Each clip's label.
        samples: Each clip's decoded length (0: it failed to decode, and is left out).
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    samples: tuple[int, ...]

    @classmethod
    def of(cls, clips: Sequence[Clip]) -> DiskClips:
        """The clips' entries, written first where missing."""
        paths = fill_disk_cache(clips)
        return cls(tuple(map(str, paths)), tuple(clip.label for clip in clips),
                   tuple(path.stat().st_size // 2 for path in paths))

    def __len__(self) -> int:
        """The clips that decoded."""
        return sum(1 for n in self.samples if n > 0)

    def dataset(self) -> tf.data.Dataset:
        """``(entry path, label, samples)`` of every clip that decoded, in order."""
        kept = [i for i, n in enumerate(self.samples) if n > 0]
        return tf.data.Dataset.from_tensor_slices((tf.constant([self.paths[i] for i in kept]),
                                                   tf.constant([self.labels[i] for i in kept], tf.int32),
                                                   tf.constant([self.samples[i] for i in kept], tf.int64)))


def streamed_dataset(clips: Sequence[Clip]) -> tf.data.Dataset:
    """The clips from the disk cache (filled first where it lacks them), in order, read with parallel reads and
    prefetch: the elements :func:`decoded_dataset` gives, without holding them."""
    paths = fill_disk_cache(clips)
    ds = tf.data.Dataset.from_tensor_slices((tf.constant([str(p) for p in paths]),
                                             tf.constant([clip.label for clip in clips], tf.int32),
                                             tf.range(len(clips))))

    def read(path, label, index):
        return tf.io.decode_raw(tf.io.read_file(path), tf.int16, little_endian=True), label, index

    ds = ds.map(read, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.filter(lambda audio, label, index: tf.size(audio) > 0).prefetch(AUTOTUNE)


def _pad_to(audio: tf.Tensor, length: int) -> tf.Tensor:
    return tf.pad(audio, [[0, tf.maximum(0, length - tf.size(audio))]])


def train_dataset(
    decoded: tf.data.Dataset | DiskClips, *, window_seconds: float, batch_size: int, seed: int,
    shuffle_buffer: int = SHUFFLE_BUFFER) -> tf.data.Dataset:
    """Random training windows: ``(waveform float32 [batch, window], label int32 [batch])``.

    Each epoch reshuffles the clips and draws a new window start per clip; the sequence of
    epochs is the same for the same seed.

    Args:
        decoded: Output of :func:`decoded_dataset` for the training clips, or their entries in the disk
            cache (:class:`DiskClips`), from which only each drawn window is read.
        window_seconds: Window length in seconds.
        batch_size: Windows per batch.
        seed: Seed of the shuffle and of the window starts.
        shuffle_buffer: Clips held in the shuffle buffer (the whole set for GTZAN sizes).
    """
    window = window_samples(window_seconds)
    starts = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    if isinstance(decoded, DiskClips):
        # The same shuffle and draws as below, on the entries' lengths; only the drawn window is decoded.
        ds = decoded.dataset().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

        def read(element, draw):  # the entry is read, only the window's bytes are decoded
            path, label, samples = element
            start = draw % (tf.maximum(samples, window) - window + 1)
            data = tf.strings.substr(tf.io.read_file(path), 2 * start, 2 * window)
            return int16_to_float(_pad_to(tf.io.decode_raw(data, tf.int16), window)), label

        ds = tf.data.Dataset.zip(ds, starts).map(read, num_parallel_calls=AUTOTUNE)
        return ds.batch(batch_size).prefetch(AUTOTUNE)
    ds = decoded.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def crop(element, draw):
        audio, label, _ = element
        audio = _pad_to(audio, window)
        start = tf.cast(draw % tf.cast(tf.size(audio) - window + 1, tf.int64), tf.int32)
        return int16_to_float(audio[start : start + window]), label

    ds = tf.data.Dataset.zip(ds, starts).map(crop, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def epochs_dataset(make_epoch: Callable[[], tf.data.Dataset], epochs: int) -> tf.data.Dataset:
    """``epochs`` passes of the pipeline ``make_epoch()`` builds, the same sequence from every iterator.

    Each pass reshuffles and redraws (what ``reshuffle_each_iteration`` and
    ``rerandomize_each_iteration`` do per pass); the first pass is the one a lone iterator of
    ``make_epoch()`` gives. The pipeline is built inside a ``flat_map``, so each iterator gets
    its own random state. With the state held by the dataset instead, every new iterator would
    continue where the last one stopped: an iterator opened only to look at one batch (Keras
    does that under a ``tf.distribute`` strategy) would shift every epoch of the training.

    Args:
        make_epoch: Builds one epoch's pipeline.
        epochs: Number of passes.
    """
    return tf.data.Dataset.range(1).flat_map(lambda _: make_epoch().repeat(epochs)).prefetch(AUTOTUNE)


def mixup(batches: tf.data.Dataset, *, alpha: float, n_classes: int, seed: int) -> tf.data.Dataset:
    """Mixup (Zhang et al., 2018) on training batches: ``(waveform, label)`` -> ``(mixed, soft label)``.

    Each example is mixed with another example of its batch with a weight drawn from
    Beta(alpha, alpha); labels become one-hot and are mixed with the same weights. With
    ``alpha`` 0 only the labels become one-hot. Seeded: the same mixes for the same seed.
    """

    def mix(element, seeds):
        (waveform, label), seed_pair = element, tf.reshape(seeds, [2])
        target = tf.one_hot(label, n_classes)
        if alpha <= 0:
            return waveform, target
        n = tf.shape(waveform)[0]
        gammas = tf.random.stateless_gamma([2, n], seed_pair, alpha)
        weight = gammas[0] / (gammas[0] + gammas[1])
        partner = tf.argsort(tf.random.stateless_uniform([n], seed_pair + 1))
        mixed = weight[:, None] * waveform + (1 - weight[:, None]) * tf.gather(waveform, partner)
        return mixed, weight[:, None] * target + (1 - weight[:, None]) * tf.gather(target, partner)

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(batches, seeds).map(mix, num_parallel_calls=AUTOTUNE)


def covering_windows(audio: tf.Tensor, window: int) -> tf.Tensor:
    """``[windows, window]``: the clip ``[..., samples]``'s non-overlapping windows and, when samples
    are left over, one more aligned to its end (``data.config.window_starts``, in the graph);
    a clip shorter than a window is zero-padded to one. A batch ``[batch, samples]`` gives
    ``[batch, windows, window]``."""
    short = tf.maximum(0, window - tf.shape(audio)[-1])
    audio = tf.pad(audio, tf.concat([tf.zeros([tf.rank(audio) - 1, 2], tf.int32), [[0, short]]], 0))
    samples = tf.shape(audio)[-1]
    starts = tf.range(samples // window) * window
    starts = tf.cond(samples % window > 0, lambda: tf.concat([starts, [samples - window]], 0), lambda: starts)
    return tf.gather(audio, starts[:, None] + tf.range(window)[None, :], axis=-1)


def eval_windows(decoded: tf.data.Dataset, *, window_seconds: float) -> tf.data.Dataset:
    """Every window of every clip (:func:`covering_windows`), in order: ``(waveform [window], label, clip index)``."""
    window = window_samples(window_seconds)

    def frame(audio, label, index):
        frames = covering_windows(audio, window)
        count = tf.shape(frames)[0]
        return frames, tf.fill([count], label), tf.fill([count], index)

    ds = decoded.map(frame, num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
    return ds.map(lambda audio, label, index: (int16_to_float(audio), label, index), num_parallel_calls=AUTOTUNE)


def average_per_clip(probabilities, clip_index, n_clips):
    """Averages window probabilities per clip: the one track-level rule of the toolkit.

    Validation, evaluation and the exported model's serving signature all call it. Written with
    ``keras.ops``, it runs eagerly on numpy arrays under any Keras backend and inside a
    ``tf.function`` under TensorFlow's.

    Args:
        probabilities: ``[windows, n_genres]``.
        clip_index: ``[windows]`` int, the clip each window comes from.
        n_clips: Number of clips (a tensor in a traced TensorFlow function).

    Returns:
        ``[n_clips, n_genres]`` tensor of the backend, in the dtype of ``probabilities``; a clip
        without windows gets a row of zeros.
    """
    probabilities = ops.convert_to_tensor(probabilities)
    sums = ops.segment_sum(probabilities, clip_index, num_segments=n_clips)
    counts = ops.segment_sum(ops.ones_like(probabilities[:, :1]), clip_index, num_segments=n_clips)
    return sums / ops.maximum(counts, 1)


def eval_arrays(decoded: tf.data.Dataset, *, window_seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All evaluation windows in memory: ``(waveforms [n, window], labels [n], clip index [n])``.

    Validation runs every epoch, so its windows are cut once and kept as arrays.
    """
    windows = list(eval_windows(decoded, window_seconds=window_seconds).batch(256).as_numpy_iterator())
    if not windows:
        raise ValueError("no evaluation windows: every clip failed to decode")
    return tuple(np.concatenate([w[i] for w in windows]) for i in range(3))


def eval_inputs(clips: Sequence[Clip], *, window_seconds: float,
                mode: str | None = None) -> tuple[np.ndarray | tf.data.Dataset, np.ndarray, np.ndarray]:
    """The evaluation windows of ``clips``, with each window's label and clip index.

    Where the clips are kept in memory (``mode``, else ``data.audiocache.choose``), the windows are arrays, cut once
    (:func:`eval_arrays`); from the disk cache they are a dataset of batches of
    :data:`STREAMED_EVAL_BATCH`, read again on each pass, so memory holds a few batches (and the model's
    activations for one) whatever the set's size; labels and indices are small.

    Raises:
        ValueError: if no clip decodes.
    """
    mode = mode or audiocache.choose("evaluation clips", windowed=clips)
    decoded = decoded_dataset(clips, cache=False, mode=mode)
    if mode != "disk":
        return eval_arrays(decoded, window_seconds=window_seconds)
    windows = eval_windows(decoded, window_seconds=window_seconds)
    parts = list(windows.map(lambda audio, label, index: (label, index)).batch(4096).as_numpy_iterator())
    if not parts:
        raise ValueError("no evaluation windows: every clip failed to decode")
    labels, index = (np.concatenate([part[i] for part in parts]) for i in range(2))
    return windows.map(lambda audio, label, index: audio).batch(STREAMED_EVAL_BATCH).prefetch(2), labels, index
