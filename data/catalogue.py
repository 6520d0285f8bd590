"""Find the clips of a GTZAN copy (or any folder-per-class audio tree).

Accepted layouts for ``data_dir``:

* the folder holding one sub-folder per genre (``blues/blues.00000.wav``, ...);
* a parent holding ``genres_original/`` (the widely shared WAV copy) or ``genres/``
  (the original Marsyas ``.au`` copy).

Classes are the GTZAN genres in their fixed order when every class folder is a GTZAN
genre (a subset keeps that order); any other folder-per-class tree works too, with the
sorted folder names as classes.

With a labels file (``data.labels``: a ``path,label[,split]`` CSV or FMA's ``tracks.csv``), the
clips are the files it lists under ``data_dir``, in any folders, with its labels and splits.

Every file with an audio extension is checked from its header. Unreadable files
(empty, truncated, not audio, wrong header) are reported as :class:`Problem` and left out;
they never stop the scan; so are files a labels file lists that are missing, listed twice or
without a label.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
from pathlib import Path

import soundfile

from data.errors import InputError
from data.labels import read_labels

logger = logging.getLogger(__name__)

SAMPLE_RATE = 22050
GTZAN_GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
# How a clip is decoded: in the TensorFlow graph ("wav", "au") or through soundfile.
CODECS = ("wav", "au", "soundfile")
_LAYOUT_SUBDIRS = ("genres_original", "genres")


class DataError(InputError):
    """A data directory, split or file that cannot be used, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """One audio file of the dataset.

    Attributes:
        path: Path of the file.
        clip_id: File name without extension, e.g. ``"blues.00012"``; unique per dataset.
        genre: Class name (the folder name).
        label: Index of ``genre`` in the catalogue's classes.
        codec: ``"wav"`` or ``"au"`` (PCM16 at 22050 Hz, decoded in the TF graph) or
            ``"soundfile"`` (anything else, decoded and resampled with soundfile + soxr).
        split: The part a labels file puts it in (``train``, ``valid``, ``test``), else None.
    """

    path: str
    clip_id: str
    genre: str
    label: int
    codec: str
    split: str | None = None


@dataclasses.dataclass(frozen=True)
class Problem:
    """A file that was left out, and why."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """The usable clips of a dataset folder, its classes and its unreadable files."""

    root: Path
    genres: tuple[str, ...]
    clips: tuple[Clip, ...]
    problems: tuple[Problem, ...]


def find_root(data_dir: str | os.PathLike) -> Path:
    """Returns the folder that holds the class folders of ``data_dir``.

    Raises:
        DataError: if ``data_dir`` does not exist or is not a folder.
    """
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(f"data directory not found: {path}")
    if not path.is_dir():
        raise DataError(f"data directory is not a folder: {path}")
    for name in _LAYOUT_SUBDIRS:
        if (path / name).is_dir():
            return path / name
    if _class_folders(path):
        return path
    # An archive unpacked as it is shared, e.g. Kaggle's Data/genres_original/<genre>/.
    for pattern in ("*/{}", "*/*/{}"):
        for name in _LAYOUT_SUBDIRS:
            found = sorted(p for p in path.glob(pattern.format(name)) if p.is_dir())
            if found:
                logger.warning("using %s, found below %s", found[0], path)
                return found[0]
    return path


def _class_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that hold audio files, sorted by name."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [p for p in folders if any(_is_audio_name(f.name) for f in p.iterdir())]


def scan(data_dir: str | os.PathLike, labels: str | os.PathLike | None = None,
         subset: str | None = None) -> Catalogue:
    """Lists the clips of a dataset folder, checking each file's header.

    A file that cannot be read (permissions) is a problem like any unreadable file; a folder
    that cannot be listed is an error naming it.

    Args:
        data_dir: A folder in one of the layouts described in the module docstring.
        labels: A labels file (``data.labels``) naming the clips and their classes instead of folders.
        subset: FMA's subset, with FMA's ``tracks.csv`` as ``labels``.

    Returns:
        The catalogue, with clips sorted by (label, clip id) and problems sorted by path.

    Raises:
        DataError: if the folder is missing, cannot be listed, has no class folders or no usable clip.
    """
    try:
        return _scan(data_dir) if labels is None else _scan_labelled(data_dir, labels, subset)
    except PermissionError as error:
        raise DataError(f"cannot read {error.filename or data_dir}: permission denied") from None


def _scan(data_dir: str | os.PathLike) -> Catalogue:
    root = find_root(data_dir)
    folders = _class_folders(root)
    if not folders:
        raise DataError(
            f"no class folders with audio files in {root}; expected <genre>/<genre>.NNNNN.wav "
            "(or .au) under it, under genres_original/ or under genres/"
        )
    names = [p.name for p in folders]
    if set(names) <= set(GTZAN_GENRES):
        genres = tuple(g for g in GTZAN_GENRES if g in names)
    else:
        genres = tuple(names)

    clips: list[Clip] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for label, genre in enumerate(genres):
        for file in sorted((root / genre).iterdir()):
            if not _is_audio_name(file.name):
                continue
            if not file.is_file():
                if file.is_symlink():
                    problems.append(Problem(str(file), f"broken link (to {os.readlink(file)})"))
                continue
            clip_id = file.stem
            if clip_id in seen:
                problems.append(Problem(str(file), f"duplicate clip id {clip_id!r} (also {seen[clip_id]})"))
                continue
            codec, reason = probe(file)
            if reason is not None:
                problems.append(Problem(str(file), reason))
                continue
            seen[clip_id] = str(file)
            clips.append(Clip(str(file), clip_id, genre, label, codec))
    for problem in problems:
        logger.warning("skipping %s: %s", problem.path, problem.reason)
    if not clips:
        raise DataError(f"no readable audio clip in {root} ({len(problems)} unreadable files)")
    for genre in genres:
        if not any(clip.genre == genre for clip in clips):
            logger.warning("genre %s has no usable clip in %s", genre, root)
    return Catalogue(root, genres, tuple(clips), tuple(sorted(problems, key=lambda p: p.path)))


def _scan_labelled(data_dir: str | os.PathLike, labels: str | os.PathLike, subset: str | None) -> Catalogue:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory {'is not a folder' if root.exists() else 'not found'}: {root}")
    kind, entries = read_labels(labels, subset)
    named = {entry.label for entry in entries if entry.label}
    if not named:
        raise DataError(f"{labels} gives no label to any file")
    genres = tuple(g for g in GTZAN_GENRES if g in named) if named <= set(GTZAN_GENRES) else tuple(sorted(named))
    clips: list[Clip] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for entry in entries:
        file = root / entry.path
        if entry.path in seen:
            problems.append(Problem(str(file), f"listed twice in {Path(labels).name} (lines {seen[entry.path]} and "
                                               f"{entry.line}); the first is used"))
            continue
        seen[entry.path] = entry.line
        if Path(entry.path).is_absolute() or ".." in Path(entry.path).parts:
            problems.append(Problem(entry.path, f"outside the data folder ({Path(labels).name}, line {entry.line}); "
                                                "paths are relative to it"))
            continue
        if entry.label is None:
            problems.append(Problem(str(file), f"no label in {Path(labels).name} (line {entry.line})"))
            continue
        if not file.is_file():
            problems.append(Problem(str(file), f"listed in {Path(labels).name} (line {entry.line}) but missing"))
            continue
        codec, reason = probe(file)
        if reason is not None:
            problems.append(Problem(str(file), reason))
            continue
        clip_id = Path(entry.path).with_suffix("").as_posix()
        clips.append(Clip(str(file), clip_id, entry.label, genres.index(entry.label), codec, entry.split))
    if len(problems) > 20:  # FMA lists thousands of unlabelled tracks: one line, data.inspect lists them
        logger.warning("%d files of %s left out (missing, unreadable, listed twice or without a label); "
                       "python -m data.inspect lists them", len(problems), labels)
    else:
        for problem in problems:
            logger.warning("skipping %s: %s", problem.path, problem.reason)
    if not clips:
        raise DataError(f"no readable audio clip of {labels} in {root} ({len(problems)} files left out)")
    clips.sort(key=lambda clip: (clip.label, clip.clip_id))
    return Catalogue(root, genres, tuple(clips), tuple(sorted(problems, key=lambda p: p.path)))


def _is_audio_name(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def probe(path: str | os.PathLike) -> tuple[str, str | None]:
    """Checks a file's header and chooses how to decode it.

    Returns:
        ``(codec, None)`` for a readable file, ``("", reason)`` for an unreadable one.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "", "empty file (0 bytes)"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as error:
        return "", f"cannot be read ({error.strerror})"
    suffix = path.suffix.lower()
    if suffix == ".wav":
        codec, reason = _probe_wav(head, size)
    elif suffix in (".au", ".snd"):
        codec, reason = _probe_au(head, size)
    else:
        codec, reason = "soundfile", None
    if reason is not None and codec != "soundfile":
        return "", reason
    if codec == "soundfile":
        # Our own header check found nothing the graph decoders take; soundfile decides,
        # and it also recognises files whose extension does not match their content.
        try:
            soundfile.info(str(path))
        except Exception as error:  # soundfile raises several types; any means unreadable
            return "", reason or f"not readable as audio ({_one_line(error)})"
    return codec, None


def _probe_wav(head: bytes, size: int) -> tuple[str, str | None]:
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return "soundfile", "not a WAV file (no RIFF/WAVE header)"
    fmt = None
    pos = 12
    while pos + 8 <= len(head):
        chunk_id, chunk_size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk_id == b"fmt " and pos + 24 <= len(head):
            fmt = struct.unpack("<HHIIHH", head[pos + 8 : pos + 24])
        elif chunk_id == b"data":
            if fmt is None:
                return "", "broken WAV file (data chunk before fmt chunk)"
            available = size - (pos + 8)
            if chunk_size > available:
                return "", f"truncated WAV file (header declares {chunk_size} bytes of audio, file has {available})"
            if chunk_size == 0:
                return "", "WAV file with no audio samples"
            tag, _, rate, _, _, bits = fmt
            graph_ready = tag == 1 and bits == 16 and rate == SAMPLE_RATE
            return ("wav" if graph_ready else "soundfile"), None
        pos += 8 + chunk_size + (chunk_size & 1)
    # The data chunk lies beyond the first 4 KiB or is missing: let soundfile decide.
    return "soundfile", "broken WAV file (no data chunk)"


def _probe_au(head: bytes, size: int) -> tuple[str, str | None]:
    if len(head) < 24 or head[:4] != b".snd":
        return "soundfile", "not a Sun/NeXT .au file (no .snd header)"
    offset, data_size, encoding, rate, _ = struct.unpack(">IIIII", head[4:24])
    if offset < 24 or offset > size:
        return "", f"broken .au header (data offset {offset} outside a {size}-byte file)"
    available = size - offset
    if data_size != 0xFFFFFFFF and data_size > available:
        return "", f"truncated .au file (header declares {data_size} bytes of audio, file has {available})"
    if min(data_size, available) < 2:
        return "", ".au file with no audio samples"
    return ("au" if encoding == 3 and rate == SAMPLE_RATE else "soundfile"), None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
