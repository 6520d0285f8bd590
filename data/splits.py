"""Track-level train / valid / test splits: random stratified, or from list files.

A split assigns whole clips to parts, never windows, so no song is in two parts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.catalogue import AUDIO_EXTENSIONS, Clip, DataError

logger = logging.getLogger(__name__)

DEFAULT_SEED = 42
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
PARTS = ("train", "valid", "test")
SPLIT_METHODS = ("random", "lists")


@dataclasses.dataclass(frozen=True)
class Split:
    """Clips per part, and the listed clips that were not found (for list splits).

    Attributes:
        train: Training clips.
        valid: Validation clips (model selection, early stopping).
        test: Test clips, for the final evaluation only.
        missing: Clip ids named in list files but absent or unreadable in the data.
    """

    train: tuple[Clip, ...]
    valid: tuple[Clip, ...]
    test: tuple[Clip, ...]
    missing: tuple[str, ...] = ()

    def part(self, name: str) -> tuple[Clip, ...]:
        """Returns the clips of part ``name`` (``"train"``, ``"valid"`` or ``"test"``)."""
        if name not in PARTS:
            raise ValueError(f"unknown split part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        """Returns the number of clips per part."""
        return {name: len(self.part(name)) for name in PARTS}


def random_split(
    clips: Sequence[Clip],
    *,
    seed: int = DEFAULT_SEED,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> Split:
    """Splits each genre separately into train / valid / test at random.

    The result depends only on the clip ids, the seed and the fractions: clips are
    sorted by id before shuffling, and numpy's PCG64 generator is the same everywhere.

    Args:
        clips: The clips to split.
        seed: Random seed.
        fractions: Three non-negative fractions for train, valid and test summing to 1.

    Returns:
        The split. With at least three clips in a genre, valid and test get at least one each.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split fractions must be three non-negative numbers summing to 1. Received: fractions={fractions}"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[Clip]] = {name: [] for name in PARTS}
    for label in sorted({clip.label for clip in clips}):
        group = sorted((c for c in clips if c.label == label), key=lambda c: c.clip_id)
        order = rng.permutation(len(group))
        n_valid = int(round(fractions[1] * len(group)))
        n_test = int(round(fractions[2] * len(group)))
        if len(group) >= 3:
            n_valid = max(n_valid, 1 if fractions[1] > 0 else 0)
            n_test = max(n_test, 1 if fractions[2] > 0 else 0)
        n_train = len(group) - n_valid - n_test
        cuts = {"train": order[:n_train], "valid": order[n_train : n_train + n_valid], "test": order[n_train + n_valid :]}
        for name in PARTS:
            parts[name].extend(group[i] for i in sorted(cuts[name]))
    return Split(*(tuple(parts[name]) for name in PARTS))


def split_from_lists(clips: Sequence[Clip], split_dir: str | os.PathLike) -> Split:
    """Builds a split from list files ``train*.txt``, ``valid*.txt``, ``test*.txt``.

    Each line names a clip like ``blues/blues.00012.wav``; it is matched by clip id
    (``blues.00012``) whatever the extension, so ``.au`` copies match too. Clips in no
    list are left out; listed clips that are not in ``clips`` are reported in ``missing``.

    Args:
        clips: The usable clips of the dataset.
        split_dir: Folder holding one list file per part.

    Raises:
        DataError: if the folder or a list file is missing, or no listed clip is found.
    """
    folder = Path(split_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"split directory not found: {folder}")
    by_id = {clip.clip_id: clip for clip in clips}
    parts: dict[str, list[Clip]] = {}
    missing: list[str] = []
    for name in PARTS:
        files = sorted(folder.glob(f"{name}*.txt"))
        if len(files) != 1:
            found = ", ".join(f.name for f in files) or "none"
            raise DataError(f"expected exactly one {name}*.txt in {folder}; found {found}")
        ids = [_clip_id(line) for line in files[0].read_text().splitlines() if line.strip()]
        parts[name] = [by_id[i] for i in ids if i in by_id]
        missing.extend(i for i in ids if i not in by_id)
    if not any(parts.values()):
        raise DataError(f"the split lists in {folder} match no clip of the data directory")
    if missing:
        logger.warning(
            "%d clips listed in %s are missing or unreadable in the data (e.g. %s)",
            len(missing), folder, ", ".join(missing[:3]),
        )
    return Split(*(tuple(parts[name]) for name in PARTS), missing=tuple(missing))


def _clip_id(entry: str) -> str:
    """``"blues/blues.00012.wav"`` -> ``"blues.00012"`` (an entry without extension is kept)."""
    name = Path(entry.strip()).name
    return Path(name).stem if name.lower().endswith(AUDIO_EXTENSIONS) else name


def make_split(
    clips: Sequence[Clip],
    method: str = "random",
    *,
    split_dir: str | os.PathLike | None = None,
    seed: int = DEFAULT_SEED,
) -> Split:
    """Splits ``clips`` with ``method`` (``"random"`` or ``"lists"``, which needs ``split_dir``)."""
    if method == "random":
        return random_split(clips, seed=seed)
    if method == "lists":
        if split_dir is None:
            raise DataError("--split lists needs --split-dir, the folder holding train*.txt, valid*.txt, test*.txt")
        return split_from_lists(clips, split_dir)
    raise DataError(f"unknown split method {method!r}; expected one of {SPLIT_METHODS}")
