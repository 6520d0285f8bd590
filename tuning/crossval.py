"""Cross-validate one zoo model: train it once per fold, test each on its held-out fold.

Usage::

    python -m tuning.crossval MODEL [--folds 5] [--recipe recommended|study] [--data-dir DIR]
        [--window-seconds 3] [--split-seed 42] [--seed 42] [--epochs N] [--batch-size N]
        [--out runs] [--fresh] [--table results/real_excerpts.csv] [--workers N [--gpus-per-worker 1]]

The split is stratified k-fold by track (``data.splits.kfold_split``): fold I is the test
part, a seeded tenth of the other folds the validation part. Prints each fold's test track
accuracy and macro F1, then their mean +- standard deviation, and writes
``<out>/crossval/<model>/``: ``trials/fold-I/`` (model, config, history, record and the test
``metrics.json``), ``results.json`` and ``confusion_matrix.png`` (the sum over the folds).
Rerunning resumes: finished folds are kept (``--fresh`` starts over). ``--table`` adds (or
updates) the model's row in a CSV table of cross-validated results. The folds are the trials of
a KerasTuner search: ``--workers N`` trains N folds at a time, in N worker processes of
KerasTuner's chief/worker mode (see ``tuning.distributed``).
"""

from __future__ import annotations

import csv
import io
import logging
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

from data.cli import fail, parser, quiet_tensorflow
from tuning import cli
from tuning.train import check_model, check_recipe, recipe_flags, run_name

PROG = "python -m tuning.crossval"
TABLE_COLUMNS = ["model", "recipe", "folds", "track_accuracy_mean", "track_accuracy_std", "macro_f1_mean",
                 "macro_f1_std", "parameters", "seconds_per_fold", "data", "window_seconds", "command"]


TEST_OBJECTIVE = "test_track_accuracy"
# Flags that change where results go or how they are reported, not the results: left out of the
# table's command column (flag -> values it takes).
REPORTING_FLAGS = {"--fresh": 0, "--table": 1, "--out": 1, "--wandb": 1, "--wandb-project": 1, "--verbose": 0}


def fold_name(fold: int) -> str:
    """The trial name of fold ``fold``."""
    return f"fold-{fold}"


def crossvalidate(model_name: str, data_config, training, out: Path, *, reporting, say=print) -> dict | None:
    """Trains and tests ``model_name`` on every fold of ``data_config`` (a ``kfold`` split); returns the results.

    The folds are the trials of a KerasTuner search (``tuning.tuner.TaskTuner``), so they run
    one after another in one process, or in parallel in the workers of a distributed run
    (``--workers``; there the chief and worker processes return None and the launcher sums
    up). Folds whose test metrics are already in ``out`` are not trained again. ``say`` gets
    a line per fold.
    """
    from tuning.runstore import RunStore
    from tuning.tuner import TaskTuner

    store = RunStore(out)
    trained = set()

    def run_fold(name: str, **record_fields) -> dict:
        fold = int(name.removeprefix("fold-"))
        metrics = train_fold(model_name, data_config.replace(fold=fold), training, store, reporting=reporting,
                             **record_fields)
        trained.add(fold)
        record = store.read_record(name)
        say(f"fold {fold}: test track accuracy {metrics['track_accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
            f"({metrics['test_clips']} clips, {record['seconds']:.0f} s)", flush=True)
        return {TEST_OBJECTIVE: metrics["track_accuracy"], "test_macro_f1": metrics["macro_f1"]}

    tuner = TaskTuner([fold_name(fold) for fold in range(data_config.folds)], run_fold, objective=TEST_OBJECTIVE,
                      directory=out, seed=training.seed)
    tuner.search(verbose=0)
    if tuner.distributed:
        return None
    return summarize_folds(model_name, data_config.folds, store, trained=trained, say=say)


def train_fold(model_name: str, data_config, training, store, *, reporting, **record_fields) -> dict:
    """Trains ``model_name`` on fold ``data_config.fold`` and tests it; returns the test metrics.

    A fold whose test metrics are in ``store`` already is not trained again.

    Raises:
        keras_tuner.errors.FailedTrialError: if the training fails (the loss became NaN).
    """
    import keras
    import keras_tuner

    from tuning.config import RunConfig
    from tuning.evaluation import evaluate_run
    from tuning.runstore import read_json
    from tuning.training import build_model, prepare_data, run_config, train_run

    trial = fold_name(data_config.fold)
    metrics_path = store.trial_dir(trial) / "test" / "metrics.json"
    if metrics_path.is_file():
        return read_json(metrics_path)
    data = prepare_data(data_config)
    keras.backend.clear_session()
    model = build_model(model_name, data, training)
    run = run_config(trial, model_name, data, training)
    record = train_run(model, data, run, store, reporting=reporting, **record_fields)
    if record["status"] != "completed":
        raise keras_tuner.errors.FailedTrialError(f"fold {data_config.fold} failed: {record['error']}")
    store.save_model(trial, model)
    return evaluate_run(model, RunConfig.from_dict(store.read_config(trial)), metrics_path.parent)


def summarize_folds(model_name: str, folds: int, store, *, trained: set[int] = frozenset(), say=print) -> dict:
    """The cross-validation's results from its fold folders, written to ``results.json`` with the
    summed confusion matrix (``confusion_matrix.png``).

    Raises:
        RuntimeError: naming a fold that failed or did not run.
    """
    import zoo
    from tuning.evaluation import plot_confusion_matrix
    from tuning.runstore import read_json, write_json

    results_of_folds = []
    for fold in range(folds):
        trial = fold_name(fold)
        metrics_path = store.trial_dir(trial) / "test" / "metrics.json"
        record = store.read_record(trial)
        if not metrics_path.is_file():
            why = record["error"] if record and record.get("status") == "failed" else "it did not finish"
            raise RuntimeError(f"fold {fold} failed: {why}; rerun with --fresh to start over")
        metrics = read_json(metrics_path)
        if fold not in trained:
            say(f"fold {fold}: finished earlier: test track accuracy {metrics['track_accuracy']:.3f}")
        results_of_folds.append({
            "fold": fold, "track_accuracy": metrics["track_accuracy"], "macro_f1": metrics["macro_f1"],
            "window_accuracy": metrics["window_accuracy"], "test_clips": metrics["test_clips"],
            "recall": {g: v["recall"] for g, v in metrics["per_genre"].items()},
            "confusion_matrix": metrics["confusion_matrix"], "seconds": record["seconds"],
            "epochs_run": record["epochs_run"], "worker": record.get("worker")})
    genres = list(results_of_folds[0]["recall"])
    accuracy = np.array([f["track_accuracy"] for f in results_of_folds])
    macro_f1 = np.array([f["macro_f1"] for f in results_of_folds])
    matrix = np.sum([f["confusion_matrix"] for f in results_of_folds], axis=0)
    config = store.read_config(fold_name(0))
    results = {
        "model": model_name, "folds": results_of_folds, "genres": genres,
        "track_accuracy": {"mean": float(accuracy.mean()), "std": float(accuracy.std())},
        "macro_f1": {"mean": float(macro_f1.mean()), "std": float(macro_f1.std())},
        "recall_per_genre": {g: float(np.mean([f["recall"][g] for f in results_of_folds])) for g in genres},
        "confusion_matrix": matrix.tolist(),
        "parameters": zoo.build_model(zoo.ModelConfig.from_dict(config["model_config"])).count_params(),
        "seconds_per_fold": float(np.mean([f["seconds"] for f in results_of_folds])),
        "data": {k: v for k, v in config["data"].items() if k != "fold"}, "training": config["training"],
    }
    results["confusion_matrix_png"] = str(plot_confusion_matrix(
        matrix, genres, store.root / "confusion_matrix.png",
        f"{model_name}: {folds} folds, test track accuracy {accuracy.mean():.3f} +- {accuracy.std():.3f}"))
    write_json(store.root / "results.json", results)
    return results


def fold_progress(folder: Path) -> str | None:
    """The launcher's line for a finished fold: worker, fold, test track accuracy and macro F1."""
    from tuning.runstore import read_json

    metrics_path = folder / "test" / "metrics.json"
    if not metrics_path.is_file():
        return None
    metrics, record = read_json(metrics_path), read_json(folder / "record.json")
    return (f"[{record.get('worker', '?')}] {folder.name}: test track accuracy {metrics['track_accuracy']:.3f}, "
            f"macro F1 {metrics['macro_f1']:.3f} ({record['seconds']:.0f} s)")


def update_table(path: Path, results: dict, recipe: str, command: str) -> None:
    """Adds the model's row to the CSV table at ``path``, replacing its earlier row for the same recipe."""
    from tuning.runstore import write_text

    rows = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if (r["model"], r["recipe"]) != (results["model"], recipe)]
    data = results["data"]
    rows.append({"model": results["model"], "recipe": recipe, "folds": len(results["folds"]),
                 "track_accuracy_mean": f"{results['track_accuracy']['mean']:.3f}",
                 "track_accuracy_std": f"{results['track_accuracy']['std']:.3f}",
                 "macro_f1_mean": f"{results['macro_f1']['mean']:.3f}", "macro_f1_std": f"{results['macro_f1']['std']:.3f}",
                 "parameters": results["parameters"], "seconds_per_fold": f"{results['seconds_per_fold']:.0f}",
                 "data": Path(data["data_dir"]).name + (" (synthetic)" if data.get("synthetic") else ""),
                 "window_seconds": data["window_seconds"], "command": command})
    rows.sort(key=lambda r: -float(r["track_accuracy_mean"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, TABLE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def build_parser():
    """The command-line parser."""
    result = parser(PROG, __doc__, [recipe_flags(), cli.data_flags(), cli.training_flags(epochs_default="the recipe's"),
                                    cli.reporting_flags(), cli.scale_flags(roles=False)])
    result.set_defaults(split="kfold")
    result.add_argument("model", metavar="MODEL", help="a zoo name (python -m zoo.list) or any name of the grammar")
    result.add_argument("--out", default="runs", help="output folder (default: runs)")
    result.add_argument("--fresh", action="store_true", help="discard earlier folds of this model and recipe")
    result.add_argument("--table", help="CSV table of cross-validated results to add this model's row to")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    quiet_tensorflow(args.verbose)
    from data.catalogue import DataError
    from tuning.distributed import launch, strip_flags
    from tuning.runstore import RunStore, RunStoreError
    from tuning.search import check_same_settings

    try:
        if args.split != "kfold":
            raise cli.UsageError(f"--split must be kfold for cross-validation, got {args.split}")
        model_name = check_model(args.model)
        training = cli.train_config(args, check_recipe(args.recipe))
        data_config = cli.data_config(args)
        out = Path(args.out) / "crossval" / run_name(model_name, args.recipe)
        if args.workers is not None:
            cli.check_workers(args)
        cli.configure_role(args)
        if args.fresh and out.exists() and args.role is None:
            shutil.rmtree(out)
        if args.role is None:  # a rerun resumes only the same cross-validation
            data_settings = {k: v for k, v in data_config.to_dict().items() if k != "fold"}
            check_same_settings(out / "crossval.json", {"model": model_name, "data": data_settings,
                                                        "training": training.to_dict()})
        if args.workers is not None:
            print(f"cross-validating {model_name} over {args.folds} folds in {args.workers} workers")
            launch("tuning.crossval", strip_flags(given, cli.LAUNCHER_FLAGS), out, args.workers, args.gpus_per_worker,
                   progress=fold_progress)
            results = summarize_folds(model_name, args.folds, RunStore(out), trained=set(range(args.folds)))
        else:
            results = crossvalidate(model_name, data_config, training, out, reporting=cli.reporting(args, "crossval"))
    except (cli.UsageError, DataError, RunStoreError, OSError) as error:
        return fail(PROG, error)
    except RuntimeError as error:
        return fail(PROG, error, 1)
    except BaseException as error:  # a stopped launcher or an unreachable chief; others are raised again
        return cli.distributed_failure(PROG, error, args)
    if results is None:  # the chief or a worker of a distributed run: the launcher sums up
        return 0
    accuracy, macro_f1 = results["track_accuracy"], results["macro_f1"]
    print(f"\n{model_name} ({args.recipe} recipe), {len(results['folds'])} folds: test track accuracy "
          f"{accuracy['mean']:.3f} +- {accuracy['std']:.3f}, macro F1 {macro_f1['mean']:.3f} +- {macro_f1['std']:.3f}")
    print("recall per genre: " + ", ".join(f"{g} {v:.2f}" for g, v in results["recall_per_genre"].items()))
    print(f"wrote {out / 'results.json'}, {results['confusion_matrix_png']}")
    if args.table:
        command = "python -m tuning.crossval " + " ".join(shlex.quote(a) for a in strip_flags(given, REPORTING_FLAGS))
        update_table(Path(args.table), results, args.recipe, command)
        print(f"updated {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
