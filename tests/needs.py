"""One rule for tests that need what a fresh clone may lack (the musicnn wheel, the shared real
music, Chromium): they are skipped, saying why, and never fail or error for its absence.

``pytest -rs`` (as CI runs it) prints each reason.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from data.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_EXCERPTS = SHARED / "real_excerpts"
SPLITS = SHARED / "gtzan_splits"


@functools.cache
def _wheel() -> Path | str:
    from zoo import pretrained

    try:
        return pretrained.wheel_path()
    except InputError as error:  # no wheel here and no registry to fetch it from; asked once
        return str(error)


def musicnn_wheel() -> Path:
    """The musicnn 0.1.0 wheel (fetched into the cache when the package registry is reachable); skips without it."""
    found = _wheel()
    if isinstance(found, str):
        pytest.skip(f"needs the musicnn 0.1.0 wheel: {found}")
    return found


def weights_for(name: str) -> None:
    """Skips unless the pretrained weights model ``name`` needs (if any) are here."""
    import zoo

    if zoo.resolve(name).tagger:
        musicnn_wheel()


def real_excerpts() -> Path:
    """The real GTZAN excerpts (``../shared/real_excerpts``, ``<genre>/<id>.wav``); skips without them."""
    if not any(REAL_EXCERPTS.glob("*/*.wav")):
        pytest.skip(f"needs the real GTZAN excerpts in {REAL_EXCERPTS} (beside the project, not part of it)")
    return REAL_EXCERPTS


def split_lists() -> Path:
    """The published GTZAN split lists (``../shared/gtzan_splits``); skips without them."""
    if not SPLITS.is_dir():
        pytest.skip(f"needs the published split lists in {SPLITS} (beside the project, not part of it)")
    return SPLITS
