"""Flags shared by the tuning commands, as argparse parents, turned into configs at the edge."""

from __future__ import annotations

import argparse
import sys

from data.config import SPLIT_METHODS, DataConfig
from tuning.config import PRECISIONS, TrainConfig
from tuning.tracking import WANDB_MODES, default_wandb_mode


class UsageError(ValueError):
    """A command-line value that cannot be used; the message names it and what is accepted."""


def data_flags(default_window: float = 3.0) -> argparse.ArgumentParser:
    """``--data-dir``, ``--split``, ``--split-dir``, ``--split-seed``, ``--folds``, ``--fold``, ``--window-seconds``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("data")
    group.add_argument("--data-dir", help="GTZAN folder (default: $GTZAN_DIR, else synthetic GTZAN)")
    group.add_argument("--split", default="random", choices=SPLIT_METHODS,
                       help="random stratified 80/10/10 (default), list files in --split-dir, or kfold")
    group.add_argument("--split-dir", help="folder with train*.txt, valid*.txt, test*.txt")
    group.add_argument("--split-seed", type=int, default=42, help="seed of the random and k-fold splits (default: 42)")
    group.add_argument("--folds", type=int, default=5, help="folds of --split kfold (default: 5)")
    group.add_argument("--fold", type=int, default=0, help="test fold of --split kfold, from 0 (default: 0)")
    group.add_argument("--window-seconds", type=float, default=default_window,
                       help=f"window length in seconds (default: {default_window:g})")
    return parent


def training_flags(*, epochs_default: str = "20") -> argparse.ArgumentParser:
    """``--epochs``, ``--batch-size``, ``--patience``, ``--seed`` (defaults from the recipe when None)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("training")
    group.add_argument("--epochs", type=int, help=f"epochs at most (default: {epochs_default})")
    group.add_argument("--batch-size", type=int, help="batch size (default: 32)")
    group.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default: {TrainConfig.patience})")
    group.add_argument("--seed", type=int, default=42,
                       help="seed of the initial weights, training windows and tuner (default: 42)")
    group.add_argument("--precision", choices=PRECISIONS,
                       help="float32 (default), or mixed_float16 / mixed_bfloat16 on GPUs")
    return parent


def reporting_flags() -> argparse.ArgumentParser:
    """``--wandb``, ``--wandb-project``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("logging")
    group.add_argument("--wandb", choices=WANDB_MODES, help="W&B mode (default: online if logged in, else offline)")
    group.add_argument("--wandb-project", default="gtzan-keras", help="W&B project (default: gtzan-keras)")
    return parent


def data_config(args: argparse.Namespace) -> DataConfig:
    """The DataConfig of the data flags.

    Raises:
        UsageError: naming the flag and what is accepted.
    """
    try:
        return DataConfig(data_dir=args.data_dir, split=args.split, split_dir=args.split_dir, split_seed=args.split_seed,
                          folds=args.folds, fold=args.fold, window_seconds=args.window_seconds)
    except ValueError as error:
        raise UsageError(str(error)) from None


def train_config(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """``base`` with the training flags that were given.

    Raises:
        UsageError: naming the flag and what is accepted.
    """
    changes = {"epochs": args.epochs, "batch_size": args.batch_size, "patience": args.patience, "seed": args.seed,
               "precision": args.precision}
    if args.epochs is not None and args.epochs >= 1:
        # A shorter run keeps the recipe's warm-up only while it leaves epochs after it.
        changes["warmup_epochs"] = min(base.warmup_epochs, args.epochs - 1)
    try:
        return base.replace(**{k: v for k, v in changes.items() if v is not None})
    except ValueError as error:
        raise UsageError(str(error)) from None


def reporting(args: argparse.Namespace, group: str):
    """The command's ``tuning.training.Reporting``: a progress bar on a terminal (a line per epoch
    otherwise) and W&B."""
    from tuning.training import Reporting

    return Reporting(verbose=1 if sys.stdout.isatty() else 2, wandb_mode=args.wandb or default_wandb_mode(),
                     wandb_project=args.wandb_project, wandb_group=group)
