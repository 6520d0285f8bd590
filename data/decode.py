"""Audio decoding: PCM16 WAV and Sun/NeXT .au in the TensorFlow graph, the rest via soundfile.

Every decoder returns float32 mono samples in [-1, 1] at 22050 Hz. Multi-channel audio is
mixed to mono by averaging the channels.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from data.catalogue import CODECS
# The decoder of every other format lives without TensorFlow (worker processes import it alone);
# it is re-exported here, where the pipeline's callers have always found it.
from data.streaming import (BLOCK_SAMPLES, MAX_CHANNELS, MAX_RATE, TooLong, check_finite,  # noqa: F401
                            declared_seconds, read_with_soundfile, stream_audio)

_AU_UNKNOWN_SIZE = -1  # 0xFFFFFFFF read as int32: "data runs to the end of the file"


def _le_uint32(contents: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
    """Little-endian uint32 at byte ``position``, as int64."""
    word = tf.io.decode_raw(tf.strings.substr(contents, position, 4), tf.uint8)
    return tf.reduce_sum(tf.cast(word, tf.int64) * tf.constant([1, 1 << 8, 1 << 16, 1 << 24], tf.int64))


def int16_to_float(samples: tf.Tensor) -> tf.Tensor:
    """int16 PCM -> float32 in [-1, 1)."""
    return tf.cast(samples, tf.float32) * (1.0 / 32768.0)


def float_to_int16(audio: tf.Tensor) -> tf.Tensor:
    """float32 in [-1, 1] -> int16 PCM (rounded, clipped)."""
    return tf.cast(tf.round(tf.clip_by_value(audio * 32768.0, -32768.0, 32767.0)), tf.int16)


def _to_mono(samples: tf.Tensor, channels: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Interleaved int16 samples -> mono ``dtype`` (channels averaged; mono is not copied)."""
    converted = int16_to_float(samples) if dtype == tf.float32 else samples

    def mix() -> tf.Tensor:
        frames = tf.reshape(tf.cast(converted, tf.float32), tf.stack([-1, channels]))
        mean = tf.reduce_mean(frames, axis=-1)
        return mean if dtype == tf.float32 else tf.cast(tf.round(mean), tf.int16)

    return tf.cond(tf.equal(channels, 1), lambda: converted, mix)


def decode_wav_pcm16(contents: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Decodes the bytes of a PCM16 WAV file in the graph.

    Gives the same samples as ``tf.audio.decode_wav`` (a test checks it), faster: the RIFF
    chunks are walked in the graph to find ``fmt `` and ``data``, and the payload is read with
    one ``tf.io.decode_raw`` (measured on 30-s clips read from disk, 2 cores, parallel
    tf.data map: ``decode_wav`` about 240 clips/s, this about 600 as float32 and 900 as
    int16). The format must be PCM16, as ``data.catalogue.probe`` checks.

    Args:
        contents: Scalar string tensor, the whole file.
        dtype: ``tf.float32`` (in [-1, 1)) or ``tf.int16`` (the samples as stored).

    Returns:
        ``[samples]`` mono (channels averaged).
    """
    size = tf.cast(tf.strings.length(contents), tf.int64)

    def not_found(position, chunk_size, channels):
        return tf.logical_and(chunk_size < 0, position + 8 <= size)

    def next_chunk(position, chunk_size, channels):
        chunk_id = tf.strings.substr(contents, position, 4)
        length = _le_uint32(contents, position + 4)
        channels = tf.where(
            tf.equal(chunk_id, "fmt "), _le_uint32(contents, position + 8) // 65536 % 65536, channels
        )
        found = tf.equal(chunk_id, "data")
        next_position = position + 8 + length + length % 2  # chunks are padded to even sizes
        return tf.where(found, position + 8, next_position), tf.where(found, length, chunk_size), channels

    start, length, channels = tf.while_loop(
        not_found, next_chunk, (tf.constant(12, tf.int64), tf.constant(-1, tf.int64), tf.constant(1, tf.int64))
    )
    frame_bytes = 2 * channels
    length = tf.minimum(tf.maximum(length, 0), size - start)
    length -= length % frame_bytes
    samples = tf.io.decode_raw(tf.strings.substr(contents, start, length), tf.int16, little_endian=True)
    return _to_mono(samples, tf.cast(channels, tf.int32), dtype)


def decode_au_pcm16(contents: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Decodes the bytes of a Sun/NeXT ``.au`` file with 16-bit linear PCM in the graph.

    The header is six big-endian uint32 words: magic ``.snd``, data offset, data size
    (0xFFFFFFFF when unknown), encoding (3 = 16-bit PCM), sample rate, channels.

    Args:
        contents: Scalar string tensor, the whole file.
        dtype: ``tf.float32`` (in [-1, 1)) or ``tf.int16`` (the samples as stored).

    Returns:
        ``[samples]`` mono (channels averaged).
    """
    header = tf.io.decode_raw(tf.strings.substr(contents, 0, 24), tf.int32, little_endian=False)
    offset, data_size, channels = header[1], header[2], header[5]
    available = tf.strings.length(contents) - offset
    data_size = tf.where(data_size == _AU_UNKNOWN_SIZE, available, tf.minimum(data_size, available))
    frame_bytes = 2 * channels
    data_size -= data_size % frame_bytes  # a stray trailing byte cannot form a sample
    payload = tf.strings.substr(contents, offset, data_size)
    return _to_mono(tf.io.decode_raw(payload, tf.int16, little_endian=False), channels, dtype)


def _read_or_empty(path: bytes | np.ndarray) -> np.ndarray:
    # Inside tf.data an exception would end the whole epoch; an empty clip is
    # filtered out by the pipeline instead (the catalogue already checked headers).
    path = path.item() if isinstance(path, np.ndarray) else path  # eager calls pass a 0-d array
    try:
        return read_with_soundfile(path.decode())
    except Exception:  # any decoder failure means "unreadable"
        return np.zeros([0], np.float32)


def decode_file(path: tf.Tensor, codec: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Reads and decodes one file, in the graph where its codec allows.

    Args:
        path: Scalar string tensor.
        codec: Scalar int32 tensor, an index into ``data.catalogue.CODECS``.
        dtype: ``tf.float32`` (samples in [-1, 1]) or ``tf.int16`` (PCM16 files keep their
            samples as they are, with no conversion: the pipeline's cache is int16).

    Returns:
        ``[samples]`` mono at 22050 Hz; empty if soundfile could not read the file.
    """
    if dtype not in (tf.float32, tf.int16):
        raise ValueError(f"dtype must be tf.float32 or tf.int16. Received: dtype={dtype!r}")
    as_float = dtype == tf.float32

    def from_soundfile() -> tf.Tensor:
        audio = tf.reshape(tf.numpy_function(_read_or_empty, [path], tf.float32, stateful=False), [-1])
        return audio if as_float else float_to_int16(audio)

    branches = {
        CODECS.index("wav"): lambda: decode_wav_pcm16(tf.io.read_file(path), dtype),
        CODECS.index("au"): lambda: decode_au_pcm16(tf.io.read_file(path), dtype),
        CODECS.index("soundfile"): from_soundfile,
    }
    return tf.switch_case(codec, [branches[i] for i in range(len(CODECS))])


def decode_path(path: str | os.PathLike, codec: str) -> np.ndarray:
    """Eagerly decodes one file with the same code the pipeline uses.

    Args:
        path: The audio file.
        codec: One of ``data.catalogue.CODECS``.

    Returns:
        float32 ``[samples]`` mono at 22050 Hz.
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
    if codec == "soundfile":
        return read_with_soundfile(path)
    return decode_file(tf.constant(os.fspath(path)), tf.constant(CODECS.index(codec))).numpy()
