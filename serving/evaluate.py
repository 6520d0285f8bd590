"""Evaluate a trained model on the test split and export it for serving.

Usage::

    python -m serving.evaluate best [--space SPACE] [--runs runs]
    python -m serving.evaluate TRIAL_DIR | MODEL.keras
        [--data-dir DIR] [--split-dir DIR] [--out DIR] [--exports exports] [--no-export] [--json]

(``python -m zoo.evaluate`` is the same command.) ``best`` is the best trial of all searches
under ``--runs`` (highest track-level validation accuracy, then lowest validation loss), or of
one space with ``--space``. A trial directory holds ``model.keras`` and ``config.json``
(``runs/<space>/best``, a ``tuning.train`` folder and a ``tuning.crossval`` fold are such
folders). The data is rebuilt exactly as the model saw it (data folder, split, seeds, window)
from its saved config, and the model is evaluated on the **test** split, which no search touches.

Writes ``metrics.json`` and ``confusion_matrix.png`` to ``--out`` (default
``<runs>/evaluations/<trial>``) and, unless ``--no-export``, a SavedModel to
``<exports>/<trial>/<version>/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from data.cli import fail, parser, quiet_tensorflow

PROG = "python -m serving.evaluate"


def find_target(target: str, runs: Path, space: str | None) -> tuple[Path, dict]:
    """Resolves ``target`` to ``(model.keras path, saved config or {})``.

    Raises:
        EvaluationError: if nothing usable is found.
    """
    from tuning.evaluation import EvaluationError
    from tuning.runstore import RunStore, rank, read_json
    from tuning.spaces import SPACES

    if target == "best":
        if space is not None and space not in SPACES:
            raise EvaluationError(f"unknown space {space!r}; expected one of {', '.join(SPACES)}")
        folders = [runs / space] if space else sorted(p.parent.parent for p in runs.glob("*/best/config.json"))
        found = [best for folder in folders if (best := RunStore(folder).read_best()) is not None]
        if not found:
            where = runs / space / "best" if space else f"{runs}/*/best"
            incomplete = " (best/ is there but lacks model.keras or config.json)" if space and (runs / space / "best").is_dir() else ""
            raise EvaluationError(f"no runs found in {where}{incomplete}; run python -m tuning.search first or pass --runs")
        by_metrics = {id(config["metrics"]): (path, config) for path, config in found}
        best = rank([config["metrics"] for _, config in found])[0]
        return by_metrics[id(best)]
    path = Path(target)
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise EvaluationError(f"{path} holds no model.keras; pass a trial folder with a saved model "
                                  "(such as runs/<space>/best), a .keras file or 'best'")
        path = path / "model.keras"
    if path.suffix != ".keras" or not path.is_file():
        raise EvaluationError(f"evaluation target not found: {target}; expected 'best', a trial folder or a .keras file")
    beside = path.parent / "config.json"
    return path, read_json(beside) if beside.is_file() else {}


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


def build_parser():
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("target", help="'best', a trial folder (model.keras + config.json) or a .keras file")
    result.add_argument("--space", help="with 'best': the best trial of this space only")
    result.add_argument("--runs", default="runs", help="folder of the searches (default: runs)")
    result.add_argument("--data-dir", help="data folder, if it moved since training")
    result.add_argument("--split-dir", help="split lists folder, if it moved since training")
    result.add_argument("--out", help="output folder (default: <runs>/evaluations/<trial>)")
    result.add_argument("--exports", default="exports", help="SavedModel root (default: exports)")
    result.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    result.add_argument("--json", action="store_true", help="print the metrics as JSON")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)
    if args.space is not None and args.target != "best":
        return fail(PROG, "--space applies to the target 'best' only")
    import zoo
    from data.catalogue import DataError
    from data.config import file_safe
    from tuning.config import RunConfig
    from tuning.evaluation import EvaluationError, evaluate_run
    from tuning.runstore import RunStoreError
    from zoo.export import export_saved_model, next_version_dir

    try:
        model_path, config = find_target(args.target, Path(args.runs), args.space)
        if not config:
            raise EvaluationError(f"{model_path} has no config.json beside it: the data it was trained on is unknown")
        run = RunConfig.from_dict(config)
        try:
            model = zoo.load_model(model_path)
        except Exception as error:  # Keras raises several types for a damaged file
            raise EvaluationError(f"cannot load {model_path} ({' '.join(str(error).split())[:200]}); "
                                  "the file is damaged or incomplete: rerun the search or train the model again") from None
        out = Path(args.out) if args.out else Path(args.runs) / "evaluations" / file_safe(run.trial)
        metrics = evaluate_run(model, run, out, data_dir=args.data_dir, split_dir=args.split_dir)
        if not args.no_export:
            metrics["export"] = str(export_saved_model(model, list(metrics["per_genre"]),
                                                       next_version_dir(args.exports, run.trial)))
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    except (EvaluationError, DataError, RunStoreError, ValueError, OSError) as error:
        return fail(PROG, error)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    if not args.json:
        print(f"\nwrote {out / 'metrics.json'}, {metrics['confusion_matrix_png']}"
              + (f"\nexported {metrics['export']}" if "export" in metrics else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
