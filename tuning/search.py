"""Search one experiment family of the study with KerasTuner.

Usage::

    python -m tuning.search --space cnn [--tuner grid|random|hyperband|bayesian] [--max-trials N]
        [--epochs 20] [--batch-size 32] [--patience 4] [--window-seconds 3] [--data-dir DIR]
        [--split random|lists|kfold] [--split-dir DIR] [--split-seed 42] [--folds 5 --fold 0]
        [--seed 42] [--out runs] [--fresh] [--base NAME] [--wandb online|offline|disabled]

Without ``--data-dir`` (or ``$GTZAN_DIR``) it runs on the embedded synthetic GTZAN.
Results go to ``<out>/<space>/`` (see ``tuning.runstore``): ``trials/<trial>/`` (history,
record, config), ``best/model.keras`` with ``best/config.json``, and ``summary.csv``. Running
the same command again resumes the search; ``--fresh`` starts over.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import zoo
from data.catalogue import DataError
from data.cli import fail, parser, quiet_tensorflow
from tuning import cli
from tuning.config import DEFAULT_WIDE_TRIALS, OBJECTIVE, RECIPES, TUNERS, TrainConfig
from tuning.distributed import LaunchError, launch, strip_flags
from tuning.runstore import RunStore, RunStoreError, read_json, write_json
from tuning.spaces import SPACES, Space

if TYPE_CHECKING:
    from tuning.training import PreparedData, Reporting

PROG = "python -m tuning.search"


def search_space(space: Space, data: PreparedData, training: TrainConfig, out_dir: Path, *, tuner: str = "grid",
                 max_trials: int | None = None, seed: int = 42, base: str | None = None, fresh: bool = False,
                 carried: dict | None = None, max_epochs: int | None = None, reporting: Reporting | None = None,
                 on_trial_end: Callable[[dict, dict], None] | None = None, strategy=None) -> list[dict]:
    """Searches ``space`` on prepared ``data`` into ``out_dir``; returns the records, best first.

    In a distributed search (KerasTuner's environment variables set, see ``tuning.distributed``)
    the chief serves the oracle and finishes the folder; a worker trains trials and returns [].

    Args:
        space: A ``tuning.spaces.Space``.
        data: Prepared data (``tuning.training.prepare_data``).
        training: The training configuration each trial starts from.
        out_dir: Folder of this space's results; an earlier search there is resumed.
        tuner: ``grid`` (the study's grid) or ``random``, ``hyperband``, ``bayesian`` (wider range).
        max_trials: Trials at most.
        seed: Seed of the tuner.
        base: Model the space starts from (default: its carried-forward model).
        fresh: Discard earlier results in ``out_dir``.
        carried: Training fields chosen by earlier sections.
        max_epochs: If set, no trial trains longer.
        reporting: Verbosity and W&B of the trials (default: a line per epoch, no W&B).
        on_trial_end: Called with each finished trial's record and the best record so far.
        strategy: A ``tf.distribute`` strategy for data-parallel trials (the batch size is global).
    """
    from tuning.hypermodel import SpaceHyperModel
    from tuning.training import Reporting
    from tuning.tuner import make_tuner

    reporting = reporting or Reporting()
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    check_tuner_state(out_dir)
    hypermodel = SpaceHyperModel(space, data, training, base=base, wide=tuner != "grid", carried=carried,
                                 max_epochs=max_epochs)
    store = RunStore(out_dir)
    search = make_tuner(tuner, hypermodel, store, max_trials=max_trials, seed=seed, overwrite=fresh,
                        reporting=reporting, on_trial_end=on_trial_end, strategy=strategy)
    search.search(verbose=min(reporting.verbose, 1))
    if search.worker:  # the chief finishes the folder
        return []
    return search.finish()


def check_tuner_state(out_dir: Path) -> None:
    """Raises RunStoreError naming the first of KerasTuner's state files that cannot be read.

    A full disk or a kill while KerasTuner writes can leave one empty or cut short; KerasTuner
    itself would fail on it with a bare JSON error at every later resume.
    """
    for path in sorted((out_dir / "keras_tuner").rglob("*.json")):
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise RunStoreError(f"{path} is unreadable ({' '.join(str(error).split())}): the search's KerasTuner "
                                "state is damaged; rerun with --fresh to start over, or choose another --out") from None


def check_same_settings(path: Path, settings: dict) -> None:
    """Records ``settings`` in ``path``, or checks that an earlier run there used the same.

    An earlier run that left no trial (it stopped at a bad flag or folder) binds nothing.

    Raises:
        UsageError: naming each setting that differs, if the earlier run's differ.
    """
    if path.is_file() and next(path.parent.glob("**/trials/*"), None) is not None:
        recorded = _flat(read_json(path))
        changes = [f"{key} was {recorded.get(key)!r}, now {value!r}" for key, value in _flat(settings).items()
                   if recorded.get(key) != value]
        if changes:
            raise cli.UsageError(f"{path.parent} holds a run with other settings ({'; '.join(changes[:3])}"
                                 f"{'; ...' if len(changes) > 3 else ''}); rerun with --fresh to start over there, "
                                 "or choose another --out")
    write_json(path, settings)


def _flat(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


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


def build_parser():
    """The command-line parser."""
    result = parser(PROG, __doc__, [cli.data_flags(), cli.training_flags(), cli.reporting_flags(), cli.scale_flags()])
    result.add_argument("--space", required=True, choices=list(SPACES), help="experiment family to search")
    result.add_argument("--tuner", default="grid", choices=TUNERS,
                        help="grid: the study's grid (default); others sample the wider range")
    result.add_argument("--max-trials", type=int, help=f"trials at most (grid: all; others: {DEFAULT_WIDE_TRIALS})")
    result.add_argument("--out", default="runs", help="output folder (default: runs)")
    result.add_argument("--fresh", action="store_true", help="discard earlier results of this space and start over")
    result.add_argument("--base", help="zoo name the space starts from instead of the study's carried-forward model")
    result.add_argument("--strategy", choices=["mirrored"], help="train each trial data-parallel on this machine's GPUs")
    return result


def check_base(space: Space, base: str | None) -> None:
    """Raises UsageError if ``--base`` does not apply to ``space`` or does not fit it."""
    if base is None:
        return
    if space.default_base is None:
        with_base = ", ".join(name for name, s in SPACES.items() if s.default_base)
        raise cli.UsageError(f"--base does not apply to --space {space.name}; it applies to {with_base}")
    try:
        zoo.resolve(base)
        space.grid(base)
    except ValueError as error:
        raise cli.UsageError(f"--base {base}: {error}") from None


def mirrored_strategy():
    """``tf.distribute.MirroredStrategy`` over this machine's GPUs (one CPU replica without), said aloud."""
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy()
    gpus = len(tf.config.list_physical_devices("GPU"))
    where = f"{gpus} GPU(s)" if gpus else "no GPU: 1 replica on the CPU"
    print(f"mirrored strategy: {strategy.num_replicas_in_sync} replica(s), {where}; --batch-size is the global batch")
    return strategy


def launch_workers(args, argv: list[str]) -> int:
    """``--workers N``: the chief and N workers of this very command, on this machine."""
    try:
        cli.check_workers(args)
    except cli.UsageError as error:
        return fail(PROG, error)
    out_dir = Path(args.out) / args.space
    if args.fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    try:
        launch("tuning.search", strip_flags(argv, cli.LAUNCHER_FLAGS), out_dir, args.workers, args.gpus_per_worker)
    except (LaunchError, KeyboardInterrupt) as error:
        return cli.distributed_failure(PROG, error, args)
    records = RunStore(out_dir).ranked_records()
    print()
    print(format_summary(records))
    print(f"\nbest: {records[0]['trial'] if records else 'none'} -> {out_dir / 'best'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.workers is not None:
        return launch_workers(args, sys.argv[1:] if argv is None else argv)
    quiet_tensorflow(args.verbose)
    try:
        cli.configure_role(args)
        strategy = mirrored_strategy() if args.strategy == "mirrored" else None
        if args.max_trials is not None and args.max_trials < 1:
            raise cli.UsageError(f"--max-trials must be at least 1, got {args.max_trials}")
        if args.max_trials is not None and args.tuner == "hyperband":
            raise cli.UsageError("--max-trials does not apply to --tuner hyperband, which sets its trials from --epochs")
        space = SPACES[args.space]
        data_config = cli.data_config(args)
        training = cli.train_config(args, RECIPES["study"])
        check_base(space, args.base)
        from tuning.training import prepare_data

        data = prepare_data(data_config)
        if data_config.data_dir is None and data.dataset["synthetic"]:
            logging.getLogger(__name__).warning("no --data-dir or GTZAN_DIR: using synthetic GTZAN at %s",
                                                data.dataset["data_dir"])
        out_dir = Path(args.out) / args.space
        if args.fresh and out_dir.exists():
            shutil.rmtree(out_dir)
        # A rerun resumes only the same search; --max-trials may grow.
        check_same_settings(out_dir / "search.json", {"space": args.space, "tuner": args.tuner, "base": args.base,
                                                      "data": data.config.to_dict(), "training": training.to_dict()})
        records = search_space(space, data, training, out_dir, tuner=args.tuner, max_trials=args.max_trials,
                               seed=args.seed, base=args.base, reporting=cli.reporting(args, space.name),
                               strategy=strategy)
    except (cli.UsageError, DataError, RunStoreError, OSError, ValueError) as error:
        return fail(PROG, error)
    except Exception as error:  # a worker whose chief is gone gets gRPC's error; others are raised again
        return cli.distributed_failure(PROG, error, args)
    if args.role == "worker":
        print(f"{args.worker_id or 'worker'}: no trial left")
        return 0
    if not records:
        return fail(PROG, "no trial finished", 1)
    print()
    print(format_summary(records))
    print(f"\nbest: {records[0]['trial']} -> {out_dir / 'best'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
