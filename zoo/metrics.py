"""Classification metrics and the confusion-matrix figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def classification_report(true: np.ndarray, predicted: np.ndarray, genres: list[str]) -> dict:
    """Accuracy, per-genre precision / recall / F1, macro F1 and the confusion matrix.

    Args:
        true: True labels.
        predicted: Predicted labels.
        genres: Class names in label order.

    Returns:
        ``{"accuracy", "macro_f1", "per_genre": {genre: {precision, recall, f1, support}},
        "confusion_matrix": rows = true genre, columns = predicted genre}``. A genre never
        predicted has precision 0 (and F1 0), as in scikit-learn's ``zero_division=0``.
    """
    n = len(genres)
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (true, predicted), 1)
    per_genre = {}
    for i, genre in enumerate(genres):
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i].sum() if matrix[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_genre[genre] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                            "support": int(matrix[i].sum())}
    return {
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "macro_f1": float(np.mean([g["f1"] for g in per_genre.values()])),
        "per_genre": per_genre,
        "confusion_matrix": matrix.tolist(),
    }


def plot_confusion_matrix(matrix, genres: list[str], path: str | Path, title: str) -> Path:
    """Draws the confusion matrix (counts in cells, genre names on both axes) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
