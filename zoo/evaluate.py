"""Evaluate a trained model on the test split and export it for serving.

Usage::

    python -m zoo.evaluate best [--space SPACE] [--runs runs]
    python -m zoo.evaluate TRIAL_DIR | MODEL.keras
        [--data-dir DIR] [--split-dir DIR] [--out DIR] [--exports exports] [--no-export] [--json]

``best`` is the best trial of all searches under ``--runs`` (highest track-level validation
accuracy, then lowest validation loss), or of one space with ``--space``. A trial directory
holds ``model.keras`` and ``config.json`` (``runs/<space>/best`` is one). The data is rebuilt
exactly as the trial saw it (data folder, split, seed, window) from its saved config, and
the model is evaluated on the **test** split, which no search touches.

Writes ``metrics.json`` and ``confusion_matrix.png`` to ``--out`` (default
``<runs>/evaluations/<trial>``) and, unless ``--no-export``, a SavedModel to
``<exports>/<trial>/<version>/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np

from data.catalogue import DataError
from data.pipeline import clip_average, decoded_dataset, eval_arrays
from data.sources import load_split
from tuning.experiment import EVAL_BATCH_SIZE, rank_key
from zoo.export import export_saved_model, next_version_dir
from zoo.metrics import classification_report, plot_confusion_matrix

PROG = "python -m zoo.evaluate"


class EvaluationError(ValueError):
    """An evaluation target or data folder that cannot be used, with a one-line reason."""


def find_target(target: str, runs: Path, space: str | None) -> tuple[Path, dict]:
    """Resolves ``target`` to ``(model.keras path, saved config or {})``.

    Raises:
        EvaluationError: if nothing usable is found.
    """
    if target == "best":
        if space is not None:
            from tuning.spaces import SPACES

            if space not in SPACES:
                raise EvaluationError(f"unknown space {space!r}; expected one of {', '.join(SPACES)}")
            candidates = [runs / space / "best"]
        else:
            candidates = sorted(p.parent for p in runs.glob("*/best/config.json"))
        found = [(d, json.loads((d / "config.json").read_text())) for d in candidates
                 if (d / "config.json").is_file() and (d / "model.keras").is_file()]
        if not found:
            where = f"{runs / space / 'best'}" if space else f"{runs}/*/best"
            raise EvaluationError(f"no runs found in {where}; run python -m tuning.search first or pass --runs")
        folder, config = min(found, key=lambda item: rank_key(item[1].get("metrics", {})))
        return folder / "model.keras", config
    path = Path(target)
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise EvaluationError(f"{path} holds no model.keras; pass a trial folder with a saved model "
                                  "(such as runs/<space>/best), a .keras file or 'best'")
        path = path / "model.keras"
    if path.suffix != ".keras" or not path.is_file():
        raise EvaluationError(f"evaluation target not found: {target}; expected 'best', a trial folder or a .keras file")
    beside = path.parent / "config.json"
    return path, json.loads(beside.read_text()) if beside.is_file() else {}


def evaluate(model: keras.Model, config: dict, *, data_dir: str | None = None, split_dir: str | None = None) -> dict:
    """Evaluates ``model`` on the test split described by ``config["data"]``.

    Returns:
        Track-level report (see ``zoo.metrics.classification_report``) plus
        ``window_accuracy``, ``track_accuracy``, ``test_clips``, ``test_windows`` and ``data``.

    Raises:
        EvaluationError: if the data folder or split lists have moved, or genres differ.
    """
    described = config.get("data", {})
    folder = data_dir or described.get("data_dir")
    trial = config.get("trial", "the model")
    if folder is not None and not Path(folder).is_dir():
        raise EvaluationError(f"the data folder of {trial} has moved or is gone: {folder}; pass --data-dir")
    split = described.get("split", "random")
    lists = split_dir or described.get("split_dir")
    if split == "lists" and (lists is None or not Path(lists).is_dir()):
        raise EvaluationError(f"the split lists of {trial} have moved or are gone: {lists}; pass --split-dir")
    window_seconds = described.get("window_seconds") or model.input_shape[1] / 22050
    catalogue, parts, synthetic = load_split(folder, split=split, split_dir=lists, seed=described.get("seed", 42))
    genres = list(catalogue.genres)
    if described.get("genres") and described["genres"] != genres:
        raise EvaluationError(f"the data's genres {genres} differ from the model's {described['genres']}")
    if not parts.test:
        raise EvaluationError(f"the test split of {catalogue.root} is empty")
    x, labels, index = eval_arrays(decoded_dataset(parts.test, cache=False), window_seconds=window_seconds)
    probabilities = model.predict(x, batch_size=EVAL_BATCH_SIZE, verbose=0)
    clip_labels = np.array([clip.label for clip in parts.test])
    per_clip = clip_average(probabilities, index, len(parts.test))
    decoded = ~np.isnan(per_clip[:, 0])
    report = classification_report(clip_labels[decoded], per_clip[decoded].argmax(axis=1), genres)
    return {
        "trial": trial,
        "track_accuracy": report["accuracy"],
        "window_accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        **report,
        "test_clips": int(decoded.sum()),
        "test_windows": int(len(labels)),
        "data": {**described, "data_dir": str(catalogue.root), "synthetic": synthetic, "genres": genres},
    }


def format_metrics(metrics: dict) -> str:
    """The metrics as a text table."""
    lines = [
        f"model: {metrics['trial']}",
        f"data: {metrics['data']['data_dir']}{' (synthetic)' if metrics['data']['synthetic'] else ''}, "
        f"test split: {metrics['test_clips']} clips, {metrics['test_windows']} windows",
        f"track accuracy:  {metrics['track_accuracy']:.3f}",
        f"window accuracy: {metrics['window_accuracy']:.3f}",
        f"macro F1:        {metrics['macro_f1']:.3f}",
        "",
        f"{'genre':<12}{'precision':>10}{'recall':>8}{'F1':>7}{'clips':>7}",
    ]
    for genre, row in metrics["per_genre"].items():
        lines.append(f"{genre:<12}{row['precision']:>10.3f}{row['recall']:>8.3f}{row['f1']:>7.3f}{row['support']:>7}")
    genres = list(metrics["per_genre"])
    width = max(len(g) for g in genres)
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * (width + 1) + " ".join(f"{g[:5]:>5}" for g in genres)]
    for genre, row in zip(genres, metrics["confusion_matrix"]):
        lines.append(f"{genre:<{width}} " + " ".join(f"{v:>5}" for v in row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="'best', a trial folder (model.keras + config.json) or a .keras file")
    parser.add_argument("--space", help="with 'best': the best trial of this space only")
    parser.add_argument("--runs", default="runs", help="folder of the searches (default: runs)")
    parser.add_argument("--data-dir", help="data folder, if it moved since the search")
    parser.add_argument("--split-dir", help="split lists folder, if it moved since the search")
    parser.add_argument("--out", help="output folder (default: <runs>/evaluations/<trial>)")
    parser.add_argument("--exports", default="exports", help="SavedModel root (default: exports)")
    parser.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    if args.space is not None and args.target != "best":
        parser.error("--space applies to the target 'best' only")
    try:
        model_path, config = find_target(args.target, Path(args.runs), args.space)
        config.setdefault("trial", model_path.parent.name if model_path.name == "model.keras" else model_path.stem)
        model = keras.saving.load_model(model_path)
        metrics = evaluate(model, config, data_dir=args.data_dir, split_dir=args.split_dir)
    except (EvaluationError, DataError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    name = config["trial"]
    out = Path(args.out) if args.out else Path(args.runs) / "evaluations" / name.replace("/", "_")
    metrics["confusion_matrix_png"] = str(plot_confusion_matrix(
        metrics["confusion_matrix"], list(metrics["per_genre"]), out / "confusion_matrix.png",
        f"{name}: test track accuracy {metrics['track_accuracy']:.3f}",
    ))
    if not args.no_export:
        metrics["export"] = str(export_saved_model(model, list(metrics["per_genre"]), next_version_dir(args.exports, name)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    if not args.json:
        print(f"\nwrote {out / 'metrics.json'}, {metrics['confusion_matrix_png']}"
              + (f"\nexported {metrics['export']}" if "export" in metrics else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
