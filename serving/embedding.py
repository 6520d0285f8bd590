"""Per-clip embeddings and tags from a pretrained backbone, for users' own classifiers.

As musicnn's own extractor does by default, a recording is cut into non-overlapping 3-s patches
(a remainder shorter than 3 s is left out, unless the recording is shorter than one patch: then
it is one patch), each patch goes through the tagger (``zoo.builders.pretrained.tagger_model``),
and its penultimate features and tag probabilities are averaged over the patches. The audio is
decoded block by block (any format and rate ``serving.predict`` reads), so any length fits in
bounded memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from data.catalogue import SAMPLE_RATE
from data.decode import stream_audio
from data.errors import AudioError
from serving.config import backbone_names
from data.streaming import check_audio_file
from training.runstore import write_arrays
from zoo.builders.pretrained import tagger_model, tags_of

PATCH_SECONDS = 3.0


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """What ``serving.embed`` writes: one row per file that could be read.

    Attributes:
        files: The files, as given.
        embeddings: ``[files, features]`` penultimate features averaged over each file's patches.
        tags: ``[files, tags]`` the backbone's own tag probabilities (50 tags, or AudioSet's 527
            classes), averaged the same way.
        tag_names: The tag names, in column order.
        patches: How many 3-s patches each file had.
    """

    files: tuple[str, ...]
    embeddings: np.ndarray
    tags: np.ndarray
    tag_names: tuple[str, ...]
    patches: np.ndarray

    def save(self, path: str | Path) -> None:
        """Writes the ``.npz`` (to a temporary name first, then renamed)."""
        write_arrays(Path(path), files=np.array(self.files), embeddings=self.embeddings, tags=self.tags,
                     tag_names=np.array(self.tag_names), patches=self.patches)


def patches(file: str | Path) -> Iterable[np.ndarray]:
    """The recording's non-overlapping 3-s patches, decoded block by block (see the module docstring).

    Raises:
        AudioError: naming what is wrong with the file (``serving.prediction.check_audio_file``),
            no samples, or NaN or infinite samples.
    """
    size = int(PATCH_SECONDS * SAMPLE_RATE)
    pending, produced = np.zeros(0, np.float32), 0
    for block in stream_audio(check_audio_file(file)):
        pending = np.concatenate([pending, block])
        while pending.size >= size:
            yield pending[:size]
            pending, produced = pending[size:], produced + 1
    if produced == 0:
        if pending.size == 0:
            raise AudioError("no audio samples")
        yield pending


def embed_file(taggers: list, file: str | Path, batch_patches: int = 32) -> tuple[np.ndarray, np.ndarray, int]:
    """``(embedding, tags, patches)`` of one file with loaded ``tagger_model``\ s, side by side."""
    features, tags, count, batch = [], [], 0, []

    def flush():
        outputs = [tagger.predict_on_batch(np.stack(batch)) for tagger in taggers]
        features.append(np.concatenate([np.asarray(o["penultimate"]) for o in outputs], axis=1).sum(axis=0))
        tags.append(np.concatenate([np.asarray(o["tags"]) for o in outputs], axis=1).sum(axis=0))

    for patch in patches(file):
        if batch and patch.size != batch[0].size:  # the one short patch of a short recording
            flush()
            batch = []
        batch.append(patch)
        count += 1
        if len(batch) == batch_patches:
            flush()
            batch = []
    if batch:
        flush()
    return np.sum(features, axis=0) / count, np.sum(tags, axis=0) / count, count


def embed_files(files: list[str], name: str, on_error: Callable[[str, Exception], None]) -> Embeddings:
    """Embeds each file with the backbone(s) ``name`` (one, several joined by '+', or a shipped model's);
    a file that cannot be read goes to ``on_error`` and is left out.

    Raises:
        ValueError: for an unknown backbone name.
        data.errors.InputError: if the pretrained weights cannot be found or fail their checksum.
    """
    names = backbone_names(name)
    taggers = [tagger_model(backbone) for backbone in names]
    done, rows = [], []
    for file in files:
        try:
            rows.append(embed_file(taggers, file))
        except Exception as error:  # any reader failure: report this file, go on with the others
            on_error(file, error)
            continue
        done.append(file)
    width = sum(tagger.output["penultimate"].shape[-1] for tagger in taggers)
    tag_names = tuple(tag for backbone in names for tag in tags_of(backbone))
    return Embeddings(
        files=tuple(done),
        embeddings=np.array([r[0] for r in rows], np.float32).reshape(-1, width),
        tags=np.array([r[1] for r in rows], np.float32).reshape(-1, len(tag_names)),
        tag_names=tag_names,
        patches=np.array([r[2] for r in rows], np.int64),
    )
