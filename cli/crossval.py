"""Cross-validate one zoo model: train it once per fold, test each on its held-out fold.

Usage::

    python -m tuning.crossval --search SPACE [--tuner random --max-trials 30] [--base NAME]
        [--objective split|kfold [--inner-folds 5] [--groups FILE | --group-by track|id-block]] [--folds 5] ...
    python -m tuning.crossval MODEL|TRIAL_DIR [--folds 5] [--recipe RECIPE] [--data-dir DIR]
        [--window-seconds 3] [--split-seed 42] [--seed 42] [--epochs N] [--batch-size N]
        [--out runs] [--fresh] [--table results/real_excerpts.csv] [--workers N [--gpus-per-worker 1]]

Prints each fold's test track accuracy and macro F1, then their mean +- standard deviation, and
writes ``<out>/crossval/<model>/`` (see ``tuning.crossvalidation``). Rerunning resumes: finished
folds are kept (``--fresh`` starts over). ``--table`` adds (or updates) the model's row in a CSV
table of cross-validated results. ``--workers N`` trains N folds at a time, in N worker
processes of KerasTuner's chief/worker mode (see ``tuning.distributed``).

``TRIAL_DIR`` is a trained folder (``runs/probe/best``, any trial of a search, a ``tuning.train``
folder): its model and its training settings are cross-validated as they are, so a search's
result is checked in one command (training flags such as ``--seed`` or ``--epochs`` still apply;
its window is kept unless ``--window-seconds`` is given).

``--search SPACE`` cross-validates a whole search instead (nested cross-validation): in each
outer fold a search of the space runs on the other folds, with its own objective, and what it
chose is tested on the outer fold, which it never saw. It prints each outer fold's choice, its
objective, its test accuracy and the optimism (objective minus test), and their means: what
"search, then take the best" is worth on new data (``runs/crossval/search-<space>/``).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.config import file_safe
from data.errors import UsageError
from training.config import DEFAULT_RECIPE, RECIPE_PATIENCE, RECIPES, default_recipe, run_name
from training.runstore import RunLock, RunStore, discard
from tuning import TUNERS
from tuning.distributed import launch, strip_flags
from tuning.spaces import SPACES
from tuning.tables import check_table, update_table

PROG = "python -m tuning.crossval"
# Flags that change where results go or how they are reported, not the results: left out of the
# table's command column (flag -> values it takes).
# The recipe column of a trained folder's row: its own training, which its trial's name spells out.
TRIAL_RECIPE = "trial's"
REPORTING_FLAGS = {"--fresh": 0, "--table": 1, "--out": 1, "--wandb": 1, "--wandb-project": 1, "--verbose": 0}


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.recipe_flags(), flags.data_flags(split=False),
                                    flags.training_flags(epochs_default="the recipe's", patience_default=RECIPE_PATIENCE),
                                    flags.objective_flags(), flags.reporting_flags(), flags.scale_flags(roles=False),
                                    flags.weights_flags()])
    result.add_argument("model", metavar="MODEL", nargs="?",
                        help="a zoo name (python -m zoo.list), any name of the grammar, or a trained folder "
                             "(runs/<space>/best) to take its model and training")
    nested = result.add_argument_group("nested cross-validation of a search (--search)")
    nested.add_argument("--search", choices=list(SPACES), metavar="SPACE",
                        help="cross-validate a search of this space instead of one model")
    nested.add_argument("--tuner", default="grid", choices=TUNERS, help="the searches' tuner (default: grid)")
    nested.add_argument("--max-trials", type=int, help="trials of each search at most")
    nested.add_argument("--base", help="zoo name the searched space starts from")
    nested.add_argument("--inner-folds", type=int, default=5, help="folds of --objective kfold (default: 5)")
    result.add_argument("--out", default="runs", help="output folder (default: runs)")
    result.add_argument("--fresh", action="store_true", help="discard earlier folds of this model and recipe")
    result.add_argument("--table", help="CSV table of cross-validated results to add this model's row to")
    return result


def library(args: argparse.Namespace):
    """``tuning.crossvalidation``, loaded (with TensorFlow, quietly) once every flag is checked."""
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from tuning import crossvalidation

    return crossvalidation


def nested(args: argparse.Namespace) -> int:
    """``--search``: flags -> configs -> ``nested_crossvalidate``."""
    for given, flag in ((args.model, "MODEL"), (args.table, "--table"), (args.workers, "--workers"),
                        (args.recipe, "--recipe")):
        if given is not None:
            raise UsageError(f"{flag} does not go with --search (each fold's search trains its own trials)")
    if args.max_trials is not None and args.max_trials < 1:
        raise UsageError(f"--max-trials must be at least 1, got {args.max_trials}")
    space = SPACES[args.search]
    data_config = flags.data_config(args)
    training = flags.train_config(args, RECIPES[space.recipe])
    base = flags.space_base(space, args.base, data_config)
    kfold = flags.fold_config(args, folds=args.inner_folds)
    out = Path(args.out) / "crossval" / (f"search-{space.name}" + ("-kfold" if kfold else ""))
    with RunLock(out, "tuning.crossval"):
        if args.fresh:
            discard(out)
        RunStore(out).bind_settings("nested", {"space": space.name, "tuner": args.tuner, "max_trials": args.max_trials,
                                               "base": args.base, "data": data_config.to_dict(),
                                               "training": training.to_dict(),
                                               "kfold": kfold.to_dict() if kfold else None})
        results = library(args).nested_crossvalidate(
            space, data_config, training, out, tuner=args.tuner, max_trials=args.max_trials, seed=args.seed, base=base,
            kfold=kfold, reporting=flags.reporting(args, "crossval", verbose=0), say=lambda line: print(line, flush=True))
    test, optimism = results["test_track_accuracy"], results["optimism"]
    print(f"\n{space.name} search ({args.tuner}, {'k-fold' if kfold else 'single-split'} objective), "
          f"{len(results['folds'])} outer folds: outer test track accuracy {test['mean']:.3f} +- {test['std']:.3f}, "
          f"objective {results['objective']['mean']:.3f}, optimism {optimism['mean']:+.3f} +- {optimism['std']:.3f}")
    print(f"wrote {out / 'results.json'}")
    return 0


def crossval(args: argparse.Namespace) -> int:
    """The command: flags -> configs -> ``crossvalidate`` (or the ``--workers`` launcher, or ``--search``)."""
    if args.search is not None:
        return nested(args)
    if args.model is None:
        raise UsageError("give a MODEL (a zoo name or a trained folder), or --search SPACE")
    flags.fold_config(args)  # the objective flags go with --search only
    if args.objective != "split":
        raise UsageError("--objective goes with --search")
    if args.table:
        check_table(Path(args.table))
    source = flags.trained_run(args.model)
    if source is None:
        data_config = flags.data_config(args)
        model_config = flags.model_config(args.model, data_config)
        training = flags.train_config(args, flags.recipe(args, model_config))
        name = run_name(args.model, args.recipe, default_recipe(model_config))
    else:  # a trained folder: its model and training, under its trial's name
        if args.recipe is not None:
            raise UsageError(f"--recipe does not go with a trained folder ({args.model}): its own training is used")
        given_window = any(a.partition("=")[0] == "--window-seconds" for a in args.argv)
        data_config = flags.data_config(args, **({} if given_window else {"window_seconds": source.data.window_seconds}))
        model_config = source.model_config.replace(window_seconds=data_config.window_seconds)
        training = flags.train_config(args, source.training)
        args.model, args.recipe = source.trial, TRIAL_RECIPE
        name = file_safe(source.trial)
    flags.configure_scale(args)
    crossvalidation = library(args)

    if args.role is None:
        crossvalidation.check_folds(data_config)
    out = Path(args.out) / "crossval" / name
    with contextlib.nullcontext() if args.role == "worker" else RunLock(out, "tuning.crossval"):
        if args.role is None:
            if args.fresh:
                discard(out)
            # A rerun resumes only the same cross-validation.
            data_settings = {k: v for k, v in data_config.to_dict().items() if k != "fold"}
            RunStore(out).bind_settings("crossval", {"model": args.model, "data": data_settings,
                                                     "training": training.to_dict()})
        if args.workers is not None:
            print(f"cross-validating {args.model} over {args.folds} folds in {args.workers} workers")
            launch("tuning.crossval", strip_flags(args.argv, flags.LAUNCHER_FLAGS), out, args.workers,
                   args.gpus_per_worker, progress=crossvalidation.fold_progress)
            results = crossvalidation.summarize_folds(args.model, args.folds, RunStore(out),
                                                      trained=set(range(args.folds)))
        else:
            results = crossvalidation.crossvalidate(args.model, model_config, data_config, training, out,
                                                    reporting=flags.reporting(args, "crossval"),
                                                    say=lambda line: print(line, flush=True))
    if results is None:  # the chief or a worker of a distributed run: the launcher sums up
        return 0
    accuracy, macro_f1 = results["track_accuracy"], results["macro_f1"]
    print(f"\n{args.model} ({args.recipe} recipe), {len(results['folds'])} folds: test track accuracy "
          f"{accuracy['mean']:.3f} +- {accuracy['std']:.3f}, macro F1 {macro_f1['mean']:.3f} +- {macro_f1['std']:.3f}")
    print("recall per genre: " + ", ".join(f"{g} {v:.2f}" if v is not None else f"{g} none"
                                            for g, v in results["recall_per_genre"].items()))
    print(f"wrote {out / 'results.json'}, {results['confusion_matrix_png']}")
    if args.table:
        argv = strip_flags(args.argv, REPORTING_FLAGS)
        # The model's own default recipe, said in full.
        named = any(a.partition("=")[0] == "--recipe" for a in argv)
        if not named and args.recipe not in (DEFAULT_RECIPE, TRIAL_RECIPE):
            argv = [*argv, "--recipe", args.recipe]
        command = "python -m tuning.crossval " + " ".join(shlex.quote(a) for a in argv)
        update_table(Path(args.table), results, args.recipe, command)
        print(f"updated {args.table}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, crossval, argv)


if __name__ == "__main__":
    sys.exit(main())
