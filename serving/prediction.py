"""Predictions with an exported model: read audio as it takes it, score it window by window.

The library behind ``serving.predict`` (and any other front), for every export format
(``serving.runtimes``). An exported model is a program for its runtime: a SavedModel runs the
TensorFlow graph it holds, and the other formats go through their runtimes' parsers and kernels,
so load only models you trust (your own exports).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from data.catalogue import SAMPLE_RATE
from data.config import window_starts
from data.streaming import check_audio_file, read_with_soundfile, stream_audio  # noqa: F401 (re-exported)
from data.errors import AudioError
from serving.config import ABOUT_FILE, PredictError
from serving.runtimes import load_runtime


def read_audio(file: str | Path) -> np.ndarray:
    """The file's samples as the model takes them (mono float32 at 22050 Hz), all at once.

    Raises:
        AudioError: naming what is wrong (see :func:`check_audio_file`), no samples, or NaN or
            infinite samples (which would make every probability NaN).
    """
    audio = read_with_soundfile(check_audio_file(file))
    if audio.size == 0:
        raise AudioError("no audio samples")
    return audio


class Cancelled(Exception):
    """Scoring stopped because its caller said so (a web client that went away)."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The genres of one recording.

    Attributes:
        genres: The model's genres, in its output order.
        probabilities: Their probabilities for the whole recording (the mean over its windows).
        windows: ``[windows, genres]``: the probabilities of each window, in time order.
        window_seconds: The length of a window (the recording's, when the model says none).
        seconds: The recording's duration.
        starts: Where each window starts, in seconds (the last one may overlap the one before:
            it ends where the recording ends, ``data.config.window_starts``).
    """

    genres: tuple[str, ...]
    probabilities: np.ndarray
    windows: np.ndarray
    window_seconds: float
    seconds: float
    starts: tuple[float, ...] = (0.0,)

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable genres, best first, with their probabilities."""
        order = np.argsort(-self.probabilities)[:k]
        return [(self.genres[i], float(self.probabilities[i])) for i in order]


class Predictor:
    """An exported model, loaded once, that scores recordings window by window.

    A recording is cut into the model's non-overlapping windows and, when samples are left over,
    one more aligned to its end (a recording shorter than one window zero-padded), exactly as the
    export's own ``serving_default`` does (``data.config.window_starts``); the windows go through
    the model ``batch_windows`` at a time, so memory stays bounded whatever the length, and each
    window's probabilities are kept.

    Args:
        export: A SavedModel version folder or a model file of another format beside its description
            (``serving.config.find_export``). It is a program: only trusted models should be loaded.
        batch_windows: Windows per call of the model.

    Raises:
        PredictError: if it is not a model of this toolkit its runtime can load.
    """

    def __init__(self, export: Path, batch_windows: int = 32):
        self.export = Path(export)
        self.batch_windows = batch_windows
        # The version folder: the SavedModel's own, or the one holding the model file.
        self.folder = self.export if self.export.is_dir() else self.export.parent
        self.about = self._read_about()
        self.runtime = load_runtime(self.export, self.about.get("window_samples"), self.about)
        if self.runtime.format != "savedmodel" and self.runtime.window != self.about.get("window_samples"):
            raise PredictError(f"{self.export} takes windows of {self.runtime.window} samples but its description "
                               f"({self.folder / ABOUT_FILE}) says {self.about.get('window_samples')}: keep the "
                               "model file in the folder it was exported to")
        self.window = self.runtime.window
        self.genres = tuple(self.about.get("genres") or self._genres_file())

    def _read_about(self) -> dict:
        """The export's own description (``assets.extra/gtzan.json``), checked: {} without one.

        Raises:
            PredictError: for a description that is not this toolkit's (the app would otherwise
                load it and fail on every request).
        """
        path = self.folder / ABOUT_FILE
        if not path.is_file():
            if self.export.is_dir():
                return {}
            raise PredictError(f"{self.export} has no {ABOUT_FILE} beside it, so its genres are unknown: keep the "
                               "model file in the folder it was exported to")
        try:
            about = json.loads(path.read_text())
            window, genres = about.get("window_samples"), about.get("genres")
            valid = (isinstance(window, int) and window > 0 and isinstance(genres, list) and len(genres) >= 2
                     and all(isinstance(g, str) for g in genres))
        except (OSError, ValueError, AttributeError):
            valid = False
        if not valid:
            raise PredictError(f"{self.folder}: its {ABOUT_FILE} is not this toolkit's description of the model (a "
                               "window in samples and the genres); export the model again with python -m zoo.evaluate")
        return about

    def _genres_file(self) -> list[str]:
        path = self.folder / "assets" / "genres.txt"
        return path.read_text().split() if path.is_file() else []

    @property
    def name(self) -> str:
        """The model's name: its trial, else its export folder's."""
        return self.about.get("trial") or self.folder.parent.name

    def predict_file(self, file: str | Path, *, max_seconds: float | None = None,
                     stop: Callable[[], bool] = lambda: False) -> Prediction:
        """Scores a recording file of any length in bounded memory: it is decoded block by block
        (``data.decode.stream_audio``) and its windows scored as they fill.

        Raises:
            AudioError: for a file that is not usable audio (see :func:`check_audio_file`);
                ``data.decode.TooLong`` once more than ``max_seconds`` are decoded.
            Cancelled: between blocks, once ``stop()`` is true.
        """
        path = check_audio_file(file)
        if self.window is None:
            return self.predict(read_audio(path))
        pending, parts, total = np.zeros(0, np.float32), [], 0
        recent = np.zeros(0, np.float32)  # the last window's worth of samples, for the window at the end
        for block in stream_audio(path, max_seconds=max_seconds):
            if stop():
                raise Cancelled("stopped by its caller")
            total += block.size
            pending = np.concatenate([pending, block])
            recent = np.concatenate([recent, block])[-self.window:]
            full = pending.size // self.window
            if full:
                parts.append(self._score(pending[: full * self.window].reshape(full, self.window)))
                pending = pending[full * self.window:]
        if total == 0:
            raise AudioError("no audio samples")
        if not parts:  # shorter than one window: zero-padded, as the export does
            parts.append(self._score(np.pad(pending, (0, self.window - pending.size))[None]))
        elif pending.size:  # samples left over: one more window, ending where the recording ends
            parts.append(self._score(recent[None]))
        return self._prediction(np.concatenate(parts), total)

    def _prediction(self, per_window: np.ndarray, samples: int) -> Prediction:
        """The recording's prediction from its windows': their mean, as the export averages them."""
        starts = tuple(start / SAMPLE_RATE for start in window_starts(samples, self.window))
        return Prediction(self.genres, per_window.mean(axis=0, dtype=np.float64).astype(np.float32), per_window,
                          self.window / SAMPLE_RATE, samples / SAMPLE_RATE, starts)

    def _score(self, windows: np.ndarray) -> np.ndarray:
        """Each window's probabilities, ``batch_windows`` windows per call of the model."""
        return np.concatenate([self.runtime.probabilities(windows[start:start + self.batch_windows])
                               for start in range(0, len(windows), self.batch_windows)])

    def predict(self, audio: np.ndarray) -> Prediction:
        """Scores one recording (mono float32 samples at 22050 Hz in [-1, 1], any length)."""
        audio = np.asarray(audio, np.float32)
        if self.window is None:  # an export that does not say its window: one call, no timeline
            outputs = self.runtime.serve(waveform=tf.constant(audio[None]))
            probabilities = outputs["probabilities"].numpy()[0]
            genres = self.genres or tuple(g.decode() for g in outputs["genres"].numpy()[0])
            return Prediction(genres, probabilities, probabilities[None], audio.size / SAMPLE_RATE,
                              audio.size / SAMPLE_RATE)
        padded = np.pad(audio, (0, max(0, self.window - audio.size)))
        windows = np.stack([padded[start:start + self.window] for start in window_starts(audio.size, self.window)])
        return self._prediction(self._score(windows), audio.size)
