"""Train one zoo model with a named recipe.

Usage::

    python -m tuning.train MODEL [--recipe RECIPE] [--epochs N] [--batch-size N] [--seed 42]
        [--data-dir DIR] [--split random|lists|kfold] [--split-dir DIR] [--folds 5 --fold 0]
        [--window-seconds 3] [--out runs] [--wandb online|offline|disabled]

The recipes (``training.config.RECIPES``): ``adamw-cosine`` (the default), ``study``, and for the
pretrained ``musicnn-*`` / ``vgg-*`` ``head-first`` (their default) and ``finetune``. Writes
``<out>/train/trials/<model>/`` (``<model>-<recipe>`` for a recipe other than the model's
default): ``config.json``, ``model.keras``, ``history.json``, ``history.csv`` and, last,
``record.json``, the same files as a search trial, so ``python -m zoo.evaluate <that folder>`` evaluates it on the
test split and exports it. The training loop is the one every search trial runs
(``training.loop.train_run``). Running the same command again keeps a finished training (and
redoes an unfinished one); other settings into the same folder are refused unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.errors import RunFailed
from training.config import RECIPE_PATIENCE, default_recipe, run_name
from training.runstore import RunLock, RunStore, discard

PROG = "python -m tuning.train"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.recipe_flags(), flags.data_flags(),
                                    flags.training_flags(epochs_default="the recipe's",
                                                        patience_default=RECIPE_PATIENCE), flags.reporting_flags(),
                                    flags.weights_flags()])
    result.add_argument("model", metavar="MODEL", help="a zoo name (python -m zoo.list) or any name of the grammar")
    result.add_argument("--out", default="runs", help="output folder (default: runs)")
    result.add_argument("--fresh", action="store_true", help="discard an earlier training of this model and recipe")
    return result


def train(args: argparse.Namespace) -> int:
    """The command: flags -> configs -> one training run into the model's own folder.

    The folder has one writer (``training.runstore.RunLock``). A folder that holds a finished
    training of the same settings is kept (said, exit 0); one left unfinished by the same
    settings is trained again (the seed makes it the same run); other settings are refused unless
    ``--fresh``.
    """
    data_config = flags.data_config(args)
    model_config = flags.model_config(args.model, data_config)
    training = flags.train_config(args, flags.recipe(args, model_config))
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from training import loop  # the library loads TensorFlow: only once every flag is checked

    data = loop.prepare_data(data_config)
    store = RunStore(Path(args.out) / "train")
    name = run_name(args.model, args.recipe, default_recipe(model_config))
    folder = store.trial_dir(name)
    run = loop.run_config(name, args.model, model_config, data, training)
    with RunLock(folder, "tuning.train"):
        if args.fresh:
            discard(folder)
        record = store.finished_run(name, run)
        if record is not None:
            print(f"{name} is trained already with these settings ({folder}); --fresh trains it again")
        else:
            model = loop.compile_model(model_config, data, training)
            record = loop.train_run(model, data, run, store, reporting=flags.reporting(args, "train"), keep_model=True,
                                    recipe=args.recipe)
            if record["status"] != "completed":
                raise RunFailed(f"training {name} failed: {record['error']}")
    print(f"\n{name}: validation track accuracy {record['val_track_accuracy']:.3f} at epoch {record['best_epoch']} "
          f"of {record['epochs_run']} ({record['seconds']:.0f} s)")
    print(f"wrote {folder}; evaluate it on the test split with: python -m zoo.evaluate {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, train, argv)


if __name__ == "__main__":
    sys.exit(main())
