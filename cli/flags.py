"""Flags shared by the commands, as argparse parents, and their conversion into configs at the edge.

Nothing here loads TensorFlow or Keras: ``--help`` of every command stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import zoo
from data import audiocache
from data.audiocache import CACHE_MODES, CacheConfig
from data.config import SPLIT_METHODS, DataConfig
from data.errors import UsageError
from data.folds import GROUPINGS, FoldConfig
from data.labels import FMA_SUBSETS
from training.config import (
    DEFAULT_RECIPE,
    PRECISIONS,
    PRETRAINED_RECIPE,
    RECIPES,
    Reporting,
    RunConfig,
    TrainConfig,
    default_recipe,
)
from training.runstore import RunStoreError, read_json
from training.tracking import WANDB_MODES, default_wandb_mode
from tuning import distributed
from tuning.spaces import SPACES, Space
from zoo import checkpoints
from zoo.config import ModelConfig

# How a search scores its trials: on the split's validation part, or by k-fold over the non-test clips.
OBJECTIVES = ("split", "kfold")
# The flags a --workers launcher does not pass on to its chief and workers (flag -> values).
LAUNCHER_FLAGS = {"--workers": 1, "--gpus-per-worker": 1, "--fresh": 0}


def data_flags(default_window: float = 3.0, *, split: bool = True) -> argparse.ArgumentParser:
    """``--data-dir``, ``--labels``, ``--subset``, ``--split``, ``--split-dir``, ``--split-seed``, ``--folds``,
    ``--fold``, ``--window-seconds``, ``--cache``, ``--memory-budget-gb``, ``--cache-dir``.

    ``split=False`` (cross-validation, which splits by k-fold and tests every fold itself) leaves
    ``--split`` and ``--fold`` out."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("data")
    group.add_argument("--data-dir", help="GTZAN folder (default: $GTZAN_DIR, else synthetic GTZAN)")
    group.add_argument("--labels", metavar="FILE",
                       help="labels file: a CSV of path,label[,split] relative to --data-dir, or FMA's tracks.csv "
                            "(default: one folder per class)")
    group.add_argument("--subset", choices=FMA_SUBSETS, help="FMA's subset, with its tracks.csv as --labels "
                                                              "(default: every track it lists)")
    if split:
        group.add_argument("--split", default="random", choices=SPLIT_METHODS,
                           help="random stratified 80/10/10 (default), list files in --split-dir, kfold, or dataset "
                                "(the split column of --labels)")
        group.add_argument("--split-dir", help="folder with train*.txt, valid*.txt, test*.txt")
    else:
        parent.set_defaults(split="kfold", split_dir=None, fold=0)
    group.add_argument("--split-seed", type=int, default=42, help="seed of the random and k-fold splits (default: 42)")
    group.add_argument("--folds", type=int, default=5, help="folds" + (" of --split kfold" if split else "") +
                       " (default: 5)")
    if split:
        group.add_argument("--fold", type=int, default=0, help="test fold of --split kfold, from 0 (default: 0)")
    group.add_argument("--window-seconds", type=float, default=default_window,
                       help=f"window length in seconds (default: {default_window:g})")
    group.add_argument("--cache", default="auto", choices=CACHE_MODES,
                       help="keep decoded audio in memory, or on disk and streamed; auto (default): memory when "
                            "it fits in --memory-budget-gb")
    group.add_argument("--memory-budget-gb", type=float,
                       help="the most decoded audio may take in memory (default: half the machine's memory)")
    group.add_argument("--cache-dir", help="folder of the disk cache (default: $GTZAN_CACHE/audio)")
    return parent


def training_flags(*, epochs_default: str = "20", patience_default: str = f"{TrainConfig.patience}"
                   ) -> argparse.ArgumentParser:
    """``--epochs``, ``--batch-size``, ``--patience``, ``--seed``, ``--precision`` (None: the recipe's),
    ``--no-feature-cache``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("training")
    group.add_argument("--epochs", type=int, help=f"epochs at most (default: {epochs_default})")
    group.add_argument("--batch-size", type=int, help="batch size (default: 32)")
    group.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default: {patience_default})")
    group.add_argument("--seed", type=int, default=42,
                       help="seed of the initial weights, training windows and tuner (default: 42)")
    group.add_argument("--precision", choices=PRECISIONS,
                       help="float32 (default), or mixed_float16 / mixed_bfloat16 on GPUs")
    group.add_argument("--no-feature-cache", action="store_true",
                       help="pretrained models with a frozen tagger (train=head): run the tagger at every step "
                            "instead of training on its cached features")
    return parent


def flag_names(*parents: argparse.ArgumentParser) -> list[str]:
    """The long flags ``--help`` shows in ``parents`` (for a command that passes them on to another), in their order."""
    return [option for parent in parents for action in parent._actions for option in action.option_strings
            if option.startswith("--") and option != "--help" and action.help != argparse.SUPPRESS]


def objective_flags() -> argparse.ArgumentParser:
    """``--objective``, ``--groups``, ``--group-by``: how a search scores its trials."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("objective")
    group.add_argument("--objective", default="split", choices=OBJECTIVES,
                       help="split: each trial scored on the split's validation part (default); kfold: the mean over "
                            "--folds grouped folds of the non-test clips, then the best refitted on all of them")
    group.add_argument("--groups", metavar="FILE",
                       help="with --objective kfold: CSV path,group; a group never straddles training and validation")
    group.add_argument("--group-by", choices=GROUPINGS,
                       help="with --objective kfold: track (default: clips by id) or id-block (contiguous clip ids "
                            "per genre, which in GTZAN approximates artists)")
    return parent


def fold_config(args: argparse.Namespace, folds: int | None = None) -> FoldConfig | None:
    """The k-fold objective of the flags (None for ``--objective split``), over ``folds`` folds
    (default ``--folds``).

    Raises:
        UsageError: for grouping flags without ``--objective kfold``, a group file that is not a
            file, or too few folds.
    """
    if args.objective != "kfold":
        if args.groups or args.group_by:
            raise UsageError("--groups and --group-by go with --objective kfold")
        return None
    if args.groups and args.group_by:
        raise UsageError("--groups and --group-by do not go together: the group file says the groups")
    if args.groups and not Path(args.groups).is_file():
        raise UsageError(f"--groups {args.groups} is not a file; give a CSV of path,group")
    try:
        return FoldConfig(folds=folds or args.folds, grouping=args.group_by or "track",
                          groups_file=str(Path(args.groups).resolve()) if args.groups else None, seed=args.split_seed)
    except ValueError as error:
        raise UsageError(str(error)) from None


def recipe_flags() -> argparse.ArgumentParser:
    """``--recipe``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--recipe",
                        help=f"training recipe: {', '.join(RECIPES)} (default: {DEFAULT_RECIPE}, and "
                             f"{PRETRAINED_RECIPE} for the pretrained models that train more than their head); study "
                             "is the study's plain Adam 1e-3 with early stopping")
    return parent


def weights_flags() -> argparse.ArgumentParser:
    """``--weights``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--weights", action="append", metavar="FILE",
                        help="pretrained weights you downloaded yourself (a backbone's released checkpoint, or the "
                             "musicnn 0.1.0 wheel): checked and kept in the cache, so nothing is downloaded; repeatable")
    return parent


def use_weights(args: argparse.Namespace) -> None:
    """Puts every ``--weights FILE`` into the cache (``zoo.checkpoints.use_weights``).

    Raises:
        data.errors.InputError: for a file that is missing or no known checkpoint, in one line.
    """
    for file in args.weights or ():
        checkpoints.use_weights(file)


def reporting_flags() -> argparse.ArgumentParser:
    """``--wandb``, ``--wandb-project``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("logging")
    group.add_argument("--wandb", choices=WANDB_MODES, help="W&B mode (default: online if logged in, else offline)")
    group.add_argument("--wandb-project", default="gtzan-keras", help="W&B project (default: gtzan-keras)")
    return parent


def scale_flags(*, roles: bool = True) -> argparse.ArgumentParser:
    """``--workers``, ``--gpus-per-worker`` and the flags of one process of a distributed run.

    ``--role``, ``--oracle``, ``--worker-id`` and ``--chief-timeout`` set this process's part
    (``tuning.distributed.configure_role``); with ``roles=False`` they are kept out of
    ``--help``, as the command takes them only from its own ``--workers`` launcher.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("scale")
    group.add_argument("--workers", type=int, help="run the trials in N worker processes (KerasTuner chief/worker)")
    group.add_argument("--gpus-per-worker", type=int, default=1,
                       help="GPUs of each worker, where there are GPUs (default: 1)")

    def shown(text: str) -> str:
        return text if roles else argparse.SUPPRESS

    group.add_argument("--role", choices=distributed.ROLES, help=shown("this process's part in a search over several machines"))
    group.add_argument("--oracle", metavar="HOST:PORT", help=shown("the chief's address, with --role"))
    group.add_argument("--worker-id", help=shown("with --role worker: the worker's id (default: worker-<host>-<pid>)"))
    group.add_argument("--chief-timeout", type=int, default=distributed.CHIEF_TIMEOUT_S,
                       help=shown(f"seconds a worker waits for the chief to answer (default: {distributed.CHIEF_TIMEOUT_S})"))
    return parent


def configure_scale(args: argparse.Namespace) -> None:
    """Checks the scale flags and sets this process's part in a distributed run (``--role``), if any.

    Raises:
        UsageError: for values that cannot be used together.
    """
    if args.workers is not None:
        distributed.check_workers(args.workers, args.gpus_per_worker, args.role, args.oracle)
    distributed.configure_role(args.role, args.oracle, args.worker_id, args.chief_timeout)


def check_folder(path: str | os.PathLike | None, what: str) -> None:
    """Raises UsageError(``"<what> not found: <path>"``, or ``is not a folder``) unless ``path`` is
    None or a folder."""
    if path is None:
        return
    folder = Path(path).expanduser()
    if not folder.exists():
        raise UsageError(f"{what} not found: {folder}")
    if not folder.is_dir():
        raise UsageError(f"{what} is not a folder: {folder}")


def check_labels(labels: str | None, data_dir: str | None, flag: str = "--labels") -> None:
    """Raises UsageError unless ``labels`` is None or a file that goes with a data folder."""
    if labels is None:
        return
    if not data_dir:
        raise UsageError(f"{flag} names files relative to a data folder; give --data-dir too")
    path = Path(labels).expanduser()
    if not path.is_file():
        raise UsageError(f"{flag} {'is not a file' if path.exists() else 'not found'}: {path}")


def data_config(args: argparse.Namespace, **changes) -> DataConfig:
    """The DataConfig of the data flags, with ``changes`` (e.g. a quick run's window); the data and
    split folders (``--data-dir``, else ``$GTZAN_DIR``; ``--split-dir``) must exist. Sets how this
    process keeps decoded audio (``--cache``: ``data.audiocache``).

    Raises:
        UsageError: naming the flag and what is accepted.
    """
    values = dict(data_dir=args.data_dir, split=args.split, split_dir=args.split_dir, split_seed=args.split_seed,
                  folds=args.folds, fold=args.fold, window_seconds=args.window_seconds, labels=args.labels,
                  subset=args.subset)
    try:
        config = DataConfig(**{**values, **changes})
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_folder(config.data_dir or os.environ.get("GTZAN_DIR") or None, "data directory")
    check_labels(config.labels, config.data_dir or os.environ.get("GTZAN_DIR"))
    try:
        audiocache.configure(CacheConfig(args.cache, args.memory_budget_gb, args.cache_dir))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if config.split == "lists":
        check_folder(config.split_dir, "split directory")
    return config


def recipe(args: argparse.Namespace, model_config: ModelConfig) -> TrainConfig:
    """The TrainConfig of ``--recipe``, before the training flags; without ``--recipe``, the model's
    default (``args.recipe`` is set to its name)."""
    if args.recipe is None:
        args.recipe = default_recipe(model_config)
    if args.recipe not in RECIPES:
        raise UsageError(f"unknown --recipe {args.recipe!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[args.recipe]


def train_config(args: argparse.Namespace, base: TrainConfig, **changes) -> TrainConfig:
    """``base`` with the training flags that were given, then ``changes``.

    Raises:
        UsageError: naming the flag and what is accepted.
    """
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "patience": args.patience, "seed": args.seed,
             "precision": args.precision, "cached_features": False if args.no_feature_cache else None, **changes}
    try:
        return base.changed(**given)
    except ValueError as error:
        raise UsageError(str(error)) from None


def model_config(name: str, data: DataConfig, flag: str | None = None) -> ModelConfig:
    """The ``zoo.ModelConfig`` a model name stands for, with the data's window: resolved once, here.

    Raises:
        UsageError: echoing the name (and ``flag``, the flag that gave it) and the grammar.
    """
    try:
        return zoo.configure(name, window_seconds=data.window_seconds)
    except ValueError as error:
        raise UsageError(f"{flag} {name}: {error}" if flag else str(error)) from None


def trained_run(target: str) -> RunConfig | None:
    """The configuration a trained folder records (``runs/<space>/best``, a trial or ``tuning.train``
    folder: its ``config.json``), or None when ``target`` is not a folder (a model name).

    Raises:
        UsageError: for a folder without a readable run configuration.
    """
    folder = Path(target)
    if not folder.is_dir():
        return None
    try:
        return RunConfig.from_dict(read_json(folder / "config.json"))
    except (OSError, RunStoreError, ValueError) as error:
        raise UsageError(f"{folder} is not a trained run's folder (its config.json: {error}); give a model name or a "
                         "folder such as runs/<space>/best") from None


def space_base(space: Space, name: str | None, data: DataConfig) -> ModelConfig | None:
    """The ``--base`` model of a search of ``space`` as a config; None without ``--base``.

    Raises:
        UsageError: if the space takes no base, or the model is not one it can vary.
    """
    if name is None:
        return None
    if space.default_base is None:
        with_base = ", ".join(n for n, s in SPACES.items() if s.default_base)
        raise UsageError(f"--base does not apply to --space {space.name}; it applies to {with_base}")
    config = model_config(name, data, flag="--base")
    try:
        space.grid(config)
    except ValueError as error:
        raise UsageError(f"--base {name}: {error}") from None
    return config


def reporting(args: argparse.Namespace, group: str, verbose: int | None = None) -> Reporting:
    """The command's ``training.config.Reporting``: a progress bar on a terminal (a line per epoch
    otherwise) and W&B."""
    return Reporting(verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
                     wandb_mode=args.wandb or default_wandb_mode(), wandb_project=args.wandb_project, wandb_group=group)
