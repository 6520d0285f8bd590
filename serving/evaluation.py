"""Evaluation of a trained run folder on its test split, and its export: the library behind ``zoo.evaluate``.

``serving.config.find_target`` resolves what a user names (``best``, a trial folder, a ``.keras``
file) to a model and its saved configuration; :func:`evaluate_target` rebuilds the data exactly as the model
saw it, evaluates it on the **test** split (which no search touches), writes ``metrics.json``
and the confusion matrix, and exports it (a SavedModel, and the other formats asked for).
"""

from __future__ import annotations

from pathlib import Path

import zoo
from data.config import file_safe
from data.errors import EvaluationError, one_line
from serving.config import ABOUT_FILE
from serving.export import export_model, next_version_dir
from training.config import RunConfig
from training.metrics import evaluate_folder, evaluate_run
from training.runstore import evaluation_dir, read_json, write_json
from zoo.config import ModelConfig
from zoo.families.pretrained import BACKBONE_NAMES, FAMILY_OF, LICENCES, taggers


def about(metrics: dict, model_config: ModelConfig) -> dict:
    """What an export says about its model: its name and configuration, the data it was trained on, its
    test figures, and the licence of the pretrained weights it holds (they go wherever the export goes)."""
    data = metrics["data"]
    described = {"trial": metrics["trial"], "model": metrics["model"], "model_config": model_config.to_dict(),
                 "data": {"data_dir": data["data_dir"], "synthetic": data["synthetic"], "split": data["split"]},
                 "test": {key: metrics[key] for key in ("track_accuracy", "macro_f1", "test_clips")}}
    weights = [{"backbone": BACKBONE_NAMES[tagger], "licence": LICENCES[FAMILY_OF[tagger]]}
               for tagger in taggers(model_config)]
    return {**described, "pretrained_weights": weights} if weights else described


def evaluate_target(model_path: Path, config: dict, out: Path | None, *, data_dir: str | None = None,
                    split_dir: str | None = None, exports: Path | None = None, test_dir: str | None = None,
                    formats: tuple[str, ...] = ("savedmodel",), labels: str | None = None) -> dict:
    """Evaluates the model at ``model_path`` on its test split and exports it; returns the metrics.

    With ``test_dir``, every clip of that labelled folder is a test clip instead (genres matched
    by folder name; ``training.metrics.evaluate_folder``), and nothing is exported.

    Args:
        model_path: A ``model.keras`` (from ``serving.config.find_target``).
        config: Its saved ``config.json``.
        out: Where ``metrics.json`` and ``confusion_matrix.png`` go (default: ``evaluation/`` in
            the run's folder, ``training.runstore.evaluation_dir``).
        data_dir: The data folder, if it moved since training.
        split_dir: The split lists folder, if it moved since training.
        exports: The export root (``<exports>/<model name>/<version>/``); None: no export.
        test_dir: A labelled folder to evaluate on instead of the test split (default out:
            ``evaluation/<folder name>`` in the run's folder).
        formats: The formats to export (``serving.config.FORMATS``), all into the one version folder.
        labels: The labels file of ``test_dir``, if its clips are not in class folders.

    Raises:
        EvaluationError: for a missing config, a model that cannot be loaded, or data that moved.
    """
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
        out = out or evaluation_dir(model_path, run.trial) / file_safe(Path(test_dir).resolve().name)
        metrics = evaluate_folder(model, run, test_dir, out, labels)
        metrics["metrics_json"] = str(out / "metrics.json")
        return metrics
    out = out or evaluation_dir(model_path, run.trial)
    metrics = evaluate_run(model, run, out, data_dir=data_dir, split_dir=split_dir)
    if exports is not None:
        path = export_model(model, list(metrics["per_genre"]), next_version_dir(exports, run.model_config.name), formats,
                            about=about(metrics, run.model_config))
        metrics["export"] = str(path)
        metrics["export_formats"] = read_json(path / ABOUT_FILE)["formats"]
        write_json(out / "metrics.json", metrics)
    metrics["metrics_json"] = str(out / "metrics.json")
    return metrics
