"""Evaluation of a trained run folder on its test split, and its export: the library behind ``zoo.evaluate``.

``find_target`` resolves what a user names (``best``, a trial folder, a ``.keras`` file) to a
model and its saved configuration; ``evaluate_target`` rebuilds the data exactly as the model
saw it, evaluates it on the **test** split (which no search touches), writes ``metrics.json``
and the confusion matrix, and exports a SavedModel.
"""

from __future__ import annotations

from pathlib import Path

from data.config import file_safe
from data.errors import one_line
from training.config import RunConfig
from training.metrics import EvaluationError
from training.runstore import RunStore, rank, read_json, write_json
from tuning.spaces import SPACES


def find_target(target: str, runs: Path, space: str | None = None) -> tuple[Path, dict]:
    """Resolves ``target`` to ``(model.keras path, saved config or {})``.

    ``best`` is the best trial of all searches under ``runs`` (highest track-level validation
    accuracy, then lowest validation loss), or of one ``space``.

    Raises:
        EvaluationError: if nothing usable is found.
    """
    if space is not None and target != "best":
        raise EvaluationError("--space applies to the target 'best' only")
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
        check_finished(path)
        if not (path / "model.keras").is_file():
            raise EvaluationError(f"{path} holds no model.keras; pass a trial folder with a saved model "
                                  "(such as runs/<space>/best), a .keras file or 'best'")
        path = path / "model.keras"
    if path.is_file() and path.suffix != ".keras":
        raise EvaluationError(f"{target} is not a model: expected 'best', a trial folder or a .keras file "
                              "(to predict the genres of audio files, use python -m serving.predict)")
    if not path.is_file():
        raise EvaluationError(f"evaluation target not found: {target}; expected 'best', a trial folder or a .keras file")
    beside = path.parent / "config.json"
    return path, read_json(beside) if beside.is_file() else {}


def about(metrics: dict) -> dict:
    """What an export says about its model: its name, the data it was trained on, its test figures."""
    data = metrics["data"]
    return {"trial": metrics["trial"], "model": metrics["model"],
            "data": {"data_dir": data["data_dir"], "synthetic": data["synthetic"], "split": data["split"]},
            "test": {key: metrics[key] for key in ("track_accuracy", "macro_f1", "test_clips")}}


def check_finished(folder: Path) -> None:
    """Raises EvaluationError if ``folder`` is a trial folder whose training did not finish.

    A trial folder's ``record.json`` is written last, after its model: without it (or with a
    status other than ``completed``), what the folder holds may not be one training's.
    ``best/`` folders hold their metrics in ``config.json`` instead.
    """
    config_path, record_path = folder / "config.json", folder / "record.json"
    if not config_path.is_file() or "metrics" in read_json(config_path):
        return
    if not record_path.is_file():
        raise EvaluationError(f"{folder} is incomplete: it has no record.json, so its training did not finish; "
                              "train it again")
    record = read_json(record_path)
    if record.get("status") != "completed":
        raise EvaluationError(f"{record_path} says the training {record.get('status', 'did not finish')}"
                              f"{': ' + record['error'] if record.get('error') else ''}; train it again")


def evaluate_target(model_path: Path, config: dict, out: Path | None, *, runs: Path, data_dir: str | None = None,
                    split_dir: str | None = None, exports: Path | None = None, test_dir: str | None = None) -> dict:
    """Evaluates the model at ``model_path`` on its test split and exports it; returns the metrics.

    With ``test_dir``, every clip of that labelled folder is a test clip instead (genres matched
    by folder name; ``training.metrics.evaluate_folder``), and nothing is exported.

    Args:
        model_path: A ``model.keras`` (from :func:`find_target`).
        config: Its saved ``config.json``.
        out: Where ``metrics.json`` and ``confusion_matrix.png`` go (default:
            ``<runs>/evaluations/<trial>``).
        runs: The folder of the searches.
        data_dir: The data folder, if it moved since training.
        split_dir: The split lists folder, if it moved since training.
        exports: The SavedModel root (``<exports>/<trial>/<version>/``); None: no export.
        test_dir: A labelled folder to evaluate on instead of the test split (default out:
            ``<runs>/evaluations/<trial>/<folder name>``).

    Raises:
        EvaluationError: for a missing config, a model that cannot be loaded, or data that moved.
    """
    import zoo
    from serving.export import export_saved_model, next_version_dir
    from training.metrics import evaluate_folder, evaluate_run

    if not config:
        raise EvaluationError(f"{model_path} has no config.json beside it: the data it was trained on is unknown")
    try:
        run = RunConfig.from_dict(config)
    except ValueError as error:
        raise EvaluationError(f"{model_path.parent / 'config.json'} is not a run configuration ({error})") from None
    try:
        model = zoo.load_model(model_path)
    except Exception as error:  # Keras raises several types for a damaged file
        raise EvaluationError(f"cannot load {model_path} ({one_line(error)}); the file is damaged, incomplete or "
                              "not a model of this toolkit: rerun the search or train the model again") from None
    if test_dir is not None:
        out = out or runs / "evaluations" / file_safe(run.trial) / file_safe(Path(test_dir).resolve().name)
        metrics = evaluate_folder(model, run, test_dir, out)
        metrics["metrics_json"] = str(out / "metrics.json")
        return metrics
    out = out or runs / "evaluations" / file_safe(run.trial)
    metrics = evaluate_run(model, run, out, data_dir=data_dir, split_dir=split_dir)
    if exports is not None:
        metrics["export"] = str(export_saved_model(model, list(metrics["per_genre"]),
                                                   next_version_dir(exports, run.trial), about=about(metrics)))
        write_json(out / "metrics.json", metrics)
    metrics["metrics_json"] = str(out / "metrics.json")
    return metrics
