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

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import soxr

from data.catalogue import SAMPLE_RATE, DataError, scan
from data.config import check_resample_rate
from data.decode import read_with_soundfile
from data.errors import one_line

# What a copy records about itself, so that a stopped copy resumes and no other folder is written into.
MARKER = ".gtzan-resample.json"


def through_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """22050 Hz ``audio`` resampled to ``rate`` and back (soxr HQ), clipped to [-1, 1], same length."""
    low = soxr.resample(audio, SAMPLE_RATE, rate, quality="HQ")
    back = soxr.resample(low, rate, SAMPLE_RATE, quality="HQ")[: audio.size]
    return np.clip(np.pad(back, (0, audio.size - back.size)), -1.0, 1.0).astype(np.float32)


def resample_copy(source: str | Path, target: str | Path, rate: int,
                  say: Callable[[str], None] = lambda _: None) -> dict:
    """Writes the band-limited copy of ``source`` (see the module docstring) to ``target``.

    A copy that was stopped (killed, interrupted) resumes: ``target`` records what it is a copy
    of (``.gtzan-resample.json``, written first), every clip is written to a temporary name and
    renamed, so the clips already there are whole and kept, and the rest are written.

    Returns:
        ``{"clips": written now, "kept": clips already there, "skipped": unreadable files of the
        source, "target": str}``; a clip whose audio does not decode is left out, counted and
        named through ``say``.

    Raises:
        ValueError: for a rate outside what ``data.config.check_resample_rate`` accepts.
        DataError: if ``source`` cannot be read, or ``target`` is inside it, holds other files,
            or is the copy of another source or rate.
    """
    check_resample_rate(rate)
    catalogue = scan(source)
    target = Path(target)
    if target.resolve().is_relative_to(catalogue.root.resolve()):
        raise DataError(f"the copy {target} would be inside the source {catalogue.root}; choose another folder")
    check_target(target, catalogue.root, rate)
    target.mkdir(parents=True, exist_ok=True)
    marker = target / MARKER
    marker.with_name(f"{MARKER}.tmp").write_text(json.dumps({"source": str(catalogue.root.resolve()), "rate": rate}))
    marker.with_name(f"{MARKER}.tmp").replace(marker)
    for leftover in target.rglob(".*.tmp"):  # a clip being written when the copy was stopped
        leftover.unlink()
    written, kept, skipped = 0, 0, len(catalogue.problems)
    for number, clip in enumerate(catalogue.clips, start=1):
        path = target / clip.genre / f"{clip.clip_id}.wav"
        if path.is_file():
            kept += 1
            continue
        try:
            audio = read_with_soundfile(clip.path)
        except Exception as error:  # a header that passed but a body that does not decode
            say(f"left out {clip.path}: {one_line(error)}")
            skipped += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        soundfile.write(str(temporary), through_rate(audio, rate), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        temporary.replace(path)
        written += 1
        if number % 100 == 0:
            say(f"{number} of {len(catalogue.clips)} clips")
    if kept:
        say(f"resumed: {kept} clips were there already")
    return {"clips": written, "kept": kept, "skipped": skipped, "target": str(target)}


def check_target(target: Path, source_root: Path, rate: int) -> None:
    """Raises DataError unless ``target`` is new, empty, or an unfinished copy of ``source_root`` at ``rate``."""
    if not target.exists() or not any(target.iterdir()):
        return
    marker = target / MARKER
    try:
        made = json.loads(marker.read_text())
    except (OSError, ValueError):
        raise DataError(f"{target} is not empty and is not a copy this command made; choose a new folder") from None
    if made != {"source": str(source_root.resolve()), "rate": rate}:
        raise DataError(f"{target} is the copy of {made.get('source')} through {made.get('rate')} Hz; "
                        "choose another folder for this one")
