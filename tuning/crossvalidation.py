"""Cross-validation of one model: trained once per fold, each tested on its held-out fold; and
nested cross-validation of a whole search (:func:`nested_crossvalidate`).

The library behind ``tuning.crossval`` (its results table is ``tuning.tables``). The split is
stratified k-fold by track (``data.splits.kfold_split``): fold I is the test part, a seeded tenth of the other folds the
validation part. The folds are the trials of a KerasTuner search (``tuning.tuner.TaskTuner``),
so they run one after another in one process, or in parallel in the workers of a distributed
run. The run folder (``training.runstore``) holds ``trials/fold-I/`` (model, config, history,
record and the test ``metrics.json``), ``results.json`` and ``confusion_matrix.png`` (the sum
over the folds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import keras
import keras_tuner
import numpy as np

import zoo
from data.config import DataConfig
from data.errors import RunFailed, UsageError
from data.folds import FoldConfig
from data.sources import load_split
from training.config import OBJECTIVE, Reporting, RunConfig, TrainConfig
from training.loop import compile_model, prepare_data, run_config, train_run
from training.metrics import evaluate_run, plot_confusion_matrix
from training.runstore import RunStore, RunStoreError, read_json, write_json
from tuning.searching import run_search
from tuning.spaces import Space
from tuning.tuner import TaskTuner
from zoo.config import ModelConfig

TEST_OBJECTIVE = "test_track_accuracy"


def fold_name(fold: int) -> str:
    """The trial name of fold ``fold``."""
    return f"fold-{fold}"


def crossvalidate(model: str, model_config: ModelConfig, data_config: DataConfig, training: TrainConfig, out: Path, *,
                  reporting: Reporting = Reporting(), say: Callable[[str], None] = lambda line: None) -> dict | None:
    """Trains and tests ``model_config`` on every fold of ``data_config`` (a ``kfold`` split); returns the results.

    Folds whose test metrics are already in ``out`` are not trained again. In a distributed run
    the chief and worker processes return None and the launcher sums up (:func:`summarize_folds`).

    Args:
        model: The model's name as the user gave it.
        model_config: Its configuration.
        data_config: A ``kfold`` data configuration (its ``fold`` is set per fold).
        training: The training configuration.
        out: The cross-validation's run folder.
        reporting: Verbosity and W&B of the folds.
        say: Gets a line per fold.

    Raises:
        RunFailed: naming a fold that failed.
    """
    store = RunStore(out)
    trained = set()

    def run_fold(name: str, **record_fields) -> dict:
        fold = int(name.removeprefix("fold-"))
        metrics = train_fold(model, model_config, data_config.replace(fold=fold), training, store, reporting=reporting,
                             **record_fields)
        trained.add(fold)
        record = store.read_record(name)
        say(f"fold {fold}: test track accuracy {metrics['track_accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
            f"({metrics['test_clips']} clips, {record['seconds']:.0f} s)")
        return {TEST_OBJECTIVE: metrics["track_accuracy"], "test_macro_f1": metrics["macro_f1"]}

    tuner = TaskTuner([fold_name(fold) for fold in range(data_config.folds)], run_fold, objective=TEST_OBJECTIVE,
                      directory=out, seed=training.seed)
    tuner.search(verbose=0)
    if tuner.distributed:
        return None
    return summarize_folds(model, data_config.folds, store, trained=trained, say=say)


def check_folds(data_config: DataConfig) -> None:
    """Raises UsageError, before any training, if a genre has fewer clips than ``--folds``
    (a fold would have no test clip of it)."""
    catalogue, _, _ = load_split(data_config.replace(fold=0))
    counts = {genre: sum(clip.genre == genre for clip in catalogue.clips) for genre in catalogue.genres}
    short = {genre: count for genre, count in counts.items() if count < data_config.folds}
    if short:
        listed = ", ".join(f"{genre} {count}" for genre, count in sorted(short.items(), key=lambda item: item[1]))
        raise UsageError(f"--folds {data_config.folds} needs at least {data_config.folds} usable clips per genre; "
                         f"{catalogue.root} has fewer for {listed}; choose --folds {max(2, min(counts.values()))} "
                         "or fewer")


def train_fold(model: str, model_config: ModelConfig, data_config: DataConfig, training: TrainConfig, store: RunStore, *,
               reporting: Reporting, **record_fields) -> dict:
    """Trains ``model_config`` on fold ``data_config.fold`` and tests it; returns the test metrics.

    A fold whose test metrics are in ``store`` already is not trained again.

    Raises:
        keras_tuner.errors.FailedTrialError: if the training fails (the loss became NaN).
    """
    trial = fold_name(data_config.fold)
    finished = store.read_test_metrics(trial)
    if finished is not None:
        return finished
    data = prepare_data(data_config)
    keras.backend.clear_session()
    compiled = compile_model(model_config, data, training)
    run = run_config(trial, model, model_config, data, training)
    record = train_run(compiled, data, run, store, reporting=reporting, keep_model=True, **record_fields)
    if record["status"] != "completed":
        raise keras_tuner.errors.FailedTrialError(f"fold {data_config.fold} failed: {record['error']}")
    return evaluate_run(compiled, run, store.test_dir(trial))


def summarize_folds(model: str, folds: int, store: RunStore, *, trained: set[int] = frozenset(),
                    say: Callable[[str], None] = lambda line: None) -> dict:
    """The cross-validation's results from its fold folders, written to ``results.json`` with the
    summed confusion matrix (``confusion_matrix.png``).

    Raises:
        RunFailed: naming a fold that failed or did not run.
    """
    results_of_folds = []
    for fold in range(folds):
        trial = fold_name(fold)
        metrics = store.read_test_metrics(trial)
        record = store.read_record(trial)
        if metrics is None:
            why = record["error"] if record and record.get("status") == "failed" else "it did not finish"
            raise RunFailed(f"fold {fold} failed: {why}; rerun with --fresh to start over")
        try:
            results_of_folds.append({
                "fold": fold, "track_accuracy": float(metrics["track_accuracy"]), "macro_f1": float(metrics["macro_f1"]),
                "window_accuracy": float(metrics["window_accuracy"]), "test_clips": int(metrics["test_clips"]),
                "recall": {g: v["recall"] for g, v in metrics["per_genre"].items()},
                "confusion_matrix": metrics["confusion_matrix"], "seconds": float(record["seconds"]),
                "epochs_run": int(record["epochs_run"]), "worker": record.get("worker"),
                "parameters": record.get("parameters")})
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RunStoreError(f"{store.test_dir(trial) / 'metrics.json'} or its record.json is not what "
                                f"cross-validation wrote (missing or bad {error}); rerun with --fresh") from None
        if fold not in trained:
            say(f"fold {fold}: finished earlier: test track accuracy {metrics['track_accuracy']:.3f}")
    genres = list(results_of_folds[0]["recall"])
    accuracy = np.array([f["track_accuracy"] for f in results_of_folds])
    macro_f1 = np.array([f["macro_f1"] for f in results_of_folds])
    matrix = np.sum([f["confusion_matrix"] for f in results_of_folds], axis=0)
    config = store.read_config(fold_name(0))
    results = {
        "model": model, "folds": results_of_folds, "genres": genres,
        "track_accuracy": {"mean": float(accuracy.mean()), "std": float(accuracy.std())},
        "macro_f1": {"mean": float(macro_f1.mean()), "std": float(macro_f1.std())},
        # A genre with no clip in a fold's test part has no recall there: the mean is over the others.
        "recall_per_genre": {g: _mean([f["recall"][g] for f in results_of_folds]) for g in genres},
        "confusion_matrix": matrix.tolist(),
        "parameters": results_of_folds[0]["parameters"] or _count_parameters(config),
        "seconds_per_fold": float(np.mean([f["seconds"] for f in results_of_folds])),
        "data": {k: v for k, v in config["data"].items() if k != "fold"}, "training": config["training"],
    }
    results["confusion_matrix_png"] = str(plot_confusion_matrix(
        matrix, genres, store.root / "confusion_matrix.png",
        f"{model}: {folds} folds, test track accuracy {accuracy.mean():.3f} +- {accuracy.std():.3f}"))
    write_json(store.root / "results.json", results)
    return results


def _mean(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _count_parameters(config: dict) -> int:
    # Folds recorded before records held the parameter count: build the model once to count.
    return zoo.build_model(RunConfig.from_dict(config).model_config).count_params()


def fold_progress(folder: Path) -> str | None:
    """The launcher's line for a finished fold: worker, fold, test track accuracy and macro F1."""
    store = RunStore(folder.parent.parent)
    metrics = store.read_test_metrics(folder.name)
    if metrics is None:
        return None
    record = store.read_record(folder.name)
    return (f"[{record.get('worker', '?')}] {folder.name}: test track accuracy {metrics['track_accuracy']:.3f}, "
            f"macro F1 {metrics['macro_f1']:.3f} ({record['seconds']:.0f} s)")


def nested_crossvalidate(space: Space, data_config: DataConfig, training: TrainConfig, out: Path, *,
                         tuner: str = "grid", max_trials: int | None = None, seed: int = 42,
                         base: ModelConfig | None = None, kfold: FoldConfig | None = None,
                         reporting: Reporting = Reporting(), say: Callable[[str], None] = lambda line: None) -> dict:
    """Cross-validates the whole procedure "search ``space``, then take its best": in each outer fold
    of ``data_config`` (a ``kfold`` split), the search runs on the other folds (with its own
    objective: the split's validation part, or ``kfold``) and what it chose is tested on the
    outer fold, which no search saw. Returns ``results.json``'s content: per fold the chosen
    trial, its objective, its outer test accuracy and the optimism (objective minus test), and
    their mean +- standard deviation.

    Each outer fold's search is a run folder ``out/fold-<i>/<space>`` and resumes as any search;
    a fold tested earlier is not searched again.

    Raises:
        RunFailed: if a search finishes no trial.
    """
    rows = []
    for fold in range(data_config.folds):
        folder = out / f"fold-{fold}"
        tested = folder / "outer_test.json"
        if tested.is_file():
            rows.append(read_json(tested))
            say(f"fold {fold}: searched earlier: chose {rows[-1]['trial']}, test track accuracy "
                f"{rows[-1]['test_track_accuracy']:.3f}")
            continue
        start = time.perf_counter()
        outer = data_config.replace(fold=fold)
        records = run_search(space, outer, training, folder / space.name, tuner=tuner, max_trials=max_trials,
                             seed=seed, base=base, reporting=reporting, kfold=kfold)
        found = RunStore(folder / space.name).read_best()
        if not records or found is None:
            raise RunFailed(f"the search of outer fold {fold} finished no trial; see {folder / space.name}")
        path, config = found
        keras.backend.clear_session()
        metrics = evaluate_run(zoo.load_model(path), RunConfig.from_dict(config), folder / "test")
        objective = float(config["metrics"][OBJECTIVE])
        row = {"fold": fold, "trial": config["trial"], "objective": objective,
               "test_track_accuracy": float(metrics["track_accuracy"]), "test_macro_f1": float(metrics["macro_f1"]),
               "optimism": objective - float(metrics["track_accuracy"]), "trials": len(records),
               "seconds": round(time.perf_counter() - start, 1)}
        write_json(tested, row)
        rows.append(row)
        say(f"fold {fold}: chose {row['trial']} (objective {objective:.3f}), outer test track accuracy "
            f"{row['test_track_accuracy']:.3f}, optimism {row['optimism']:+.3f} ({row['seconds']:.0f} s)")
    results = {"space": space.name, "tuner": tuner, "search_objective": {"kfold": kfold.to_dict()} if kfold else "split",
               "folds": rows, "data": {k: v for k, v in data_config.to_dict().items() if k != "fold"},
               **{key: {"mean": float(np.mean([r[key] for r in rows])), "std": float(np.std([r[key] for r in rows]))}
                  for key in ("objective", "test_track_accuracy", "optimism", "seconds")}}
    write_json(out / "results.json", results)
    return results
