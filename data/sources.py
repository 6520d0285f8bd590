"""Where the data comes from: ``--data-dir``, else ``$GTZAN_DIR``, else synthetic GTZAN.

The synthetic default is generated once into a cache folder, ``$GTZAN_CACHE`` or
``~/.cache/gtzan-keras``, under a name that records its size and seed; later runs reuse it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from data import synthesis
from data.caching import cache_dir
from data.catalogue import Catalogue, scan
from data.config import DataConfig
from data.splits import Split, make_split

logger = logging.getLogger(__name__)

# Size of the embedded default: small enough that the default search runs in minutes on
# 2 CPU cores, large enough for a 3-s window model to learn the styles.
DEFAULT_SYNTHETIC = {"clips_per_genre": 15, "seconds": 6.0, "seed": 0}


def synthetic_data_dir(clips_per_genre: int, seconds: float, seed: int) -> Path:
    """Returns a synthetic dataset of this size, generating it into the cache if needed."""
    target = cache_dir() / f"synthetic-{clips_per_genre}x{seconds:g}s-seed{seed}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("generating synthetic GTZAN (%d clips per genre, %g s) into %s", clips_per_genre, seconds, target)
    # Written beside the target and renamed at the end, so an interrupted run leaves no
    # half-written dataset behind.
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        synthesis.generate(staging, clips_per_genre=clips_per_genre, seconds=seconds, seed=seed)
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # another process did not win the race: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[Path, bool]:
    """Chooses the dataset folder.

    Args:
        data_dir: The user's ``--data-dir``, or None.

    Returns:
        ``(folder, is_synthetic)``: ``data_dir`` if given, else ``$GTZAN_DIR`` if set, else
        the default synthetic dataset (generated on first use).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser(), False
    if os.environ.get("GTZAN_DIR"):
        return Path(os.environ["GTZAN_DIR"]).expanduser(), False
    return synthetic_data_dir(**DEFAULT_SYNTHETIC), True


def load_split(config: DataConfig) -> tuple[Catalogue, Split, bool]:
    """Scans the dataset ``config`` names and splits it by track.

    Returns:
        ``(catalogue, split, is_synthetic)``; ``is_synthetic`` is also true for a folder
        written by ``python -m data.synthetic``.

    Raises:
        DataError: for a missing or empty data folder, or split lists that cannot be used.
    """
    folder, is_synthetic = resolve_data_dir(config.data_dir)
    catalogue = scan(folder, config.labels, config.subset)
    if catalogue.problems:
        logger.warning("%d unreadable files left out (python -m data.inspect %s lists them)",
                       len(catalogue.problems), catalogue.root)
    is_synthetic = is_synthetic or synthesis.is_synthetic(catalogue.root)
    return catalogue, make_split(catalogue.clips, config), is_synthetic
