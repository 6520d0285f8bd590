"""Grouped folds of the non-test clips: what a search that chooses by cross-validation trains on.

Related clips must never straddle training and validation, or a fold's validation figure
measures how well the model recognizes what it heard. Clips are grouped:

* ``track`` (the default): by clip id, so excerpts of one recording (files named with the same
  clip id) stay together; every GTZAN clip is one track;
* ``id-block``: per genre, the clips sorted by id and cut into K contiguous blocks; GTZAN's clip
  ids are grouped by artist, so this approximates folds by artist;
* a group file (``--groups FILE``): a CSV of ``path,group`` (paths relative to the data folder,
  matched by clip id whatever their extension), such as GTZAN's published artist annotations;
  clips it does not name are groups of their own.

The groups are dealt to K folds so that each fold holds about 1/K of every genre: largest group
first (seeded order among equals), each to the fold with the fewest clips of its genres so far.
:class:`FoldConfig` says how (it is saved with every search that uses it); :meth:`FoldConfig.parts`
gives each fold's training and validation clips.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.catalogue import Clip, DataError
from data.config import DictConfig

GROUPINGS = ("track", "id-block")


def read_groups(path: str | os.PathLike) -> dict[str, str]:
    """The group of each clip id a ``path,group`` CSV names (a header row ``path,group`` is allowed).

    Raises:
        DataError: for a file that cannot be read, a row without two fields, or a clip named twice.
    """
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the group file {path} ({error.strerror if isinstance(error, OSError) else error})"
                        ) from None
    if rows and [cell.strip().lower() for cell in rows[0]] == ["path", "group"]:
        rows = rows[1:]
    groups: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{path}, row {number}: expected 'path,group', got {','.join(row)!r}")
        clip_id = Path(row[0].strip()).stem
        if clip_id in groups and groups[clip_id] != row[1].strip():
            raise DataError(f"{path}: clip {clip_id} is in two groups ({groups[clip_id]}, {row[1].strip()})")
        groups[clip_id] = row[1].strip()
    return groups


def clip_groups(clips: Sequence[Clip], folds: int, grouping: str = "track",
                groups: dict[str, str] | None = None) -> list[str]:
    """The group of each clip: from ``groups`` (a group file's) where given, else by ``grouping``.

    Raises:
        ValueError: for an unknown grouping.
    """
    if groups is not None:
        return [f"file:{groups[clip.clip_id]}" if clip.clip_id in groups else f"clip:{clip.clip_id}" for clip in clips]
    if grouping == "track":
        return [f"clip:{clip.clip_id}" for clip in clips]
    if grouping != "id-block":
        raise ValueError(f"unknown grouping {grouping!r}; expected one of {', '.join(GROUPINGS)}, or a group file")
    found = {}
    for label in sorted({clip.label for clip in clips}):
        genre = sorted((c for c in clips if c.label == label), key=lambda c: c.clip_id)
        for block, part in enumerate(np.array_split(np.arange(len(genre)), folds)):
            found.update({genre[i].clip_id: f"block:{label}:{block}" for i in part})
    return [found[clip.clip_id] for clip in clips]


def group_folds(clips: Sequence[Clip], folds: int, groups: Sequence[str], seed: int = 42) -> list[tuple[Clip, ...]]:
    """Deals whole groups of ``clips`` to ``folds`` folds, each holding about 1/``folds`` of every genre.

    Returns:
        The clips of each fold, in the order of ``clips``.

    Raises:
        DataError: if there are fewer groups than folds (a fold would be empty).
    """
    members: dict[str, list[int]] = collections.defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    if len(members) < folds:
        raise DataError(f"{len(members)} groups of clips cannot fill {folds} folds; choose fewer folds")
    names = sorted(members)
    order = np.random.default_rng(seed).permutation(len(names))
    ranked = sorted((names[i] for i in order), key=lambda name: -len(members[name]))  # stable: seeded among equals
    per_genre = np.zeros((folds, max(clip.label for clip in clips) + 1), np.int64)
    assigned = [0] * len(clips)
    for name in ranked:
        labels = np.bincount([clips[i].label for i in members[name]], minlength=per_genre.shape[1])
        load = (per_genre * (labels > 0)).sum(axis=1)  # clips of this group's genres in each fold
        fold = int(np.lexsort((np.arange(folds), per_genre.sum(axis=1), load))[0])
        per_genre[fold] += labels
        for i in members[name]:
            assigned[i] = fold
    return [tuple(clip for clip, f in zip(clips, assigned) if f == fold) for fold in range(folds)]


@dataclasses.dataclass(frozen=True)
class FoldConfig(DictConfig):
    """How a search's k-fold objective deals the non-test clips to folds.

    Attributes:
        folds: Number of folds, at least 2.
        grouping: ``track`` or ``id-block`` (see the module docstring); ignored with ``groups_file``.
        groups_file: A ``path,group`` CSV that groups the clips, or None.
        seed: Seed of the order in which groups of the same size are dealt.
    """

    folds: int = 5
    grouping: str = "track"
    groups_file: str | None = None
    seed: int = 42

    def __post_init__(self):
        if self.folds < 2:
            raise ValueError(f"--folds must be at least 2 for a k-fold objective, got {self.folds}")
        if self.grouping not in GROUPINGS:
            raise ValueError(f"unknown --group-by {self.grouping!r}; expected one of {', '.join(GROUPINGS)}")

    def parts(self, clips: Sequence[Clip]) -> list[tuple[tuple[Clip, ...], tuple[Clip, ...]]]:
        """``(training clips, validation clips)`` of each fold of ``clips``: each fold validates once.

        Raises:
            DataError: for a group file that cannot be used, or fewer groups than folds.
        """
        groups = read_groups(self.groups_file) if self.groups_file else None
        folds = group_folds(clips, self.folds, clip_groups(clips, self.folds, self.grouping, groups), self.seed)
        return [(tuple(c for i, fold in enumerate(folds) if i != k for c in fold), folds[k]) for k in range(self.folds)]
