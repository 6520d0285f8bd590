"""Shared fixtures: small synthetic datasets in both GTZAN layouts, with broken files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from data import synthesis
from data.catalogue import GTZAN_GENRES, SAMPLE_RATE
from tests import needs

# Tests never talk to W&B, and never read the caller's own GTZAN copy: a command run without
# --data-dir uses the synthetic set whatever the shell's GTZAN_DIR says.
os.environ["WANDB_MODE"] = "disabled"
os.environ.pop("GTZAN_DIR", None)

SHARED_SPLITS = needs.SPLITS


@pytest.fixture(scope="session")
def wheel() -> Path:
    """The musicnn 0.1.0 wheel; the test is skipped, saying why, without it."""
    return needs.musicnn_wheel()


@pytest.fixture(scope="session")
def real_music() -> Path:
    """The shared real GTZAN excerpts; the test is skipped, saying why, without them."""
    return needs.real_excerpts()


@pytest.fixture(scope="session")
def tiny_gtzan(tmp_path_factory) -> Path:
    """Synthetic GTZAN: 10 genres x 6 clips x 4 s, in the ``genre/genre.NNNNN.wav`` layout."""
    root = tmp_path_factory.mktemp("tiny_gtzan")
    return synthesis.generate(root, clips_per_genre=6, seconds=4.0, seed=1, workers=1)


def write_broken_files(folder: Path, reference_wav: Path) -> dict[str, str]:
    """Writes the kinds of broken files real GTZAN copies hold; returns name -> reason start."""
    data = reference_wav.read_bytes()
    (folder / "jazz.00090.wav").write_bytes(b"")
    (folder / "jazz.00091.wav").write_bytes(data[: len(data) // 3])
    (folder / "jazz.00092.wav").write_bytes(b"<html>not audio</html>" * 50)
    # Like the widely shared copy's jazz.00054.wav: audio bytes without a RIFF header.
    (folder / "jazz.00054.wav").write_bytes(b"\x00" * 4 + data[4:])
    return {
        "jazz.00090.wav": "empty file",
        "jazz.00091.wav": "truncated WAV file",
        "jazz.00092.wav": "not a WAV file",
        "jazz.00054.wav": "not a WAV file",
    }


@pytest.fixture(scope="session")
def marsyas_gtzan(tmp_path_factory) -> Path:
    """The original Marsyas layout: ``genres/<genre>/<genre>.NNNNN.au`` (PCM16 big-endian)."""
    root = tmp_path_factory.mktemp("marsyas")
    rng = np.random.default_rng(0)
    for genre in GTZAN_GENRES:
        folder = root / "genres" / genre
        folder.mkdir(parents=True)
        for index in range(3):
            audio = synthesis.render_clip(genre, 2.0 + 0.1 * index, rng)
            soundfile.write(str(folder / f"{genre}.{index:05d}.au"), audio, SAMPLE_RATE, subtype="PCM_16")
    # Marsyas copies also hold bextract collections, which are not audio.
    (root / "genres" / "bextract_single.mf").write_text("blues/blues.00000.au\tblues\n")
    return root


@pytest.fixture()
def broken_copy(tiny_gtzan, tmp_path) -> tuple[Path, dict[str, str]]:
    """The WAV layout under ``genres_original/`` with broken files in ``jazz/``."""
    root = tmp_path / "gtzan"
    shutil.copytree(tiny_gtzan, root / "genres_original")
    expected = write_broken_files(root / "genres_original" / "jazz", tiny_gtzan / "jazz" / "jazz.00000.wav")
    return root, expected
