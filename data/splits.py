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
from data.config import DataConfig

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
PARTS = ("train", "valid", "test")
# Share of the non-test clips of each genre that k-fold keeps for validation.
KFOLD_VALID_FRACTION = 0.1


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
    seed: int = 42,
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


def kfold_split(clips: Sequence[Clip], *, folds: int, fold: int, seed: int = 42,
                valid_fraction: float = KFOLD_VALID_FRACTION) -> Split:
    """Stratified k-fold split by track: fold ``fold`` is the test part.

    Each genre's clips (sorted by id, then shuffled with ``seed``) are dealt to the folds in
    turn, so every clip is in exactly one test fold and each fold holds about ``1 / folds`` of
    every genre. From the other folds, a seeded ``valid_fraction`` of each genre (at least one
    clip when the genre has three or more) is the validation part; the rest is training.

    Args:
        clips: The clips to split.
        folds: Number of folds, at least 2.
        fold: The test fold, from 0 to ``folds - 1``.
        seed: Seed of the fold assignment and of the validation draw.
        valid_fraction: Share of the non-test clips per genre used for validation.

    Raises:
        ValueError: for a bad ``folds`` or ``fold``.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"need folds >= 2 and 0 <= fold < folds. Received: folds={folds}, fold={fold}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[Clip]] = {name: [] for name in PARTS}
    for label in sorted({clip.label for clip in clips}):
        group = sorted((c for c in clips if c.label == label), key=lambda c: c.clip_id)
        order = rng.permutation(len(group))
        test = {int(i) for position, i in enumerate(order) if position % folds == fold}
        rest = [i for i in range(len(group)) if i not in test]
        # Drawn from a generator of its own per fold, so the folds' test parts do not depend on it.
        draw = np.random.default_rng([seed, fold, label]).permutation(len(rest))
        n_valid = int(round(valid_fraction * len(rest)))
        if len(group) >= 3 and valid_fraction > 0:
            n_valid = max(n_valid, 1)
        valid = {rest[i] for i in draw[:n_valid]}
        for i, clip in enumerate(group):
            parts["test" if i in test else "valid" if i in valid else "train"].append(clip)
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
        DataError: if the folder or a list file is missing, a clip is listed twice (in one
            part or in two), or no listed clip is found.
    """
    folder = Path(split_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"split directory not found: {folder}")
    by_id = {clip.clip_id: clip for clip in clips}
    parts: dict[str, list[Clip]] = {}
    listed: dict[str, list[str]] = {}
    missing: list[str] = []
    for name in PARTS:
        files = sorted(folder.glob(f"{name}*.txt"))
        if len(files) != 1:
            found = ", ".join(f.name for f in files) or "none"
            raise DataError(f"expected exactly one {name}*.txt in {folder}; found {found}")
        ids = [_clip_id(line) for line in files[0].read_text().splitlines() if line.strip()]
        listed[name] = ids
        parts[name] = [by_id[i] for i in ids if i in by_id]
        missing.extend(i for i in ids if i not in by_id)
    if not any(parts.values()):
        raise DataError(f"the split lists in {folder} match no clip of the data directory")
    _check_no_repeats(listed, folder)
    if missing:
        logger.warning(
            "%d clips listed in %s are missing or unreadable in the data (e.g. %s)",
            len(missing), folder, ", ".join(missing[:3]),
        )
    return Split(*(tuple(parts[name]) for name in PARTS), missing=tuple(missing))


def _check_no_repeats(listed: dict[str, list[str]], folder: Path) -> None:
    """Raises DataError if a clip is listed twice: that would leak it between parts or weigh it twice."""
    seen: dict[str, str] = {}
    repeats: list[str] = []
    for name in PARTS:
        for clip_id in listed[name]:
            if clip_id in seen:
                where = f"twice in {name}" if seen[clip_id] == name else f"in {seen[clip_id]} and {name}"
                repeats.append(f"{clip_id} ({where})")
            seen.setdefault(clip_id, name)
    if repeats:
        shown = ", ".join(repeats[:3]) + (", ..." if len(repeats) > 3 else "")
        raise DataError(f"the split lists in {folder} name {len(repeats)} clip(s) more than once: {shown}; "
                        "each clip must be listed once, in one part")


def _clip_id(entry: str) -> str:
    """``"blues/blues.00012.wav"`` -> ``"blues.00012"`` (an entry without extension is kept)."""
    name = Path(entry.strip()).name
    return Path(name).stem if name.lower().endswith(AUDIO_EXTENSIONS) else name


def make_split(clips: Sequence[Clip], config: DataConfig) -> Split:
    """Splits ``clips`` as ``config`` says (``random``, ``lists``, ``kfold`` or ``dataset``)."""
    if config.split == "dataset":
        return dataset_split(clips)
    if config.split == "lists":
        return split_from_lists(clips, config.split_dir)
    if config.split == "kfold":
        return kfold_split(clips, folds=config.folds, fold=config.fold, seed=config.split_seed)
    return random_split(clips, seed=config.split_seed)


def dataset_split(clips: Sequence[Clip]) -> Split:
    """The split a labels file gives its clips (its split column; FMA's ``set.split``).

    Raises:
        DataError: if a clip has no split, or a part is empty.
    """
    without = [clip.clip_id for clip in clips if clip.split not in PARTS]
    if without:
        raise DataError(f"--split dataset: {len(without)} clips have no split in the labels file (first: "
                        f"{without[0]}); give every row a train, valid or test column, or choose another --split")
    split = Split(*(tuple(clip for clip in clips if clip.split == part) for part in PARTS))
    empty = [part for part in PARTS if not split.part(part)]
    if empty:
        raise DataError(f"--split dataset: the labels file puts no usable clip in {', '.join(empty)}")
    return split
