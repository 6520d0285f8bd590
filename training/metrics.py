"""Evaluation on held-out clips: classification metrics and the confusion-matrix figure."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import keras
import numpy as np
from keras import ops

from data.catalogue import Catalogue, Clip, DataError, scan
from data.config import window_samples
from data.errors import EvaluationError
from data.labels import LabelsError
from data.pipeline import average_per_clip, eval_inputs
from data.sources import load_split
from training.callbacks import predict_windows
from training.config import RunConfig
from training.runstore import pyplot, write_figure, write_json


def classification_report(true: np.ndarray, predicted: np.ndarray, genres: list[str]) -> dict:
    """Accuracy, per-genre precision / recall / F1, macro F1 and the confusion matrix.

    Args:
        true: True labels.
        predicted: Predicted labels.
        genres: Class names in label order.

    Returns:
        ``{"accuracy", "macro_f1", "per_genre": {genre: {precision, recall, f1, support}},
        "confusion_matrix": rows = true genre, columns = predicted genre,
        "genres_without_clips"}``. A genre never predicted has precision 0 (and F1 0), as in
        scikit-learn's ``zero_division=0``. A genre with no clip to score has no recall and no F1
        (None): it is named in ``genres_without_clips`` and left out of the macro F1, which a
        recall of 0 would pull down for a genre that was never tested.
    """
    n = len(genres)
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (true, predicted), 1)
    per_genre, missing = {}, []
    for i, genre in enumerate(genres):
        tp, support = matrix[i, i], int(matrix[i].sum())
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        if support == 0:
            missing.append(genre)
            per_genre[genre] = {"precision": float(precision), "recall": None, "f1": None, "support": 0}
            continue
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_genre[genre] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                            "support": support}
    scored = [g["f1"] for g in per_genre.values() if g["f1"] is not None]
    return {
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "macro_f1": float(np.mean(scored)) if scored else 0.0,
        "per_genre": per_genre,
        "confusion_matrix": matrix.tolist(),
        "genres_without_clips": missing,
    }


def plot_confusion_matrix(matrix, genres: list[str], path: str | Path, title: str) -> Path:
    """Draws the confusion matrix (counts in cells, genre names on both axes) as a PNG."""
    plt = pyplot()
    matrix = np.asarray(matrix)
    size = max(5.0, 0.6 * len(genres) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    ax.set_yticks(range(len(genres)), genres)
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="clips")
    fig.tight_layout()
    path = Path(path)
    write_figure(path, fig)
    plt.close(fig)
    return path


def evaluate_clips(model: keras.Model, clips: tuple[Clip, ...], genres: list[str], window_seconds: float) -> dict:
    """Evaluates ``model`` on ``clips``: every window, softmax averaged per clip.

    Returns:
        ``track_accuracy``, ``window_accuracy``, the track-level report of
        :func:`classification_report`, ``clips`` (evaluated) and ``windows``. Clips that
        failed to decode are left out of the counts.

    Raises:
        ValueError: if no clip could be decoded.
    """
    x, labels, index = eval_inputs(clips, window_seconds=window_seconds)
    probabilities = predict_windows(model, x)
    per_clip = ops.convert_to_numpy(average_per_clip(probabilities.astype(np.float64), index, len(clips)))
    decoded = np.bincount(index, minlength=len(clips)) > 0
    true = np.array([clip.label for clip in clips])[decoded]
    report = classification_report(true, per_clip[decoded].argmax(axis=1), genres)
    if report["genres_without_clips"]:
        logging.getLogger(__name__).warning(
            "no usable clip of %s to score: %s left out of the macro F1 (recall and F1 shown as none)",
            ", ".join(report["genres_without_clips"]), "it is" if len(report["genres_without_clips"]) == 1 else "they are")
    return {"track_accuracy": report["accuracy"],
            "window_accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
            **report, "clips": int(decoded.sum()), "windows": int(len(labels))}


def rebuild_split(run: RunConfig, *, data_dir: str | None = None, split_dir: str | None = None):
    """The catalogue, split and synthetic flag of ``run``'s data, rebuilt exactly as it was trained on.

    Args:
        run: The trained model's configuration.
        data_dir: The data folder, if it moved since training.
        split_dir: The split lists folder, if it moved since training.

    Raises:
        EvaluationError: if the data folder or split lists have moved, or the genres differ.
    """
    config = run.data.replace(data_dir=data_dir or run.data.data_dir, split_dir=split_dir or run.data.split_dir)
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise EvaluationError(f"the data folder of {run.trial} has moved or is gone: {config.data_dir}; pass --data-dir")
    if config.split == "lists" and not Path(config.split_dir).is_dir():
        raise EvaluationError(f"the split lists of {run.trial} have moved or are gone: {config.split_dir}; "
                              "pass --split-dir")
    catalogue, split, synthetic = load_split(config)
    trained_on = run.dataset.get("genres")
    if trained_on and list(trained_on) != list(catalogue.genres):
        raise EvaluationError(f"the data's genres {list(catalogue.genres)} differ from the model's {trained_on}")
    if not split.test:
        raise EvaluationError(f"the test split of {catalogue.root} is empty")
    return catalogue, split, synthetic, config


def check_window(model: keras.Model, run: RunConfig) -> None:
    """Raises EvaluationError if the model does not take the windows its ``config.json`` says."""
    window = window_samples(run.data.window_seconds)
    if model.input_shape[1] != window:
        raise EvaluationError(f"the model of {run.trial} takes windows of {model.input_shape[1]} samples, but its "
                              f"config.json says {run.data.window_seconds:g} s ({window} samples); the config was "
                              "edited or belongs to another model")


def folder_clips(test_dir: str | Path, genres: list[str],
                 labels: str | None = None) -> tuple[Catalogue, tuple[Clip, ...]]:
    """Every clip of a labelled folder (any layout ``data.catalogue`` reads, or the files a labels file
    lists), labelled with the model's genres.

    The genres are matched by name; the folder may hold fewer genres than the model knows.

    Raises:
        EvaluationError: if the folder cannot be read, or holds a genre folder the model does not know.
    """
    try:
        catalogue = scan(test_dir, labels)
    except (DataError, LabelsError) as error:
        raise EvaluationError(f"--test-dir: {error}") from None
    unknown = [genre for genre in catalogue.genres if genre not in genres]
    if unknown:
        raise EvaluationError(f"--test-dir {test_dir} holds genres the model does not know: {', '.join(unknown)}; "
                              f"the model's genres are {', '.join(genres)}")
    clips = tuple(dataclasses.replace(clip, label=genres.index(clip.genre)) for clip in catalogue.clips)
    return catalogue, clips


def evaluate_folder(model: keras.Model, run: RunConfig, test_dir: str | Path, out_dir: Path,
                    labels: str | None = None) -> dict:
    """Evaluates a trained model on every clip of a labelled folder (``folder_clips``); writes
    ``metrics.json`` and ``confusion_matrix.png`` like :func:`evaluate_run`.

    Raises:
        EvaluationError: for a window that does not fit, or a folder that cannot be used.
    """
    check_window(model, run)
    genres = list(run.dataset.get("genres") or [])
    if len(genres) != model.output_shape[-1]:
        raise EvaluationError(f"the config.json of {run.trial} does not list the model's {model.output_shape[-1]} genres")
    catalogue, clips = folder_clips(test_dir, genres, labels)
    if catalogue.problems:
        logging.getLogger(__name__).warning("%d files of %s are unreadable and left out (python -m data.inspect lists "
                                            "them)", len(catalogue.problems), catalogue.root)
    data = {"data_dir": str(catalogue.root), "synthetic": False, "genres": genres, "split": "test-dir",
            "window_seconds": run.data.window_seconds, "unreadable_files": len(catalogue.problems),
            "trained_on": run.data.data_dir}
    return _score(model, run, clips, data, out_dir, f"{run.trial} on {catalogue.root.name}: track accuracy")


def evaluate_run(model: keras.Model, run: RunConfig, out_dir: Path, *, data_dir: str | None = None,
                 split_dir: str | None = None) -> dict:
    """Evaluates a trained model on its test split; writes ``metrics.json`` and ``confusion_matrix.png``.

    Returns:
        The metrics of :func:`evaluate_clips` plus ``trial``, ``test_clips``, ``test_windows``,
        ``data`` (the data configuration and what was found) and ``confusion_matrix_png``.
    """
    check_window(model, run)
    catalogue, split, synthetic, config = rebuild_split(run, data_dir=data_dir, split_dir=split_dir)
    data = {**config.to_dict(), "data_dir": str(catalogue.root), "synthetic": synthetic, "genres": list(catalogue.genres)}
    return _score(model, run, split.test, data, out_dir, f"{run.trial}: test track accuracy")


def _score(model: keras.Model, run: RunConfig, clips: tuple[Clip, ...], data: dict, out_dir: Path, title: str) -> dict:
    """Scores ``clips`` (labelled in ``data["genres"]``), writes ``metrics.json`` and the confusion
    matrix (titled ``title`` and the accuracy) to ``out_dir``; returns the metrics."""
    genres = data["genres"]
    result = evaluate_clips(model, clips, genres, data["window_seconds"])
    metrics = {"trial": run.trial, "model": run.model, **result, "test_clips": result.pop("clips"),
               "test_windows": result.pop("windows"), "data": data}
    metrics["confusion_matrix_png"] = str(plot_confusion_matrix(
        metrics["confusion_matrix"], genres, out_dir / "confusion_matrix.png", f"{title} {metrics['track_accuracy']:.3f}"))
    write_json(out_dir / "metrics.json", metrics)
    return metrics
