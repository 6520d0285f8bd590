"""Search one experiment family of the study with KerasTuner.

Usage::

    python -m tuning.search --space cnn [--tuner grid|random|hyperband|bayesian] [--max-trials N]
        [--epochs 20] [--batch-size 32] [--patience 4] [--window-seconds 3] [--data-dir DIR]
        [--split random|lists|kfold] [--split-dir DIR] [--split-seed 42] [--folds 5 --fold 0]
        [--seed 42] [--out runs] [--fresh] [--base NAME] [--wandb online|offline|disabled]
        [--objective split|kfold [--groups FILE | --group-by track|id-block]]

Without ``--data-dir`` (or ``$GTZAN_DIR``) it runs on the embedded synthetic GTZAN.
Results go to ``<out>/<space>/`` (see ``training.runstore``): ``trials/<trial>/`` (history,
record, config), ``best/model.keras`` with ``best/config.json``, and ``summary.csv``. Running
the same command again resumes the search; ``--fresh`` starts over. The search itself is
``tuning.searching.run_search``.

``--objective kfold`` scores each trial by the mean validation track accuracy over ``--folds``
grouped folds of the non-test clips (by clip, ``--group-by id-block``, or a ``--groups`` file;
the test split never takes part), keeps every fold's figure in the trial's folder, and retrains
the best configuration on every non-test clip into ``best/`` (the refit ``zoo.evaluate best``
scores and exports).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.errors import RunFailed, UsageError
from training.config import OBJECTIVE, RECIPES
from training.runstore import RunLock, RunStore, discard
from tuning import DEFAULT_WIDE_TRIALS, TUNERS
from tuning.distributed import launch, strip_flags
from tuning.spaces import SPACES, Space
from zoo.config import configured_backend

PROG = "python -m tuning.search"


def format_summary(records: list[dict]) -> str:
    """The summary table: trial, validation accuracy (track), loss, epochs, seconds; best first."""
    width = max([len(r["trial"]) for r in records] + [5])
    lines = [f"{'trial':<{width}}  {'val acc (track)':>15}  {'val acc (window)':>16}  {'val loss':>8}  "
             f"{'epochs':>6}  {'seconds':>7}"]
    for r in records:
        if r.get("status") == "completed":
            seconds = f"{r['seconds']:.1f}" if "seconds" in r else "-"
            lines.append(f"{r['trial']:<{width}}  {r[OBJECTIVE]:>15.3f}  {r['val_accuracy']:>16.3f}  "
                         f"{r['val_loss']:>8.3f}  {r['epochs_run']:>6}  {seconds:>7}")
        else:
            lines.append(f"{r['trial']:<{width}}  {'failed: ' + r.get('error', ''):>15}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.data_flags(), flags.training_flags(), flags.objective_flags(),
                                    flags.reporting_flags(), flags.scale_flags(), flags.weights_flags()])
    result.add_argument("--space", required=True, choices=list(SPACES), help="experiment family to search")
    result.add_argument("--tuner", default="grid", choices=TUNERS,
                        help="grid: the study's grid (default); others sample the wider range")
    result.add_argument("--max-trials", type=int, help=f"trials at most (grid: all; others: {DEFAULT_WIDE_TRIALS})")
    result.add_argument("--out", default="runs", help="output folder (default: runs)")
    result.add_argument("--fresh", action="store_true", help="discard earlier results of this space and start over")
    result.add_argument("--base", help="zoo name the space starts from instead of the study's carried-forward model")
    result.add_argument("--strategy", choices=["mirrored"], help="train each trial data-parallel on this machine's GPUs")
    return result


def show(records: list[dict], out_dir: Path) -> None:
    print()
    print(format_summary(records))
    print(f"\nbest: {records[0]['trial'] if records else 'none'} -> {out_dir / 'best'}")


def search(args: argparse.Namespace) -> int:
    """The command: flags -> configs -> ``run_search`` (or the ``--workers`` launcher)."""
    flags.configure_scale(args)
    if args.max_trials is not None and args.max_trials < 1:
        raise UsageError(f"--max-trials must be at least 1, got {args.max_trials}")
    if args.max_trials is not None and args.tuner == "hyperband":
        raise UsageError("--max-trials does not apply to --tuner hyperband, which sets its trials from --epochs")
    if args.strategy and configured_backend() != "tensorflow":
        raise UsageError(f"--strategy {args.strategy} is TensorFlow's tf.distribute: it needs the tensorflow backend, "
                         f"not {configured_backend()} (KERAS_BACKEND)")
    space = SPACES[args.space]
    data_config = flags.data_config(args)
    training = flags.train_config(args, RECIPES[space.recipe])
    base = flags.space_base(space, args.base, data_config)
    kfold = flags.fold_config(args)
    out_dir = Path(args.out) / args.space
    # One writer per run folder: a second search there stops with the holder's pid. Workers
    # write under their chief's lock (a launcher's children under the launcher's).
    with contextlib.nullcontext() if args.role == "worker" else RunLock(out_dir, "tuning.search"):
        if args.workers is not None:
            if args.fresh:
                discard(out_dir)
            launch("tuning.search", strip_flags(args.argv, flags.LAUNCHER_FLAGS), out_dir, args.workers,
                   args.gpus_per_worker)
            show(RunStore(out_dir).ranked_records(), out_dir)
            return 0
        return search_here(args, space, data_config, training, base, out_dir, kfold)


def search_here(args: argparse.Namespace, space: Space, data_config, training, base, out_dir: Path, kfold) -> int:
    """The search in this process (alone, or as the chief or a worker of a distributed one)."""
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from tuning import searching  # the library loads TensorFlow: only once every flag is checked

    strategy = None
    if args.strategy == "mirrored":
        strategy, described = searching.mirrored_strategy()
        print(f"mirrored strategy: {described}; --batch-size is the global batch")
    records = searching.run_search(space, data_config, training, out_dir, tuner=args.tuner, max_trials=args.max_trials,
                                   seed=args.seed, base=base, fresh=args.fresh and args.role is None,
                                   reporting=flags.reporting(args, space.name), strategy=strategy, kfold=kfold)
    if args.role == "worker":
        print(f"{args.worker_id or 'worker'}: no trial left")
        return 0
    if not records:
        raise RunFailed("no trial finished")
    show(records, out_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, search, argv)


if __name__ == "__main__":
    sys.exit(main())
