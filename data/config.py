"""Configuration as data: a frozen dataclass per concern, saved with every run and read back.

``DataConfig`` says which clips a run uses and how they are cut into windows. The model and
training configurations (``zoo.config.ModelConfig``, ``training.config.TrainConfig``) share the
``to_dict`` / ``from_dict`` round trip defined here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, TypeVar

from data.catalogue import SAMPLE_RATE
from data.labels import FMA_SUBSETS

SPLIT_METHODS = ("random", "lists", "kfold", "dataset")
# The shortest window any model here can take: a few STFT frames of 1024 samples.
MIN_WINDOW_SECONDS = 0.1

C = TypeVar("C", bound="DictConfig")


def check_window_seconds(seconds: float) -> float:
    """The one rule for a window length, wherever it is set (data, model, benchmarks, export).

    Raises:
        ValueError: unless ``seconds`` is a finite number of at least ``MIN_WINDOW_SECONDS``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds < MIN_WINDOW_SECONDS:
        raise ValueError(f"the window (--window-seconds) must be a finite number of at least {MIN_WINDOW_SECONDS} s, "
                         f"got {seconds!r}")
    return float(seconds)


def check_resample_rate(rate: int) -> int:
    """``rate`` if it is from 1000 Hz to below 22050 Hz (a band-limited copy's rate), else ValueError
    saying what is accepted."""
    if not 1000 <= rate < SAMPLE_RATE:
        raise ValueError(f"--rate must be from 1000 to {SAMPLE_RATE - 1} Hz (below the clips' 22050 Hz), got {rate}")
    return rate


def window_samples(window_seconds: float) -> int:
    """Returns the number of samples in a window of ``window_seconds`` at 22050 Hz.

    Raises:
        ValueError: for a window that :func:`check_window_seconds` refuses.
    """
    return int(round(check_window_seconds(window_seconds) * SAMPLE_RATE))


def window_starts(samples: int, window: int, hop: int | None = None) -> list[int]:
    """Where the windows of a clip of ``samples`` start: every ``hop`` samples (default ``window``: no
    overlap) while a whole window fits, and one more aligned to the clip's end when samples are
    left over, so that every sample is scored; a clip shorter than a window is one window from 0
    (zero-padded). Evaluation, validation, the exported model, predictions and the app all cut
    clips this way (the graph's form is ``data.pipeline.covering_windows``).
    """
    hop = hop or window
    starts = list(range(0, max(samples - window, 0) + 1, hop))
    if samples > window and starts[-1] != samples - window:
        starts.append(samples - window)
    return starts


def file_safe(name: str) -> str:
    """A name that is safe as a file or folder name (trial, export and run folders)."""
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


class DictConfig:
    """``to_dict`` / ``from_dict`` for frozen dataclasses; ``from_dict`` rejects unknown keys."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        """Builds the config from ``to_dict`` output; missing keys take their defaults.

        Raises:
            ValueError: for an unknown key or an invalid value.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; accepted: {', '.join(fields)}")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted)

    def replace(self: C, **changes) -> C:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class DataConfig(DictConfig):
    """Which clips a run uses, how they are split by track and cut into windows.

    Attributes:
        data_dir: Dataset folder; None means ``$GTZAN_DIR``, else the generated synthetic set.
        split: ``random`` (stratified 80/10/10), ``lists`` (list files in ``split_dir``) or
            ``kfold`` (stratified folds; ``fold`` is the test part).
        split_dir: Folder of ``train*.txt``, ``valid*.txt``, ``test*.txt`` for ``lists``.
        split_seed: Seed of the random and k-fold splits. Separate from the training seed, so
            a sweep over training seeds keeps the same test set.
        folds: Number of folds of ``kfold``.
        fold: The test fold of ``kfold``, from 0 to ``folds - 1``.
        window_seconds: Length of the training and evaluation windows.
        labels: A labels file (``data.labels``) naming the clips of ``data_dir`` and their classes
            instead of its folders; ``dataset`` splits by its split column.
        subset: FMA's ``small``, ``medium`` or ``large``, with FMA's ``tracks.csv`` as ``labels``.
    """

    data_dir: str | None = None
    split: str = "random"
    split_dir: str | None = None
    split_seed: int = 42
    folds: int = 5
    fold: int = 0
    window_seconds: float = 3.0
    labels: str | None = None
    subset: str | None = None

    def __post_init__(self):
        if self.split not in SPLIT_METHODS:
            raise ValueError(f"unknown split method {self.split!r}; expected one of {', '.join(SPLIT_METHODS)}")
        if self.split == "lists" and not self.split_dir:
            raise ValueError("--split lists needs --split-dir, the folder holding train*.txt, valid*.txt, test*.txt")
        if self.split == "kfold":
            if self.folds < 2:
                raise ValueError(f"--folds must be at least 2, got {self.folds}")
            if not 0 <= self.fold < self.folds:
                raise ValueError(f"--fold must be from 0 to --folds - 1 = {self.folds - 1}, got {self.fold}")
        check_window_seconds(self.window_seconds)
        if self.split == "dataset" and not self.labels:
            raise ValueError("--split dataset takes the split column of a labels file; it needs --labels")
        if self.subset is not None and (self.subset not in FMA_SUBSETS or not self.labels):
            raise ValueError(f"--subset takes {', '.join(FMA_SUBSETS)} with FMA's tracks.csv as --labels, "
                             f"got {self.subset!r}{'' if self.labels else ' without --labels'}")
