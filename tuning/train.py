"""Train one zoo model with a named recipe.

Usage::

    python -m tuning.train MODEL [--recipe recommended|study] [--epochs N] [--batch-size N] [--seed 42]
        [--data-dir DIR] [--split random|lists|kfold] [--split-dir DIR] [--folds 5 --fold 0]
        [--window-seconds 3] [--out runs] [--wandb online|offline|disabled]

Writes ``<out>/train/trials/<model>/`` (``<model>-<recipe>`` for a recipe other than the
default): ``model.keras``, ``config.json``, ``history.json``, ``history.csv`` and ``record.json``,
the same files as a search trial, so ``python -m zoo.evaluate <that folder>`` evaluates it on the
test split and exports it. The training loop is the one every search trial runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from data.cli import fail, parser, quiet_tensorflow
from tuning import cli
from tuning.config import DEFAULT_RECIPE, RECIPES

PROG = "python -m tuning.train"


def recipe_flags():
    """``--recipe`` (shared with ``tuning.crossval``)."""
    import argparse

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--recipe", default=DEFAULT_RECIPE,
                        help=f"training recipe: {', '.join(RECIPES)} (default: {DEFAULT_RECIPE}); "
                             "study is the study's plain Adam 1e-3 with early stopping")
    return parent


def check_model(name: str) -> str:
    """Raises UsageError unless ``name`` is a zoo name."""
    import zoo

    try:
        zoo.resolve(name)
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    return name


def check_recipe(name: str):
    """The TrainConfig of recipe ``name``; raises UsageError for an unknown one."""
    if name not in RECIPES:
        raise cli.UsageError(f"unknown --recipe {name!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


def run_name(model: str, recipe: str) -> str:
    """The folder name of a trained model: the model name, with the recipe unless it is the default."""
    return model if recipe == DEFAULT_RECIPE else f"{model}-{recipe}"


def build_parser():
    """The command-line parser."""
    result = parser(PROG, __doc__, [recipe_flags(), cli.data_flags(), cli.training_flags(epochs_default="the recipe's"),
                                    cli.reporting_flags()])
    result.add_argument("model", metavar="MODEL", help="a zoo name (python -m zoo.list) or any name of the grammar")
    result.add_argument("--out", default="runs", help="output folder (default: runs)")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)
    from data.catalogue import DataError
    from tuning.runstore import RunStore, RunStoreError
    from tuning.training import build_model, prepare_data, run_config, train_run

    try:
        model_name = check_model(args.model)
        training = cli.train_config(args, check_recipe(args.recipe))
        data = prepare_data(cli.data_config(args))
        store = RunStore(Path(args.out) / "train")
        name = run_name(model_name, args.recipe)
        model = build_model(model_name, data, training)
        record = train_run(model, data, run_config(name, model_name, data, training), store,
                           reporting=cli.reporting(args, "train"), recipe=args.recipe)
        if record["status"] != "completed":
            return fail(PROG, f"training {name} failed: {record['error']}", 1)
        store.save_model(name, model)
    except (cli.UsageError, DataError, RunStoreError, OSError) as error:
        return fail(PROG, error)
    folder = store.trial_dir(name)
    print(f"\n{name}: validation track accuracy {record['val_track_accuracy']:.3f} at epoch {record['best_epoch']} "
          f"of {record['epochs_run']} ({record['seconds']:.0f} s)")
    print(f"wrote {folder}; evaluate it on the test split with: python -m zoo.evaluate {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
