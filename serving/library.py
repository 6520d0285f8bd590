"""Tagging a whole music library: folders in, one row per file out, resumable.

The library behind ``serving.predict --out``: :func:`find_audio` lists the files (folders searched
recursively by audio extension, and list files), :class:`Table` is the CSV or JSON-lines output
written as it goes and read back on a rerun (a file already tagged, and unchanged since, is
skipped), and :func:`tag_library` decodes in worker processes (``serving.decoding``) while the
model scores the windows of several files per batch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from data.catalogue import AUDIO_EXTENSIONS, SAMPLE_RATE
from data.errors import UsageError
from serving.decoding import Decoded, WindowPlan, Workers

# A file that lists recordings, one path per line ('#' starts a comment; relative paths are
# relative to the list's folder), as playlists do.
LIST_EXTENSIONS = (".txt", ".m3u", ".m3u8")
TABLE_FORMATS = (".csv", ".jsonl")
# Columns of every row before the genres' probabilities, and after them.
LEADING = ("path", "status", "error", "top")
TRAILING = ("seconds", "seconds_scored", "windows", "model", "size", "modified_ns")


def default_workers() -> int:
    """Decoding processes by default: every core but one, which the model's own threads use."""
    return max(1, (os.cpu_count() or 2) - 1)


def find_audio(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The recordings named by ``inputs``, in order, each once (paths as given, or under the folder given).

    Rows of a table name them by absolute path (``Table``), so a rerun from elsewhere finds them.
    A folder gives every audio file under it (``data.catalogue.AUDIO_EXTENSIONS``, any case), sorted;
    a ``.txt``, ``.m3u`` or ``.m3u8`` gives the paths it lists; anything else is taken as a
    recording (a missing or unreadable one becomes its own error row, not the run's end).

    Raises:
        UsageError: for a list file that cannot be read.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.update(dict.fromkeys(sorted(p for p in path.rglob("*")
                                              if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_dir())))
        elif path.suffix.lower() in LIST_EXTENSIONS:
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError as error:
                raise UsageError(f"cannot read the list {item}: {error.strerror or error}") from None
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    found[path.parent / line] = None
        else:
            found[path] = None
    return list(found)


def _fingerprint(path: Path) -> tuple[int, int] | None:
    """The file's size and modification time: a row is still true while both are the same."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


class Table:
    """A table of tags, one row per file, appended to as files finish (CSV or JSON lines).

    Rerun with the same file, it continues: rows of files that are unchanged since (same size and
    modification time) and were tagged by the same model are kept and those files skipped; a row
    cut short by a killed run is dropped; a file tagged again replaces its old row when the run
    ends. Rows with an error are tried again on every run.

    Args:
        path: The ``.csv`` or ``.jsonl`` file.
        model: The model's name, in every row.
        genres: The model's genres, one probability column each.
        timeline: Add each window's start and probabilities (``windows`` in JSON lines; in CSV a
            ``timeline`` column of ``start:top genre:probability`` entries).

    Raises:
        UsageError: for another format, or a table written by another model or with other columns.
    """

    def __init__(self, path: Path, model: str, genres: tuple[str, ...], timeline: bool = False):
        self.path = Path(path)
        if self.path.suffix.lower() not in TABLE_FORMATS:
            raise UsageError(f"--out must name a .csv or .jsonl file, got {path}")
        if self.path.is_dir():
            raise UsageError(f"--out {path} is a folder; name a .csv or .jsonl file")
        self.csv = self.path.suffix.lower() == ".csv"
        self.model, self.genres, self.timeline = model, genres, timeline
        self.columns = [*LEADING, *genres, *TRAILING] + (["timeline"] if timeline else [])
        self.rows: dict[str, dict] = {}  # path -> its last complete row
        self.superseded = 0  # rows in the file that a later row of the same path replaces
        self._read()
        self._stream = None

    def _read(self) -> None:
        """Reads the rows a previous run wrote; drops an incomplete last line (a killed run's)."""
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            with open(self.path, "r+b") as stream:
                stream.truncate(len(complete))
        text = complete.decode("utf-8", errors="replace")
        if self.csv:
            reader = csv.DictReader(io.StringIO(text))
            if reader.fieldnames is not None and list(reader.fieldnames) != self.columns:
                raise UsageError(f"{self.path} has other columns than this model's table ({len(reader.fieldnames)} "
                                 f"vs {len(self.columns)}: another model or --windows setting); use another --out")
            rows = list(reader)
        else:
            rows = []
            for number, line in enumerate(text.splitlines(), 1):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise UsageError(f"{self.path}, line {number}, is not a JSON object; "
                                     "use another --out") from None
        for row in rows:
            if row.get("model") != self.model:
                raise UsageError(f"{self.path} holds tags of the model {row.get('model')!r}, not {self.model!r}; "
                                 "use that model or another --out")
            self.superseded += row["path"] in self.rows
            self.rows[row["path"]] = row

    def done(self, path: Path) -> bool:
        """Whether ``path`` has a row without an error, written while the file was as it is now."""
        row = self.rows.get(str(Path(path).absolute()))
        if row is None or row.get("status") != "ok":
            return False
        print_ = _fingerprint(path)
        return print_ is not None and (int(row["size"]), int(row["modified_ns"])) == print_

    def write(self, row: dict) -> None:
        """Appends one row and flushes it: a run killed later keeps it."""
        if self._stream is None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._stream = open(self.path, "a", newline="", encoding="utf-8")
            if self.csv:
                self._writer = csv.DictWriter(self._stream, fieldnames=self.columns)
                if new:
                    self._writer.writeheader()
        self.superseded += row["path"] in self.rows
        self.rows[row["path"]] = row
        if self.csv:
            self._writer.writerow({key: _cell(row.get(key)) for key in self.columns}
                                  | {genre: _cell(row["probabilities"].get(genre)) for genre in self.genres
                                     if "probabilities" in row})
        else:
            self._stream.write(json.dumps(row) + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Closes the file; rewrites it without the rows later rows replaced (to a temporary name, then renamed)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if not self.superseded:
            return
        rows, self.rows, self.superseded = list(self.rows.values()), {}, 0
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.unlink(missing_ok=True)
        real, self.path = self.path, temporary
        for row in rows:
            self.write(row)
        self._stream.close()
        self._stream = None
        self.path = real
        os.replace(temporary, real)


def _cell(value) -> str:
    """A CSV cell: probabilities with 6 digits, lists joined, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


@dataclasses.dataclass
class _File:
    """A file in flight: its windows' probabilities as they are scored."""

    path: Path
    parts: list[np.ndarray] = dataclasses.field(default_factory=list)
    pending: int = 0  # windows received but not scored yet
    decoded: Decoded | None = None


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a run stands, for a progress display.

    Attributes:
        done: Files finished in this run (tagged or failed).
        total: Files this run tags (those already in the table are not counted).
        failed: Files of this run that got an error row.
        seconds: Wall seconds since the run started.
    """

    done: int
    total: int
    failed: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a run did.

    Attributes:
        tagged: Files tagged in this run.
        failed: Files that got an error row.
        skipped: Files already in the table and unchanged, not tagged again.
        seconds: Wall seconds of the run, once its decoding workers had started.
        audio_seconds: Seconds of audio decoded in this run.
        startup_seconds: Wall seconds the decoding workers took to start (once per run).
    """

    tagged: int
    failed: int
    skipped: int
    seconds: float
    audio_seconds: float
    startup_seconds: float = 0.0


def tag_library(files: list[Path], score: Callable[[np.ndarray], np.ndarray], table: Table, window_plan: WindowPlan,
                *, top: int = 3, workers: int = 1, batch_windows: int = 32,
                on_progress: Callable[[Progress], None] = lambda progress: None) -> Summary:
    """Tags every file not already in ``table``, writing a row per file as it finishes.

    Args:
        files: From :func:`find_audio`.
        score: ``[n, window]`` float32 waveforms -> ``[n, genres]`` probabilities (a runtime's).
        table: Where rows go, and which files are done already.
        window_plan: How files are cut into windows (``serving.decoding``).
        top: Genres named in each row's ``top``.
        workers: Decoding worker processes.
        batch_windows: Windows per call of the model, gathered across files.
        on_progress: Called after each file.

    Returns:
        What was done. A file that cannot be decoded gets a row with the reason; the run goes on.
    """
    began = time.perf_counter()
    todo = [path for path in files if not table.done(path)]
    skipped = len(files) - len(todo)
    flight: dict[int, _File] = {}
    queued: list[tuple[int, np.ndarray]] = []  # (file index, window) waiting for a batch
    tagged = failed = 0
    audio_seconds = 0.0
    pool = Workers(workers, window_plan) if todo else None
    start = time.perf_counter()
    try:
        for index, path in enumerate(todo):
            pool.submit(index, str(path))
            flight[index] = _File(path)

        def score_queued() -> set[int]:
            """Scores up to ``batch_windows`` queued windows (never more: the model's memory grows with
            its batch); returns the files they came from."""
            batch = queued[:batch_windows]
            probabilities = score(np.stack([window for _, window in batch]))
            for (index, _), row in zip(batch, probabilities):
                flight[index].parts.append(row)
                flight[index].pending -= 1
            del queued[:batch_windows]
            return {index for index, _ in batch}

        def finish(index: int, error: str | None = None) -> None:
            nonlocal tagged, failed, audio_seconds
            file = flight.pop(index)
            if error is None:
                row = _row(file, table, window_plan, top)
                tagged += 1
                audio_seconds += file.decoded.samples / SAMPLE_RATE
            else:
                row = {"path": str(file.path.absolute()), "status": "error", "error": error, "model": table.model}
                failed += 1
            fingerprint = _fingerprint(file.path)
            if fingerprint is not None:
                row["size"], row["modified_ns"] = fingerprint
            table.write(row)
            on_progress(Progress(tagged + failed, len(todo), failed, time.perf_counter() - start))

        while flight:
            message = pool.get(timeout=0.05 if queued else 1.0)
            touched: set[int] = set()  # the files that may have just become complete
            if message is None:  # nothing new: score what waits rather than idle
                if queued:
                    touched = score_queued()
            elif message[0] == "windows":
                _, index, windows = message
                flight[index].pending += len(windows)
                queued.extend((index, window) for window in windows)
                while len(queued) >= batch_windows:
                    touched |= score_queued()
            elif message[0] == "done":
                flight[message[1]].decoded = message[2]
                touched = {message[1]}
            else:
                # An error after some windows: drop them from the batch, they belong to no row.
                queued[:] = [(i, w) for i, w in queued if i != message[1]]
                finish(message[1], message[2])
            for index in sorted(touched):
                file = flight.get(index)
                if file is not None and file.decoded is not None and file.pending == 0:
                    finish(index)
    finally:
        if pool is not None:
            pool.close()
        table.close()
    return Summary(tagged, failed, skipped, time.perf_counter() - start, audio_seconds, start - began)


def _row(file: _File, table: Table, window_plan: WindowPlan, top: int) -> dict:
    """A tagged file's row: the mean of its windows' probabilities, as the export averages them."""
    per_window = np.stack(file.parts)
    probabilities = per_window.mean(axis=0, dtype=np.float64)
    order = np.argsort(-probabilities)[:top]
    decoded = file.decoded
    row = {"path": str(file.path.absolute()), "status": "ok", "error": None,
           "top": [table.genres[i] for i in order],
           "probabilities": {genre: round(float(p), 6) for genre, p in zip(table.genres, probabilities)},
           "seconds": round(decoded.samples / SAMPLE_RATE, 3),
           "seconds_scored": round(decoded.covered / SAMPLE_RATE, 3),
           "windows": len(decoded.starts), "model": table.model}
    if table.timeline:
        starts = [round(s / SAMPLE_RATE, 3) for s in decoded.starts]
        if table.csv:
            row["timeline"] = ";".join(f"{s}:{table.genres[int(np.argmax(p))]}:{float(np.max(p)):.3f}"
                                       for s, p in zip(starts, per_window))
        else:
            row["timeline"] = [{"start": s, "probabilities": [round(float(v), 6) for v in p]}
                                       for s, p in zip(starts, per_window)]
    return row
