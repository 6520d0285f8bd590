"""The toolkit's cache folder, ``$GTZAN_CACHE`` or ``~/.cache/gtzan-keras``: what it holds, and clearing it.

* ``synthetic-<clips>x<seconds>s-seed<seed>/``: the synthetic GTZAN-shaped sets, generated once
  (``data.sources``);
* ``wheels/``: the musicnn 0.1.0 wheel the pretrained weights are read from (``zoo.pretrained``);
* ``checkpoints/``: the other pretrained backbones' released checkpoints (``zoo.checkpoints``);
* ``features/``: the frozen pretrained taggers' features of clips (``training.features``);
* ``audio/``: decoded audio, one file per clip, where it is kept on disk (``data.audiocache``).

Everything in it is made again when it is needed and missing, so any part may be cleared at any
time between runs (``python -m data.cache --clear features``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Each part of the cache and the names of its entries in the cache folder.
PARTS = {"synthetic": "synthetic-*", "wheels": "wheels", "checkpoints": "checkpoints", "features": "features",
         "audio": "audio"}


def cache_dir() -> Path:
    """The cache folder: ``$GTZAN_CACHE``, else ``~/.cache/gtzan-keras``."""
    return Path(os.environ.get("GTZAN_CACHE") or Path.home() / ".cache" / "gtzan-keras").expanduser()


def part_paths(part: str, root: Path | None = None) -> list[Path]:
    """The folders of ``part`` (a key of :data:`PARTS`) that exist in the cache.

    Raises:
        ValueError: for an unknown part, naming the accepted ones.
    """
    if part not in PARTS:
        raise ValueError(f"unknown cache part {part!r}; expected one of {', '.join(PARTS)}")
    return sorted(path for path in (root or cache_dir()).glob(PARTS[part]) if path.is_dir())


def usage(root: Path | None = None) -> dict[str, dict[str, int]]:
    """Per part: ``{"folders": ..., "files": ..., "bytes": ...}`` of what the cache holds."""
    report = {}
    for part in PARTS:
        files = [f for folder in part_paths(part, root) for f in folder.rglob("*") if f.is_file() and not f.is_symlink()]
        report[part] = {"folders": len(part_paths(part, root)), "files": len(files),
                        "bytes": sum(f.stat().st_size for f in files)}
    return report


def clear(part: str, root: Path | None = None) -> int:
    """Deletes what the cache holds of ``part``; returns the bytes freed.

    Raises:
        ValueError: for an unknown part.
    """
    freed = usage(root)[part]["bytes"] if part in PARTS else 0
    for folder in part_paths(part, root):
        shutil.rmtree(folder)
    return freed
