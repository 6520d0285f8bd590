"""What every trial shares: the prepared data, the per-clip validation metrics, the records.

A trial's record (``record.json``), history (``history.json``, ``history.csv``) and
resolved configuration (``config.json``) are written to ``<out>/<space>/trials/<trial>/``,
so reports and ``zoo.evaluate`` work from local files alone.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.pipeline import clip_average, decoded_dataset, eval_arrays, train_dataset
from data.sources import load_split
from data.splits import Split

OBJECTIVE = "val_track_accuracy"
EVAL_BATCH_SIZE = 64


@dataclasses.dataclass
class ExperimentData:
    """Decoded training clips and in-memory validation windows, prepared once per search.

    Attributes:
        genres: Class names, in label order.
        split: The track-level split.
        window_seconds: Window length of training and evaluation.
        seed: Seed of the split and of the training windows.
        description: JSON-ready record of where the data came from (saved with each trial).
        train_decoded: Cached decoded training clips.
        valid: ``(waveforms, labels, clip index)`` of every validation window.
        valid_labels: Label of each validation clip.
    """

    genres: tuple[str, ...]
    split: Split
    window_seconds: float
    seed: int
    description: dict
    train_decoded: tf.data.Dataset
    valid: tuple[np.ndarray, np.ndarray, np.ndarray]
    valid_labels: np.ndarray

    def train(self, batch_size: int) -> tf.data.Dataset:
        """Random training windows in batches of ``batch_size``, from the shared decoded cache.

        A new dataset per call, seeded with ``seed``: every trial sees the same windows in the
        same order, whichever trials ran before it.
        """
        return train_dataset(self.train_decoded, window_seconds=self.window_seconds, batch_size=batch_size,
                             seed=self.seed)


def prepare_data(
    data_dir: str | os.PathLike | None,
    *,
    split: str = "random",
    split_dir: str | os.PathLike | None = None,
    seed: int = 42,
    window_seconds: float = 3.0,
) -> ExperimentData:
    """Scans, splits and decodes the data of an experiment.

    Raises:
        DataError: for a missing or empty data folder, or split lists that match no clip.
        ValueError: if the split leaves the training or validation part empty.
    """
    catalogue, parts, synthetic = load_split(data_dir, split=split, split_dir=split_dir, seed=seed)
    if not parts.train or not parts.valid:
        raise ValueError(f"the split leaves {'no training' if not parts.train else 'no validation'} clips; "
                         f"sizes: {parts.sizes()}")
    description = {
        "data_dir": str(catalogue.root),
        "synthetic": synthetic,
        "split": split,
        "split_dir": None if split_dir is None else str(Path(split_dir).resolve()),
        "seed": seed,
        "window_seconds": window_seconds,
        "genres": list(catalogue.genres),
        "sizes": parts.sizes(),
        "unreadable_files": len(catalogue.problems),
    }
    valid = eval_arrays(decoded_dataset(parts.valid, cache=False), window_seconds=window_seconds)
    return ExperimentData(
        genres=catalogue.genres,
        split=parts,
        window_seconds=window_seconds,
        seed=seed,
        description=description,
        train_decoded=decoded_dataset(parts.train),
        valid=valid,
        valid_labels=np.array([clip.label for clip in parts.valid]),
    )


def window_and_track_metrics(probabilities: np.ndarray, labels: np.ndarray, clip_index: np.ndarray,
                             clip_labels: np.ndarray) -> dict[str, float]:
    """Window-level loss and accuracy, and track-level accuracy (softmax averaged per clip)."""
    picked = probabilities[np.arange(len(labels)), labels]
    per_clip = clip_average(probabilities, clip_index, len(clip_labels))
    has_windows = ~np.isnan(per_clip[:, 0])
    return {
        "loss": float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))),
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "track_accuracy": float(np.mean(per_clip[has_windows].argmax(axis=1) == clip_labels[has_windows])),
    }


class ClipMetrics(keras.callbacks.Callback):
    """Adds ``val_loss``, ``val_accuracy`` and ``val_track_accuracy`` to each epoch's logs.

    One pass over the validation windows gives all three, so ``fit`` gets no
    ``validation_data``. Put it before callbacks that read these logs (early stopping,
    KerasTuner, W&B).
    """

    def __init__(self, data: ExperimentData):
        super().__init__()
        self.data = data

    def on_epoch_end(self, epoch, logs=None):
        x, labels, index = self.data.valid
        # predict_on_batch skips predict()'s per-call dataset set-up (~70 ms, every epoch).
        probabilities = np.concatenate([self.model.predict_on_batch(x[start:start + EVAL_BATCH_SIZE])
                                        for start in range(0, len(x), EVAL_BATCH_SIZE)])
        metrics = window_and_track_metrics(probabilities, labels, index, self.data.valid_labels)
        if logs is not None:
            logs.update({f"val_{key}": value for key, value in metrics.items()})


def write_history(trial_dir: Path, history: dict[str, list[float]]) -> None:
    """Writes the per-epoch history as ``history.json`` and ``history.csv``."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "history.json").write_text(json.dumps(history, indent=1))
    keys = sorted(history)
    with open(trial_dir / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *keys])
        for epoch in range(max((len(v) for v in history.values()), default=0)):
            writer.writerow([epoch + 1, *(history[k][epoch] if epoch < len(history[k]) else "" for k in keys)])


def write_json(path: Path, content: dict) -> None:
    """Writes ``content`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, default=str))


def read_records(space_dir: Path) -> list[dict]:
    """All trial records under ``space_dir/trials``, best first.

    Completed trials rank by higher track-level validation accuracy, then lower validation
    loss; failed trials come last.
    """
    records = [json.loads(p.read_text()) for p in sorted((space_dir / "trials").glob("*/record.json"))]
    return sorted(records, key=rank_key)


def rank_key(record: dict) -> tuple:
    """Sort key: completed before failed, then higher track accuracy, then lower loss."""
    completed = record.get("status") == "completed"
    return (not completed, -record.get(OBJECTIVE, 0.0) if completed else 0.0,
            record.get("val_loss", float("inf")) if completed else 0.0)
