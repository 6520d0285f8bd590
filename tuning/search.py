"""Search one experiment family of the study with KerasTuner.

Usage::

    python -m tuning.search --space cnn [--tuner grid|random|hyperband|bayesian] [--max-trials N]
        [--epochs 20] [--batch-size 32] [--window-seconds 3] [--data-dir DIR]
        [--split random|lists] [--split-dir DIR] [--seed 42] [--out runs] [--fresh]
        [--base NAME] [--wandb online|offline|disabled]

Without ``--data-dir`` (or ``$GTZAN_DIR``) it runs on the embedded synthetic GTZAN.
Results go to ``<out>/<space>/``: ``trials/<trial>/`` (history, record, config),
``best/model.keras`` with ``best/config.json``, and ``summary.csv``. Running the same command
again resumes the search; ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import sys
from pathlib import Path

import keras_tuner

from data.catalogue import DataError
from tuning.experiment import OBJECTIVE, prepare_data, read_records, write_json
from tuning.hypermodel import SpaceHyperModel, TrainingSettings
from tuning.spaces import SPACES

PROG = "python -m tuning.search"
TUNERS = ("grid", "random", "hyperband", "bayesian")
WANDB_MODES = ("online", "offline", "disabled")
DEFAULT_WIDE_TRIALS = 20


class UsageError(ValueError):
    """A command-line value that cannot be used; the message names it and what is accepted."""


def default_wandb_mode() -> str:
    """``online`` when a W&B API key is configured, else ``offline``."""
    if os.environ.get("WANDB_MODE") in WANDB_MODES:
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    return "online" if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore") else "offline"


def make_tuner(kind: str, hypermodel: SpaceHyperModel, *, max_trials: int | None, epochs: int, seed: int,
               directory: Path, overwrite: bool) -> keras_tuner.Tuner:
    """Creates the KerasTuner tuner ``kind`` over ``hypermodel`` (resumable unless ``overwrite``)."""
    common = dict(objective=keras_tuner.Objective(OBJECTIVE, direction="max"), seed=seed, directory=str(directory),
                  project_name="keras_tuner", overwrite=overwrite, max_consecutive_failed_trials=1000)
    if kind == "grid":
        return keras_tuner.GridSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials or DEFAULT_WIDE_TRIALS, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials or DEFAULT_WIDE_TRIALS, **common)
    if kind == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=epochs, factor=3, **common)
    raise UsageError(f"unknown tuner {kind!r}; expected one of {', '.join(TUNERS)}")


def validate(args: argparse.Namespace) -> None:
    """Checks values argparse cannot; raises :class:`UsageError` naming the flag."""
    if args.max_trials is not None and args.max_trials < 1:
        raise UsageError(f"--max-trials must be at least 1, got {args.max_trials}")
    for flag in ("epochs", "batch_size", "patience"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.window_seconds <= 0:
        raise UsageError(f"--window-seconds must be positive, got {args.window_seconds}")
    if args.split == "lists" and not args.split_dir:
        raise UsageError("--split lists needs --split-dir, the folder holding train*.txt, valid*.txt, test*.txt")
    if args.base is not None:
        if SPACES[args.space].default_base is None:
            with_base = ", ".join(name for name, s in SPACES.items() if s.default_base)
            raise UsageError(f"--base does not apply to --space {args.space}; it applies to {with_base}")
        try:
            SPACES[args.space].grid(args.base)
        except ValueError as error:
            raise UsageError(f"--base {args.base}: {error}") from None


def run_search(args: argparse.Namespace) -> list[dict]:
    """Runs (or resumes) the search the command line asks for; returns the records, best first."""
    validate(args)
    data = prepare_data(args.data_dir, split=args.split, split_dir=args.split_dir, seed=args.seed,
                        window_seconds=args.window_seconds)
    if data.description["synthetic"]:
        logging.getLogger(__name__).warning("no --data-dir or GTZAN_DIR: using synthetic GTZAN at %s",
                                            data.description["data_dir"])
    settings = TrainingSettings(epochs=args.epochs, batch_size=args.batch_size, patience=args.patience,
                                wandb_mode=args.wandb or default_wandb_mode(), wandb_project=args.wandb_project,
                                verbose=1 if sys.stdout.isatty() else 2)
    out_dir = Path(args.out) / args.space
    if args.fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    write_json(out_dir / "search.json", vars(args))
    return search_space(SPACES[args.space], data, settings, out_dir, tuner=args.tuner, max_trials=args.max_trials,
                        seed=args.seed, base=args.base, fresh=args.fresh)


def search_space(space, data, settings: TrainingSettings, out_dir: Path, *, tuner: str = "grid",
                 max_trials: int | None = None, seed: int = 42, base: str | None = None, fresh: bool = False,
                 carried: dict | None = None, on_trial_end=None) -> list[dict]:
    """Searches ``space`` on prepared ``data`` into ``out_dir``; returns the records, best first.

    Args:
        space: A ``tuning.spaces.Space``.
        data: Prepared data (``tuning.experiment.prepare_data``).
        settings: Training settings.
        out_dir: Folder of this space's results; an earlier search there is resumed.
        tuner: ``grid`` (the study's grid) or ``random``, ``hyperband``, ``bayesian`` (wider range).
        max_trials: Trials at most.
        seed: Seed of the tuner.
        base: Model the space starts from (default: its carried-forward model).
        fresh: Discard KerasTuner's earlier state.
        carried: TrialSpec fields chosen by earlier sections.
        on_trial_end: Called with each finished trial's record.
    """
    hypermodel = SpaceHyperModel(space, data, settings, out_dir, base=base, wide=tuner != "grid", carried=carried,
                                 on_trial_end=on_trial_end, checkpoints=tuner == "hyperband")
    keras_tuner_search = make_tuner(tuner, hypermodel, max_trials=max_trials, epochs=settings.epochs, seed=seed,
                                    directory=out_dir, overwrite=fresh)
    keras_tuner_search.search(verbose=settings.verbose)
    records = read_records(out_dir)
    write_summary(out_dir, records)
    return records


def write_summary(out_dir: Path, records: list[dict]) -> None:
    """Writes ``summary.csv`` (best first)."""
    columns = ["trial", OBJECTIVE, "val_accuracy", "val_loss", "epochs_run", "best_epoch", "seconds", "status", "model"]
    with open(out_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


def format_summary(records: list[dict]) -> str:
    """The summary table: trial, validation accuracy (track), loss, epochs, seconds; best first."""
    width = max([len(r["trial"]) for r in records] + [5])
    lines = [f"{'trial':<{width}}  {'val acc (track)':>15}  {'val acc (window)':>16}  {'val loss':>8}  "
             f"{'epochs':>6}  {'seconds':>7}"]
    for r in records:
        if r.get("status") == "completed":
            lines.append(f"{r['trial']:<{width}}  {r[OBJECTIVE]:>15.3f}  {r['val_accuracy']:>16.3f}  "
                         f"{r['val_loss']:>8.3f}  {r['epochs_run']:>6}  {r['seconds']:>7.1f}")
        else:
            lines.append(f"{r['trial']:<{width}}  {'failed: ' + r.get('error', ''):>15}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (shared with ``tuning.study``'s data flags)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", required=True, choices=list(SPACES), help="experiment family to search")
    parser.add_argument("--tuner", default="grid", choices=TUNERS,
                        help="grid: the study's grid (default); others sample the wider range")
    parser.add_argument("--max-trials", type=int, help=f"trials at most (grid: all; others: {DEFAULT_WIDE_TRIALS})")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial, early stopping aside (default: 20)")
    parser.add_argument("--patience", type=int, default=TrainingSettings.patience,
                        help=f"early-stopping patience in epochs (default: {TrainingSettings.patience})")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--window-seconds", type=float, default=3.0, help="window length in seconds (default: 3)")
    parser.add_argument("--data-dir", help="GTZAN folder (default: $GTZAN_DIR, else synthetic GTZAN)")
    parser.add_argument("--split", default="random", choices=["random", "lists"],
                        help="random stratified 80/10/10, or list files in --split-dir")
    parser.add_argument("--split-dir", help="folder with train*.txt, valid*.txt, test*.txt")
    parser.add_argument("--seed", type=int, default=42,
                        help="seed of the split, windows, initial weights and tuner (default: 42)")
    parser.add_argument("--out", default="runs", help="output folder (default: runs)")
    parser.add_argument("--fresh", action="store_true", help="discard earlier results of this space and start over")
    parser.add_argument("--base", help="zoo name the space starts from instead of the study's carried-forward model")
    parser.add_argument("--wandb", choices=WANDB_MODES, help="W&B mode (default: online if logged in, else offline)")
    parser.add_argument("--wandb-project", default="gtzan-keras", help="W&B project (default: gtzan-keras)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        records = run_search(args)
    except (UsageError, DataError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    if not records:
        print(f"{PROG}: error: no trial finished", file=sys.stderr)
        return 1
    print()
    print(format_summary(records))
    print(f"\nbest: {records[0]['trial']} -> {Path(args.out) / args.space / 'best'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
