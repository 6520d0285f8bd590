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


MN04 = SHARED / "backbones" / "efficientat-mn04" / "mn04_as_mAP_432.pt"


def efficientat_mn04() -> Path:
    """The shared EfficientAT mn04 checkpoint, put into the cache as ``--weights`` would; skips without it."""
    from zoo import checkpoints

    if not MN04.is_file():
        pytest.skip(f"needs the EfficientAT mn04 checkpoint in {MN04.parent} (beside the project, not part of it)")
    checkpoints.use_weights(MN04)
    return MN04


def weights_for(name: str) -> bool:
    """Whether model ``name`` is built with its pretrained weights in a test: the musicnn taggers' (skips
    without the wheel) and EfficientAT mn04's are here; the other AudioSet backbones' checkpoints are
    not, and no test downloads one, so those are built as architectures alone."""
    import zoo
    from zoo import pretrained
    from zoo.families.pretrained import taggers

    chosen = set(taggers(zoo.resolve(name)))
    if not chosen <= {*pretrained.CHECKPOINTS, "mn04_as"}:
        return False
    if chosen & set(pretrained.CHECKPOINTS):
        musicnn_wheel()
    if "mn04_as" in chosen:
        efficientat_mn04()
    return True


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
