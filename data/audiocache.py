"""Where decoded audio is kept between epochs: in memory, or on disk and streamed (``--cache``).

Every clip is decoded once to what the models take (int16, mono, 22050 Hz). With ``memory`` the
decoded set is held by tf.data's in-memory cache, as it always was; with ``disk`` each clip is
written once as its own file of raw int16 samples under ``<cache>/audio/<decoding>/`` and read back
each epoch with parallel reads and prefetch, so an epoch needs neither the set in memory nor decoding
again. ``auto`` (the default) takes memory when the decoded set fits in the memory budget
(``--memory-budget-gb``, default half the machine's memory), disk otherwise, and says so in one
line when it takes the disk.

Why one file per clip rather than shards: a clip is a megabyte or more (30 s is 1.3 MB), large
enough that reading it whole runs at the disk's speed, and a file per clip lets any subset in any
order stream from the one cache: a split's parts, every fold of a cross-validation, an evaluation,
several workers. Each entry is named by the file's fingerprint (path, size, modification time) and
the decoding, so a changed file invalidates its own entry only; it is written to a temporary name
and renamed, so a killed first pass leaves only whole entries and a rerun writes the rest. An entry
is raw samples (``tf.io.read_file`` and ``tf.io.decode_raw``: nothing to parse), 2 bytes a sample.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from data.caching import cache_dir
from data.catalogue import SAMPLE_RATE, Clip

logger = logging.getLogger(__name__)

CACHE_MODES = ("memory", "disk", "auto")
# What an entry holds; a change of the decoders' output changes it, and so every entry's name.
DECODING = f"pcm16-mono-{SAMPLE_RATE}hz-v1"
# Share of the machine's memory the decoded set may take by default.
DEFAULT_BUDGET_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class CacheConfig:
    """How decoded audio is kept (``--cache``, ``--memory-budget-gb``, ``--cache-dir``).

    Attributes:
        mode: ``memory``, ``disk`` or ``auto``.
        memory_budget_gb: The most the decoded set may take in memory (None: half the machine's).
        folder: The disk cache's folder (None: ``$GTZAN_CACHE/audio``).
    """

    mode: str = "auto"
    memory_budget_gb: float | None = None
    folder: str | None = None

    def __post_init__(self):
        if self.mode not in CACHE_MODES:
            raise ValueError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {self.mode!r}")
        if self.memory_budget_gb is not None and not self.memory_budget_gb > 0:
            raise ValueError(f"--memory-budget-gb must be positive, got {self.memory_budget_gb}")

    @property
    def budget_bytes(self) -> int:
        """The memory budget in bytes."""
        if self.memory_budget_gb is not None:
            return int(self.memory_budget_gb * 1e9)
        return int(DEFAULT_BUDGET_FRACTION * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))

    @property
    def root(self) -> Path:
        """The disk cache's folder for this decoding."""
        return (Path(self.folder).expanduser() if self.folder else cache_dir() / "audio") / DECODING


_config = CacheConfig()
_said: set[tuple[str, int, int]] = set()  # the choices already said, so that each is said once


def configure(config: CacheConfig) -> None:
    """Sets how this process keeps decoded audio (the commands call it once, from their flags)."""
    global _config
    _config = config


def current() -> CacheConfig:
    """How this process keeps decoded audio."""
    return _config


def decoded_bytes(clips: Sequence[Clip]) -> int:
    """What ``clips`` take decoded (int16 mono at 22050 Hz), from their headers (the file's size where a
    header says no length)."""
    total = 0
    for clip in clips:
        try:
            info = soundfile.info(clip.path)
            total += int(info.frames / info.samplerate * SAMPLE_RATE) * 2
        except Exception:  # a header soundfile cannot read (the graph decodes it): its size is near its samples
            total += os.path.getsize(clip.path)
    return total


def choose(what: str, held: Sequence[Clip] = (), windowed: Sequence[Clip] = ()) -> str:
    """``memory`` or ``disk`` under the current configuration; ``auto`` says its choice once (a warning for
    the disk, an info line for memory).

    Args:
        what: What the clips are, for the line that says the choice.
        held: Clips kept decoded as int16 (training clips).
        windowed: Clips kept as float32 windows, twice their int16 size (validation and evaluation).
    """
    if _config.mode != "auto":
        return _config.mode
    size, budget = decoded_bytes(held) + 2 * decoded_bytes(windowed), _config.budget_bytes
    mode = "memory" if size <= budget else "disk"
    if (what, size, budget) not in _said:
        _said.add((what, size, budget))
        where = "memory" if mode == "memory" else f"a disk cache in {_config.root}"
        # Said where it matters (the disk); keeping the set in memory, as always, is said at the info level.
        logger.log(logging.INFO if mode == "memory" else logging.WARNING,
                   "decoded audio of the %d %s: %s, %s the %s memory budget: kept in %s (--cache, --memory-budget-gb)",
                   len(held) + len(windowed), what, _size(size), "within" if mode == "memory" else "over",
                   _size(budget), where)
    return mode


def _size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


def fingerprint(clip: Clip) -> str:
    """The name of a clip's entry: its file's path, size and modification time, and the decoding."""
    status = os.stat(clip.path)
    key = f"{os.path.abspath(clip.path)}\0{status.st_size}\0{status.st_mtime_ns}\0{clip.codec}\0{DECODING}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def entry_path(root: Path, name: str) -> Path:
    """Where an entry lives: 256 sub-folders, so that no folder holds a whole dataset."""
    return root / name[:2] / f"{name}.pcm"


def write_entry(path: Path, samples: np.ndarray) -> None:
    """Writes one entry whole or not at all (a temporary name beside it, then a rename).

    The temporary name holds the writer's host and process id, so that a later pass can remove
    what a killed writer left (:func:`remove_leftovers`) and never a live one's, on any machine
    sharing the folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f"{path.name}.{socket.gethostname()}.{os.getpid()}.", suffix=".tmp",
                                         dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(np.ascontiguousarray(samples, dtype="<i2").tobytes())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_leftovers(root: Path) -> int:
    """Removes the temporary files of writers of this machine that are gone (killed in the middle of an
    entry); returns how many."""
    removed, host = 0, socket.gethostname()
    for temporary in root.glob("*/*.tmp"):
        parts = temporary.name.split(".")
        if len(parts) < 5 or parts[-4] != host or not parts[-3].isdigit():
            continue
        try:
            os.kill(int(parts[-3]), 0)
            continue  # its writer is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # a live process of another user
        temporary.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def filling(root: Path):
    """Held while a process writes entries into ``root``: the workers of a search that start together
    wait for the first one's pass, then find their entries written (a lock file, ``flock``)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".filling.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def missing_entries(clips: Sequence[Clip], root: Path) -> tuple[list[Path], list[int]]:
    """Every clip's entry path, and the positions of the clips whose entry is not written yet."""
    paths = [entry_path(root, fingerprint(clip)) for clip in clips]
    return paths, [i for i, path in enumerate(paths) if not path.is_file()]
