"""Decoding with soundfile and soxr, without TensorFlow: any format soundfile reads, as mono float32
at 22050 Hz, block by block in bounded memory.

The one decoder of every file that is not PCM16 WAV or ``.au`` (those are decoded in the graph by
``data.decode``), and of every file ``serving.predict``, ``serving.embed`` and the app score. It
loads without TensorFlow, so decoding worker processes start fast and small.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile
import soxr

from data.catalogue import SAMPLE_RATE, probe
from data.errors import AudioError

# What a file may declare before it is refused: a rate and a channel count beyond any real
# recording would only make the decoder allocate for them (the header is the file's to choose).
MAX_RATE = 384_000
MAX_CHANNELS = 32
# Samples (all channels together) decoded per block: 8 MB of float64 at most, whatever the header says.
BLOCK_SAMPLES = 1 << 20
# libsndfile's frame count for a stream of unknown length (a legal FLAC header says so).
_UNKNOWN_FRAMES = 1 << 62


class TooLong(AudioError):
    """A recording longer than the caller accepts."""


def declared_seconds(info) -> float | None:
    """A file's duration as its header declares it (``soundfile.info``), or None when it does not know."""
    if info.samplerate <= 0 or info.frames <= 0 or info.frames >= _UNKNOWN_FRAMES:
        return None
    return info.frames / info.samplerate


def read_with_soundfile(path: str | os.PathLike, max_seconds: float | None = None) -> np.ndarray:
    """Reads any file soundfile can read, mixed to mono and resampled to 22050 Hz: the whole of
    :func:`stream_audio`.

    Returns:
        float32 ``[samples]`` in [-1, 1].

    Raises:
        soundfile.LibsndfileError (or another error) if the file cannot be read.
        AudioError: for a header declaring a rate or channels beyond the limits, or a NaN or
            infinite sample (such a file is unreadable everywhere, in training, evaluation and
            prediction alike); TooLong past ``max_seconds``.
    """
    blocks = list(stream_audio(path, max_seconds=max_seconds))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def check_finite(audio: np.ndarray) -> None:
    """Raises AudioError naming how many samples are NaN or infinite, if any."""
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        raise AudioError(f"{bad} samples are NaN or infinite")


def stream_audio(path: str | os.PathLike, *, max_seconds: float | None = None,
                 block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """Yields a file's samples block by block (mono float32 at 22050 Hz in [-1, 1]) in bounded memory.

    The one decoder of every file that is not PCM16 WAV or ``.au`` (training, evaluation,
    ``serving.predict``, ``serving.embed`` and the app): soundfile reads ``block_samples`` samples
    of all channels at a time (the channels averaged), then soxr's HQ resampler, in its streaming
    form. Memory is bounded whatever the header declares: the rate and the channels are checked
    first, a block holds at most ``block_samples`` samples, and the stream ends where the audio
    ends (a truncated file ends early, and what it held is what is yielded; a stream that does
    not declare its length is read to its end, but for its last block of at most 1024 frames).
    Finite samples out of [-1, 1] (a float file) are clipped, as the exported model clips them.

    Raises:
        soundfile.LibsndfileError (or another error) if the file cannot be read.
        AudioError: for a declared rate outside 1 Hz to 384 kHz or more than 32 channels, or a NaN
            or infinite sample; TooLong once more than ``max_seconds`` have been decoded.
    """
    with soundfile.SoundFile(os.fspath(path)) as f:
        rate, channels = f.samplerate, f.channels
        if not 0 < rate <= MAX_RATE:
            raise AudioError(f"the file declares a sample rate of {rate} Hz; at most {MAX_RATE} Hz is read")
        if not 0 < channels <= MAX_CHANNELS:
            raise AudioError(f"the file declares {channels} channels; at most {MAX_CHANNELS} are read")
        frames = max(1, block_samples // channels)
        # A stream that does not declare its length (legal in FLAC) ends in an error of libsndfile's
        # position bookkeeping, losing the block being read: small blocks lose little (<= 1024 frames).
        unknown_length = f.frames >= _UNKNOWN_FRAMES
        if unknown_length:
            frames = min(frames, 1024)
        limit = None if max_seconds is None else int(max_seconds * rate)
        resampler = (soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
                     if rate != SAMPLE_RATE else None)
        seen = 0
        while True:
            # read() returns the frames it decoded: a header that promises more gives a short read.
            # float64: a finite sample beyond float32's range stays finite until it is clipped.
            try:
                block = f.read(frames, dtype="float64", always_2d=True)
            except soundfile.LibsndfileError:
                if unknown_length and seen:  # the end of a stream of unknown length
                    break
                raise
            if not len(block):
                break
            seen += len(block)
            if limit is not None and seen > limit:
                raise TooLong(f"the recording is longer than {max_seconds:g} s")
            mono = block.mean(axis=1)
            check_finite(mono)
            mono = np.clip(mono, -1.0, 1.0).astype(np.float32)
            out = resampler.resample_chunk(mono) if resampler is not None else mono
            yield np.clip(out, -1.0, 1.0).astype(np.float32)
        if resampler is not None:
            yield np.clip(resampler.resample_chunk(np.zeros(0, np.float32), last=True), -1.0, 1.0).astype(np.float32)


def check_audio_file(file: str | os.PathLike) -> Path:
    """The checks a recording passes before it is decoded, the same that training applies to its clips.

    Raises:
        AudioError: naming what is wrong: a missing file, a folder, or a header the catalogue
            refuses (empty, truncated, not audio).
    """
    path = Path(file)
    try:
        status = path.stat()
    except OSError as error:  # missing, a loop of symbolic links, a folder we may not enter
        reason = {errno.ENOENT: "file not found", errno.ELOOP: "a loop of symbolic links",
                  errno.EACCES: "no permission to read it"}.get(error.errno, "cannot be opened")
        raise AudioError(reason) from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioError("is a folder, not an audio file")
    if not stat.S_ISREG(status.st_mode):  # a pipe or a device would block or never end
        raise AudioError("not a regular file")
    _, reason = probe(path)
    if reason is not None:
        raise AudioError(reason)
    return path
