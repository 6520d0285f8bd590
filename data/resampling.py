"""A copy of a labelled audio folder as it would sound through a lower sample rate: the library
behind ``python -m data.resample``.

Every usable clip is decoded as training decodes it (mono, 22050 Hz), resampled to ``rate`` and
back with soxr's high-quality filter, and written as 16-bit WAV at 22050 Hz under the same genre
folder. The copy has the length and level of the original but no band above ``rate / 2``: what
16-kHz material (``rate=16000``: nothing above 8 kHz), telephone audio or a low-bitrate stream
leaves of a song. Training on the original and evaluating on the copy
(``zoo.evaluate RUN --test-dir COPY``), or cross-validating on the copy, measures how much a
model relies on the band that is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import soxr

from data.catalogue import SAMPLE_RATE, DataError, scan
from data.decode import read_with_soundfile
from data.errors import one_line


def check_rate(rate: int) -> int:
    """``rate`` if it is from 1000 Hz to below 22050 Hz, else ValueError saying what is accepted."""
    if not 1000 <= rate < SAMPLE_RATE:
        raise ValueError(f"--rate must be from 1000 to {SAMPLE_RATE - 1} Hz (below the clips' 22050 Hz), got {rate}")
    return rate


def through_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """22050 Hz ``audio`` resampled to ``rate`` and back (soxr HQ), clipped to [-1, 1], same length."""
    low = soxr.resample(audio, SAMPLE_RATE, rate, quality="HQ")
    back = soxr.resample(low, rate, SAMPLE_RATE, quality="HQ")[: audio.size]
    return np.clip(np.pad(back, (0, audio.size - back.size)), -1.0, 1.0).astype(np.float32)


def resample_copy(source: str | Path, target: str | Path, rate: int,
                  say: Callable[[str], None] = lambda _: None) -> dict:
    """Writes the band-limited copy of ``source`` (see the module docstring) to ``target``.

    Returns:
        ``{"clips": written, "skipped": unreadable files of the source, "target": str}``; a clip
        whose audio does not decode is left out, counted and named through ``say``.

    Raises:
        ValueError: for a rate outside what :func:`check_rate` accepts.
        DataError: if ``source`` cannot be read, or ``target`` is inside it or already holds files.
    """
    check_rate(rate)
    catalogue = scan(source)
    target = Path(target)
    if target.resolve().is_relative_to(catalogue.root.resolve()):
        raise DataError(f"the copy {target} would be inside the source {catalogue.root}; choose another folder")
    if target.exists() and any(target.iterdir()):
        raise DataError(f"{target} is not empty; choose a new folder")
    written, skipped = 0, len(catalogue.problems)
    for number, clip in enumerate(catalogue.clips, start=1):
        try:
            audio = read_with_soundfile(clip.path)
        except Exception as error:  # a header that passed but a body that does not decode
            say(f"left out {clip.path}: {one_line(error)}")
            skipped += 1
            continue
        path = target / clip.genre / f"{clip.clip_id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        soundfile.write(str(temporary), through_rate(audio, rate), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        temporary.replace(path)
        written += 1
        if number % 100 == 0:
            say(f"{number} of {len(catalogue.clips)} clips")
    return {"clips": written, "skipped": skipped, "target": str(target)}
