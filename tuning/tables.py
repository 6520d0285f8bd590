"""The CSV table of cross-validated results that ``tuning.crossval --table`` keeps: one row per
model and recipe, best first, each with the command that produced it.

Loads without TensorFlow, so the command checks ``--table`` before the library loads.
"""

from __future__ import annotations

from pathlib import Path

from data.errors import UsageError
from training.runstore import read_csv, write_csv

TABLE_COLUMNS = ["model", "recipe", "folds", "track_accuracy_mean", "track_accuracy_std", "macro_f1_mean",
                 "macro_f1_std", "parameters", "seconds_per_fold", "data", "window_seconds", "scored", "command"]
# How evaluation scores a clip: every window, the last one ending where the clip ends (older rows of a
# table may say "first window": measured when evaluation scored each clip's first whole window only).
SCORED = "whole clip"


def check_table(path: Path) -> None:
    """Checks, before any training, that ``path`` can take a results row (missing, or a table of ours).

    Raises:
        UsageError: if ``path`` is a folder, or a file that is not a CSV table with :data:`TABLE_COLUMNS`.
    """
    if path.is_dir():
        raise UsageError(f"--table {path} is a folder; give the path of a CSV file")
    if path.exists():
        header = path.read_text(errors="replace").splitlines()[:1]
        columns = header[0].split(",") if header else []
        if columns != TABLE_COLUMNS:
            raise UsageError(f"--table {path} is not a results table (its first line is {header[0][:80]!r} "
                             f"instead of {','.join(TABLE_COLUMNS[:3])},...); give a new file or one this command wrote"
                             if header else f"--table {path} is empty; remove it or give a new file")


def update_table(path: Path, results: dict, recipe: str, command: str) -> None:
    """Adds the model's row to the CSV table at ``path``, replacing its earlier row for the same recipe
    and data (the same model on another data folder, a band-limited copy say, keeps its own row).

    Raises:
        UsageError: if ``path`` is not such a table (:func:`check_table`).
    """
    check_table(path)
    data = results["data"]
    data_name = Path(data["data_dir"]).name + (" (synthetic)" if data.get("synthetic") else "")
    rows = []
    if path.is_file():
        rows = [r for r in read_csv(path) if (r["model"], r["recipe"], r["data"]) != (results["model"], recipe, data_name)]
    rows.append({"model": results["model"], "recipe": recipe, "folds": len(results["folds"]),
                 "track_accuracy_mean": f"{results['track_accuracy']['mean']:.3f}",
                 "track_accuracy_std": f"{results['track_accuracy']['std']:.3f}",
                 "macro_f1_mean": f"{results['macro_f1']['mean']:.3f}", "macro_f1_std": f"{results['macro_f1']['std']:.3f}",
                 "parameters": results["parameters"], "seconds_per_fold": f"{results['seconds_per_fold']:.0f}",
                 "data": data_name,
                 "window_seconds": data["window_seconds"], "scored": SCORED, "command": command})
    rows.sort(key=lambda r: -float(r["track_accuracy_mean"]))
    write_csv(path, TABLE_COLUMNS, rows)
