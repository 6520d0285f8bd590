"""Flags shared by the tuning commands, as argparse parents, turned into configs at the edge."""

from __future__ import annotations

import argparse
import sys

from data.config import SPLIT_METHODS, DataConfig
from tuning.config import PRECISIONS, TrainConfig
from tuning.distributed import CHIEF_TIMEOUT_S, ROLES
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

    group.add_argument("--role", choices=ROLES, help=shown("this process's part in a search over several machines"))
    group.add_argument("--oracle", metavar="HOST:PORT", help=shown("the chief's address, with --role"))
    group.add_argument("--worker-id", help=shown("with --role worker: the worker's id (default: worker-<host>-<pid>)"))
    group.add_argument("--chief-timeout", type=int, default=CHIEF_TIMEOUT_S,
                       help=shown(f"seconds a worker waits for the chief to answer (default: {CHIEF_TIMEOUT_S})"))
    return parent


def check_workers(args: argparse.Namespace) -> None:
    """Raises UsageError for ``--workers`` values that cannot be used."""
    if args.workers < 1 or args.gpus_per_worker < 1:
        raise UsageError(f"--workers and --gpus-per-worker must be at least 1, got {args.workers}, {args.gpus_per_worker}")
    if args.role or args.oracle:
        raise UsageError("--workers starts its own chief and workers; it does not go with --role or --oracle")


# The flags a --workers launcher does not pass on to its chief and workers (flag -> values).
LAUNCHER_FLAGS = {"--workers": 1, "--gpus-per-worker": 1, "--fresh": 0}


def configure_role(args: argparse.Namespace) -> None:
    """Sets this process's part in a distributed run from ``--role`` and ``--oracle``, if given.

    Raises:
        UsageError: for a role without an address, an address without a role, or a chief
            address it cannot serve on.
    """
    from tuning import distributed

    if args.role is None:
        if args.oracle or args.worker_id:
            raise UsageError("--oracle and --worker-id go with --role chief|worker")
        return
    if not args.oracle:
        raise UsageError("--role needs --oracle HOST:PORT, the chief's address")
    try:
        distributed.configure_role(args.role, args.oracle, args.worker_id, args.chief_timeout)
    except ValueError as error:
        raise UsageError(str(error)) from None


def distributed_failure(prog: str, error: BaseException, args: argparse.Namespace) -> int:
    """Says what stopped a distributed run in one line and returns the exit code; re-raises any other error.

    A launcher that failed (``LaunchError``) or was interrupted (its children are stopped by
    then), and a worker whose chief is gone (gRPC's error).
    """
    from data.cli import fail
    from tuning.distributed import LaunchError, unreachable_chief

    if isinstance(error, LaunchError):
        return fail(prog, error, 1)
    if isinstance(error, KeyboardInterrupt) and args.workers is not None:
        return fail(prog, "interrupted; every worker was stopped; rerun the same command to resume", 130)
    message = unreachable_chief(error, args.oracle) if isinstance(error, Exception) else None
    if message is None:
        raise error
    return fail(prog, message, 1)


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
