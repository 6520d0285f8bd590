"""Datasets whose labels are in a file instead of folder names (``--labels FILE``).

Two kinds of file are read, told apart by their first rows:

* a CSV of ``path,label[,split]`` (an optional header row ``path,label[,split]``), paths relative
  to the data folder, ``split`` one of ``train``, ``valid`` or ``test`` (``training`` and
  ``validation`` too);
* the Free Music Archive's ``fma_metadata/tracks.csv`` (two header rows of column groups and names,
  then a ``track_id`` row): track 123 is ``000/000123.mp3`` under the data folder, its label is
  ``track.genre_top``, its split ``set.split`` (training, validation, test) and ``set.subset`` the
  smallest of FMA's nested subsets (small within medium within large) that holds it.

A row without a label is kept as such (the catalogue reports it and leaves the file out); a path
listed twice is kept once and reported.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from data.errors import InputError

# FMA's nested subsets (``--subset``), smallest first.
FMA_SUBSETS = ("small", "medium", "large")
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "val": "valid",
               "test": "test"}
# The most rows a labels file may hold (FMA large lists 106,574 tracks).
_MAX_ROWS = 5_000_000


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of a labels file.

    Attributes:
        path: The file, relative to the data folder.
        label: Its class, or None where the row gives none.
        split: ``train``, ``valid`` or ``test``, or None where the file says none.
        line: The row's line number in the file (for messages).
    """

    path: str
    label: str | None
    split: str | None
    line: int


class LabelsError(InputError):
    """A labels file that cannot be used, with a one-line reason naming it."""


def read_labels(file: str | Path, subset: str | None = None) -> tuple[str, list[Entry]]:
    """Reads a labels file of either kind.

    Args:
        file: A ``path,label[,split]`` CSV or FMA's ``tracks.csv``.
        subset: FMA's ``small``, ``medium`` or ``large`` (the tracks of that subset, the smaller
            ones included); only with ``tracks.csv``.

    Returns:
        ``(kind, entries)``: ``"csv"`` or ``"fma"``, and the rows in file order.

    Raises:
        LabelsError: for a missing or unreadable file, a file of neither kind, a bad split name,
            or a subset with a plain CSV.
    """
    path = Path(file).expanduser()
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = csv.reader(handle)
            first = next(rows, None)
            second = next(rows, None)
            if first is not None and second is not None and "set" in first and "track" in first \
                    and {"subset", "genre_top", "split"} <= set(second):
                return "fma", _fma_entries(path, first, second, rows, subset)
            if subset is not None:
                raise LabelsError(f"--subset applies to FMA's tracks.csv; {path} is a path,label[,split] CSV")
            return "csv", _csv_entries(path, [row for row in (first, second) if row is not None], rows)
    except FileNotFoundError:
        raise LabelsError(f"labels file not found: {path}") from None
    except IsADirectoryError:
        raise LabelsError(f"labels file is a folder: {path}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise LabelsError(f"{path} is not a CSV file ({type(error).__name__})") from None
    except OSError as error:
        raise LabelsError(f"cannot read labels file {path} ({error.strerror})") from None


def _split_name(value: str, path: Path, line: int) -> str | None:
    """The split a cell names (None for an empty cell)."""
    value = value.strip().lower()
    if not value:
        return None
    if value not in SPLIT_NAMES:
        raise LabelsError(f"{path}, line {line}: unknown split {value!r}; expected train, valid or test "
                          "(or training, validation)")
    return SPLIT_NAMES[value]


def _csv_entries(path: Path, head: list[list[str]], rows) -> list[Entry]:
    entries = []
    for line, row in enumerate((*head, *rows), start=1):
        if line > _MAX_ROWS:
            raise LabelsError(f"{path} holds more than {_MAX_ROWS} rows")
        if not row or not "".join(row).strip():
            continue
        if line == 1 and [cell.strip().lower() for cell in row[:2]] == ["path", "label"]:
            continue  # the header row
        if len(row) not in (2, 3):
            raise LabelsError(f"{path}, line {line}: expected path,label or path,label,split, got {len(row)} columns")
        split = _split_name(row[2], path, line) if len(row) == 3 else None
        entries.append(Entry(row[0].strip(), row[1].strip() or None, split, line))
    if not entries:
        raise LabelsError(f"{path} lists no file; expected rows of path,label[,split]")
    return entries


def _fma_entries(path: Path, groups: list[str], names: list[str], rows, subset: str | None) -> list[Entry]:
    if subset is not None and subset not in FMA_SUBSETS:
        raise LabelsError(f"--subset must be one of {', '.join(FMA_SUBSETS)}, got {subset!r}")
    # A column is named by its group and its name; pandas writes the group on every column.
    columns = {(group, name): i for i, (group, name) in enumerate(zip(groups, names))}
    try:
        genre, split, in_subset = (columns[("track", "genre_top")], columns[("set", "split")],
                                   columns[("set", "subset")])
    except KeyError as error:
        raise LabelsError(f"{path} lacks FMA's column {'.'.join(error.args[0])}") from None
    allowed = FMA_SUBSETS[: FMA_SUBSETS.index(subset) + 1] if subset else FMA_SUBSETS
    entries = []
    for line, row in enumerate(rows, start=3):
        if line > _MAX_ROWS:
            raise LabelsError(f"{path} holds more than {_MAX_ROWS} rows")
        if not row or row[0].strip() in ("", "track_id"):
            continue  # pandas' row naming the index
        if len(row) <= max(genre, split, in_subset) or not row[0].strip().isdigit():
            raise LabelsError(f"{path}, line {line}: not a row of FMA's tracks.csv (a track id, then "
                              f"{len(names) - 1} columns)")
        if row[in_subset].strip() not in allowed:
            continue
        track = f"{int(row[0]):06d}"
        entries.append(Entry(f"{track[:3]}/{track}.mp3", row[genre].strip() or None,
                             _split_name(row[split], path, line), line))
    if not entries:
        raise LabelsError(f"{path} lists no track of the subset {subset or 'large'}")
    return entries
