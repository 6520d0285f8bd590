"""Cached features of frozen pretrained taggers: a probe trains at the speed of a from-scratch model.

A pretrained genre model whose backbones are frozen up to a layer (``_train=head``, and ``backend``
where the family has a dense layer above it: ``zoo.families.pretrained.frozen_features``) computes
the same output of that layer for a window at every epoch of every trial. Here it is computed once per clip and window, kept on
disk, and the rest of the model (``zoo.builders.pretrained.feature_view``, which shares the
model's layers) trains on it; the model that is saved, evaluated and exported is the whole one,
taking the raw waveform.

**Windows.** A training clip is cut into windows every :data:`HOP_SECONDS` (0.5 s) and one
ending where it ends (a clip shorter than the window is one zero-padded window); each epoch
draws one of them per clip, so the random window of the waveform pipeline becomes a random one
of these. Validation clips are cut as evaluation cuts them (non-overlapping windows and one at
the end: ``data.config.window_starts``).

**The cache.** ``$GTZAN_CACHE/features/`` (or ``~/.cache/gtzan-keras/features/``), one folder
per tagger, layer, window, hop and extractor (its architecture, front end and checkpoint, hashed:
another front end is another folder), one ``.npy`` file per clip named by the hash of the clip's
bytes: a changed file is another entry, never a stale one. Each entry is written to a temporary
name and renamed, so a killed write leaves no partial entry and processes (the workers of a
distributed search) can share the cache. ``python -m data.cache`` shows its size and clears it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.caching import PARTS, cache_dir
from data.catalogue import SAMPLE_RATE, Clip
from data.config import window_samples, window_starts
from data.decode import decode_path
from data.pipeline import AUTOTUNE, mixup
from training.callbacks import ClipMetrics
from training.config import TrainConfig
from zoo.builders.blocks import flat_layers
from zoo.builders.pretrained import feature_extractor, weights_fingerprint
from zoo.config import ModelConfig
from zoo.families.pretrained import backbone_config, frozen_features, taggers

logger = logging.getLogger(__name__)

HOP_SECONDS = 0.5
# Bumped when what an entry holds changes in a way its key cannot see (the decoder, say).
# 2: non-PCM16 files decoded in bounded blocks (data.decode.stream_audio).
FORMAT_VERSION = 2
_BATCH_WINDOWS = 32


def feature_root() -> Path:
    """Where the cached features live: ``<cache>/features`` (``$GTZAN_CACHE`` or ``~/.cache/gtzan-keras``)."""
    return cache_dir() / PARTS["features"]


def uses_cache(config: ModelConfig, train: TrainConfig) -> bool:
    """Whether a training of ``config`` with ``train`` goes through the cached features."""
    return train.cached_features and frozen_features(config) is not None


def file_digest(path: str | os.PathLike) -> str:
    """The hash of a file's bytes (BLAKE2b, 16 bytes, hex): the key of its entries."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cut_windows(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """``[windows, window]`` float32: the clip's windows every ``hop`` and the one at its end
    (``data.config.window_starts``; at ``hop == window``, the windows evaluation scores)."""
    audio = np.pad(audio, (0, max(0, window - audio.size)))
    return np.stack([audio[start:start + window] for start in window_starts(audio.size, window, hop)])


class Extractor:
    """One tagger's frozen features of windows, kept on disk clip by clip.

    Args:
        config: A model config with one tagger whose frozen features exist.
        window: Window length in samples.
        hop: Hop between windows in samples.
        root: The cache folder (default :func:`feature_root`).
    """

    def __init__(self, config: ModelConfig, window: int, hop: int, root: Path | None = None):
        self.config = config.replace(window_seconds=window / SAMPLE_RATE)
        self.window, self.hop = window, hop
        self.layer = frozen_features(self.config)
        self._model: keras.Model | None = None
        key = {"version": FORMAT_VERSION, "tagger": config.tagger, "layer": self.layer, "window": window, "hop": hop,
               "checkpoint": weights_fingerprint(config.tagger),
               "extractor": self._architecture()}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = (root or feature_root()) / f"{config.tagger}-{self.layer}-w{window}-h{hop}-{digest}"

    def _architecture(self) -> list:
        # The extractor's layers and their settings (the front end's included), without the weights:
        # another front end or architecture gives another key.
        return [[layer.__class__.__name__, {k: v for k, v in layer.get_config().items() if k != "name"}]
                for layer in flat_layers(self.model)]

    @property
    def model(self) -> keras.Model:
        """The extractor (``zoo.builders.pretrained.feature_extractor``), built on first use."""
        if self._model is None:
            self._model = feature_extractor(self.config)
        return self._model

    def entry(self, clip: Clip) -> Path:
        """The cache file of ``clip``'s features."""
        digest = file_digest(clip.path)
        return self.folder / digest[:2] / f"{digest}.npy"

    def clip_features(self, clip: Clip) -> np.ndarray | None:
        """``[windows, features]`` of ``clip`` from the cache, computed and stored first on a miss;
        None if the clip does not decode."""
        path = self.entry(clip)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            pass
        except (OSError, ValueError):  # a damaged entry (another disk, a copy): computed again
            logger.warning("recomputing the damaged feature cache entry %s", path)
        try:
            audio = decode_path(clip.path, clip.codec)
        except Exception:  # any decoder failure: the clip is left out, as the waveform pipeline does
            return None
        if audio.size == 0:
            return None
        windows = cut_windows(audio, self.window, self.hop)
        features = np.concatenate([np.asarray(self.model.predict_on_batch(windows[i:i + _BATCH_WINDOWS]), np.float32)
                                   for i in range(0, len(windows), _BATCH_WINDOWS)])
        write_entry(path, features)
        return features


def write_entry(path: Path, array: np.ndarray) -> None:
    """Writes ``array`` as ``.npy`` to a temporary name beside ``path``, then renames it: a reader
    sees the whole entry or none, and writers of the same entry do not disturb each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def clips_features(clips: tuple[Clip, ...], config: ModelConfig, window: int, hop: int,
                   root: Path | None = None) -> list[np.ndarray | None]:
    """Each clip's ``[windows, features]`` for every tagger of ``config``, concatenated in the taggers'
    order (None for a clip that does not decode)."""
    per_tagger = []
    for tagger in taggers(config):
        extractor = Extractor(backbone_config(config, tagger), window, hop, root)
        per_tagger.append([extractor.clip_features(clip) for clip in clips])
    return [None if any(parts[i] is None for parts in per_tagger) else
            np.concatenate([parts[i] for parts in per_tagger], axis=1) for i in range(len(clips))]


@dataclasses.dataclass
class FeatureData:
    """The training and validation data of a command as frozen features: what ``training.loop``
    trains a feature view on (the same interface as ``training.loop.PreparedData``).

    Attributes:
        genres: Class names, in label order.
        train_features: ``[windows, features]`` of every training clip's windows, clip after clip.
        offsets: Where each training clip's windows start in ``train_features``.
        counts: How many windows each training clip has.
        train_labels: Label of each training clip.
        valid: ``(features, labels, clip index)`` of every validation window.
        valid_labels: Label of each validation clip.
    """

    genres: tuple[str, ...]
    train_features: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray
    train_labels: np.ndarray
    valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    valid_labels: np.ndarray

    @property
    def train_clips(self) -> int:
        """How many training clips decoded (one window of each per epoch)."""
        return len(self.counts)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training batches per epoch (one window per clip, as the waveform pipeline)."""
        return max(1, math.ceil(self.train_clips / batch_size))

    def train(self, train: TrainConfig) -> tf.data.Dataset:
        """``train.epochs`` epochs of batches ``(features, label)``: each epoch takes the clips in a new
        order and one of each clip's windows, drawn from ``train.seed`` (the same sequence for
        the same seed, whichever iterator reads it)."""
        rng = np.random.default_rng(train.seed)
        picks, labels = [], []
        for _ in range(train.epochs):
            order = rng.permutation(self.train_clips)
            picks.append(self.offsets[order] + np.floor(rng.random(self.train_clips) * self.counts[order]).astype(np.int64))
            labels.append(self.train_labels[order])
        features = tf.constant(self.train_features)
        batches = tf.data.Dataset.from_tensor_slices((np.stack(picks), np.stack(labels))).flat_map(
            lambda pick, label: tf.data.Dataset.from_tensor_slices((pick, label)).batch(train.batch_size))
        batches = batches.map(lambda pick, label: (tf.gather(features, pick), label), num_parallel_calls=AUTOTUNE)
        if train.one_hot:
            batches = mixup(batches, alpha=train.mixup, n_classes=len(self.genres), seed=train.seed)
        return batches.prefetch(AUTOTUNE)

    def validation(self) -> ClipMetrics | None:
        """The callback that scores the validation clips each epoch, from their features (None
        without validation clips)."""
        return ClipMetrics(self.valid, self.valid_labels) if self.valid is not None else None


def feature_data(config: ModelConfig, genres: tuple[str, ...], train_clips: tuple[Clip, ...],
                 valid_clips: tuple[Clip, ...], root: Path | None = None) -> FeatureData:
    """The frozen features of ``config``'s tagger(s) for a command's training and validation clips,
    from the cache (computed and stored on a miss).

    Raises:
        ValueError: if ``config`` has no frozen features, no training clip decodes, or validation
            clips are given and none decodes.
    """
    if frozen_features(config) is None:
        raise ValueError(f"{config.name} trains no layer on frozen features")
    window = window_samples(config.window_seconds)
    hop = min(window, int(round(HOP_SECONDS * SAMPLE_RATE)))
    train = clips_features(train_clips, config, window, hop, root)
    kept = [i for i, features in enumerate(train) if features is not None]
    valid = clips_features(valid_clips, config, window, window, root)
    scored = [i for i, features in enumerate(valid) if features is not None]
    if not kept or (valid_clips and not scored):
        raise ValueError("no training or no validation clip could be decoded")
    counts = np.array([len(train[i]) for i in kept], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    train_labels = np.array([train_clips[i].label for i in kept], np.int32)
    valid_labels = np.array([clip.label for clip in valid_clips])
    windows = None
    if scored:
        windows = (np.concatenate([valid[i] for i in scored]),
                   np.concatenate([np.full(len(valid[i]), valid_clips[i].label, np.int32) for i in scored]),
                   np.concatenate([np.full(len(valid[i]), i, np.int32) for i in scored]))
    return FeatureData(genres=genres, train_features=np.concatenate([train[i] for i in kept]), offsets=offsets,
                       counts=counts, train_labels=train_labels, valid=windows, valid_labels=valid_labels)
