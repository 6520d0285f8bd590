"""Cross-validate one zoo model: train it once per fold, test each on its held-out fold.

Usage::

    python -m tuning.crossval MODEL [--folds 5] [--recipe recommended|study] [--data-dir DIR]
        [--window-seconds 3] [--split-seed 42] [--seed 42] [--epochs N] [--batch-size N]
        [--out runs] [--table results/real_excerpts.csv]

The split is stratified k-fold by track (``data.splits.kfold_split``): fold I is the test
part, a seeded tenth of the other folds the validation part. Prints each fold's test track
accuracy and macro F1, then their mean +- standard deviation, and writes
``<out>/crossval/<model>/``: ``trials/fold-I/`` (model, config, history, record and the test
``metrics.json``), ``results.json`` and ``confusion_matrix.png`` (the sum over the folds).
Rerunning resumes: finished folds are kept. ``--table`` adds (or updates) the model's row in
a CSV table of cross-validated results.
"""

from __future__ import annotations

import csv
import io
import logging
import shlex
import sys
from pathlib import Path

import numpy as np

from data.cli import fail, parser, quiet_tensorflow
from tuning import cli
from tuning.train import check_model, check_recipe, recipe_flags, run_name

PROG = "python -m tuning.crossval"
TABLE_COLUMNS = ["model", "recipe", "folds", "track_accuracy_mean", "track_accuracy_std", "macro_f1_mean",
                 "macro_f1_std", "parameters", "seconds_per_fold", "data", "window_seconds", "command"]


def crossvalidate(model_name: str, data_config, training, out: Path, *, reporting, say=print) -> dict:
    """Trains and tests ``model_name`` on every fold of ``data_config`` (a ``kfold`` split); returns the results.

    Folds whose test metrics are already in ``out`` are not trained again. ``say`` gets a line per fold.
    """
    import keras

    import zoo
    from tuning.config import RunConfig
    from tuning.evaluation import evaluate_run, plot_confusion_matrix
    from tuning.runstore import RunStore, read_json, write_json
    from tuning.training import build_model, prepare_data, run_config, train_run

    store = RunStore(out)
    folds = []
    for fold in range(data_config.folds):
        trial = f"fold-{fold}"
        metrics_path = store.trial_dir(trial) / "test" / "metrics.json"
        if metrics_path.is_file():
            metrics, record = read_json(metrics_path), store.read_record(trial)
            say(f"fold {fold}: finished earlier")
        else:
            data = prepare_data(data_config.replace(fold=fold))
            keras.backend.clear_session()
            model = build_model(model_name, data, training)
            run = run_config(trial, model_name, data, training)
            record = train_run(model, data, run, store, reporting=reporting)
            if record["status"] != "completed":
                raise RuntimeError(f"fold {fold} failed: {record['error']}")
            store.save_model(trial, model)
            metrics = evaluate_run(model, RunConfig.from_dict(store.read_config(trial)), metrics_path.parent)
        folds.append({"fold": fold, "track_accuracy": metrics["track_accuracy"], "macro_f1": metrics["macro_f1"],
                      "window_accuracy": metrics["window_accuracy"], "test_clips": metrics["test_clips"],
                      "recall": {g: v["recall"] for g, v in metrics["per_genre"].items()},
                      "confusion_matrix": metrics["confusion_matrix"], "seconds": record["seconds"],
                      "epochs_run": record["epochs_run"]})
        say(f"fold {fold}: test track accuracy {metrics['track_accuracy']:.3f}, macro F1 "
                      f"{metrics['macro_f1']:.3f} ({metrics['test_clips']} clips, {record['seconds']:.0f} s)")
    genres = list(folds[0]["recall"])
    accuracy = np.array([f["track_accuracy"] for f in folds])
    macro_f1 = np.array([f["macro_f1"] for f in folds])
    matrix = np.sum([f["confusion_matrix"] for f in folds], axis=0)
    config = store.read_config("fold-0")
    results = {
        "model": model_name, "folds": folds, "genres": genres,
        "track_accuracy": {"mean": float(accuracy.mean()), "std": float(accuracy.std())},
        "macro_f1": {"mean": float(macro_f1.mean()), "std": float(macro_f1.std())},
        "recall_per_genre": {g: float(np.mean([f["recall"][g] for f in folds])) for g in genres},
        "confusion_matrix": matrix.tolist(),
        "parameters": zoo.build_model(zoo.ModelConfig.from_dict(config["model_config"])).count_params(),
        "seconds_per_fold": float(np.mean([f["seconds"] for f in folds])),
        "data": {k: v for k, v in config["data"].items() if k != "fold"}, "training": config["training"],
    }
    results["confusion_matrix_png"] = str(plot_confusion_matrix(
        matrix, genres, out / "confusion_matrix.png",
        f"{model_name}: {len(folds)} folds, test track accuracy {accuracy.mean():.3f} +- {accuracy.std():.3f}"))
    write_json(out / "results.json", results)
    return results


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
                                    cli.reporting_flags()])
    result.set_defaults(split="kfold")
    result.add_argument("model", metavar="MODEL", help="a zoo name (python -m zoo.list) or any name of the grammar")
    result.add_argument("--out", default="runs", help="output folder (default: runs)")
    result.add_argument("--table", help="CSV table of cross-validated results to add this model's row to")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)
    from data.catalogue import DataError
    from tuning.runstore import RunStoreError

    try:
        if args.split != "kfold":
            raise cli.UsageError(f"--split must be kfold for cross-validation, got {args.split}")
        model_name = check_model(args.model)
        training = cli.train_config(args, check_recipe(args.recipe))
        data_config = cli.data_config(args)
        out = Path(args.out) / "crossval" / run_name(model_name, args.recipe)
        reporting = cli.reporting(args, "crossval")
        results = crossvalidate(model_name, data_config, training, out, reporting=reporting)
    except (cli.UsageError, DataError, RunStoreError, OSError) as error:
        return fail(PROG, error)
    except RuntimeError as error:
        return fail(PROG, error, 1)
    accuracy, macro_f1 = results["track_accuracy"], results["macro_f1"]
    print(f"\n{model_name} ({args.recipe} recipe), {len(results['folds'])} folds: test track accuracy "
          f"{accuracy['mean']:.3f} +- {accuracy['std']:.3f}, macro F1 {macro_f1['mean']:.3f} +- {macro_f1['std']:.3f}")
    print("recall per genre: " + ", ".join(f"{g} {v:.2f}" for g, v in results["recall_per_genre"].items()))
    print(f"wrote {out / 'results.json'}, {results['confusion_matrix_png']}")
    if args.table:
        given = argv if argv is not None else sys.argv[1:]
        command = "python -m tuning.crossval " + " ".join(shlex.quote(a) for a in given)
        update_table(Path(args.table), results, args.recipe, command)
        print(f"updated {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
