"""Keras callbacks of the training loop: per-clip validation metrics, and the list every fit uses."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from data.pipeline import average_per_clip
from training.config import TrainConfig
from training.schedules import schedule_callback

EVAL_BATCH_SIZE = 64


def predict_windows(model: keras.Model, windows: np.ndarray | tf.data.Dataset) -> np.ndarray:
    """Window probabilities ``[windows, n_genres]``, in chunks of ``EVAL_BATCH_SIZE`` (or the batches of a
    dataset of windows streamed from the disk cache, ``data.pipeline.eval_inputs``).

    ``predict_on_batch`` skips ``predict()``'s per-call dataset set-up (~70 ms, every epoch). The
    last, shorter chunk is padded to the full size (its padding's outputs dropped): every call then
    has one shape, so the model's predict function is traced once, not again for each remainder.
    """
    if isinstance(windows, tf.data.Dataset):
        batches = [np.asarray(batch) for batch in windows]
    else:
        batches = [windows[start:start + EVAL_BATCH_SIZE] for start in range(0, len(windows), EVAL_BATCH_SIZE)]
    if not batches:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    size = max(len(batch) for batch in batches)
    return np.concatenate([_predict_padded(model, batch, size) for batch in batches])


def _predict_padded(model: keras.Model, batch: np.ndarray, size: int) -> np.ndarray:
    """``model``'s outputs for ``batch``, run as a batch of ``size`` (zero windows added, their outputs dropped)."""
    count = len(batch)
    if count < size:
        batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), batch.dtype)])
    return np.asarray(model.predict_on_batch(batch))[:count]


def window_and_track_metrics(probabilities: np.ndarray, labels: np.ndarray, clip_index: np.ndarray,
                             clip_labels: np.ndarray) -> dict[str, float]:
    """Window-level loss and accuracy, and track-level accuracy (softmax averaged per clip)."""
    picked = probabilities[np.arange(len(labels)), labels]
    per_clip = ops.convert_to_numpy(average_per_clip(probabilities.astype(np.float64), clip_index, len(clip_labels)))
    has_windows = np.bincount(clip_index, minlength=len(clip_labels)) > 0
    return {
        "loss": float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))),
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "track_accuracy": float(np.mean(per_clip[has_windows].argmax(axis=1) == clip_labels[has_windows])),
    }


class ClipMetrics(keras.callbacks.Callback):
    """Adds ``val_loss``, ``val_accuracy`` and ``val_track_accuracy`` to each epoch's logs.

    One pass over the validation windows gives all three, so ``fit`` gets no
    ``validation_data``. It comes before callbacks that read these logs (early stopping,
    KerasTuner, W&B).

    Args:
        windows: ``(waveforms, labels, clip index)`` of every validation window (the waveforms as an
            array, or a dataset of batches streamed from the disk cache).
        clip_labels: Label of each validation clip.
    """

    def __init__(self, windows: tuple[np.ndarray | tf.data.Dataset, np.ndarray, np.ndarray], clip_labels: np.ndarray):
        super().__init__()
        self.windows = windows
        self.clip_labels = clip_labels

    def on_epoch_end(self, epoch, logs=None):
        x, labels, index = self.windows
        metrics = window_and_track_metrics(predict_windows(self.model, x), labels, index, self.clip_labels)
        if logs is not None:
            logs.update({f"val_{key}": value for key, value in metrics.items()})


def training_callbacks(train: TrainConfig, validation: ClipMetrics | None) -> list[keras.callbacks.Callback]:
    """The callbacks of every fit, in order: validation metrics (none without validation clips), NaN
    stop, schedule, early stopping."""
    callbacks = ([validation] if validation is not None else []) + [keras.callbacks.TerminateOnNaN()]
    scheduler = schedule_callback(train.schedule, initial=train.learning_rate, gamma=train.gamma,
                                  step_size=train.step_size)
    if scheduler is not None:
        callbacks.append(scheduler)
    if train.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=train.patience, restore_best_weights=True))
    return callbacks
