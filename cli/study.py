"""The whole study in one command: seven sections in order, then the final evaluation.

Usage::

    python -m tuning.study [--sections mlp cnn ...] [--quick] [--data-dir DIR] [--split random|lists|kfold]
        [--split-dir DIR] [--split-seed 42] [--seed 42] [--window-seconds 3] [--epochs 20] [--out runs/study]
        [--workers N [--gpus-per-worker 1]]

Sections run in the study's order (``mlp -> cnn -> activation -> optimizer -> training ->
regularization -> input``), each over its grid, each starting from the best choices of the
sections before it, as the study did (``study.sections``). Then the two best *distinct*
configurations are evaluated on the test split and the better of them on validation is exported
(``study.final``). ``--quick`` runs every trial for 2 epochs on a small synthetic set (when no
data is given): a smoke run of a few minutes. Rerunning resumes: finished sections and trials
are skipped. ``--workers N`` runs each section's trials in N worker processes of KerasTuner's
chief/worker mode (the sections still run one after another, as each starts from the choices of
the ones before it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.errors import UsageError
from data.sources import synthetic_data_dir
from study.config import QUICK, SECTIONS
from training.config import RECIPES
from training.runstore import RunLock, discard
from tuning.distributed import launch, strip_flags, trial_progress

PROG = "python -m tuning.study"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.data_flags(), flags.training_flags(), flags.reporting_flags(),
                                    flags.scale_flags(roles=False), flags.weights_flags()])
    result.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="sections to run")
    result.add_argument("--quick", action="store_true", help="2 epochs a trial on a small synthetic set: a smoke run")
    result.add_argument("--out", default="runs/study", help="output folder (default: runs/study)")
    result.add_argument("--fresh", action="store_true", help="discard an earlier study in --out and start over")
    result.add_argument("--exports", default="exports", help="SavedModel root (default: exports)")
    result.add_argument("--no-export", action="store_true", help="do not export the winner")
    return result


def launch_section(args: argparse.Namespace) -> Callable[[str], None]:
    """``--workers N``: runs one section's search as a chief and N workers of this command."""
    child_argv = strip_flags(args.argv, {**flags.LAUNCHER_FLAGS, "--sections": "+"})

    def search_section(section: str) -> None:
        line = trial_progress()

        def progress(folder: Path) -> str | None:
            text = line(folder)
            return text and f"[{section}] {text}"

        launch("tuning.study", [*child_argv, "--sections", section], Path(args.out) / section, args.workers,
               args.gpus_per_worker, progress=progress)

    return search_section


def study(args: argparse.Namespace) -> int:
    """The command: flags -> configs -> ``run_study`` (or one process's part of a section)."""
    data_config = flags.data_config(args, **({"window_seconds": QUICK["window_seconds"]} if args.quick else {}))
    training = flags.train_config(args, RECIPES["study"], **({"epochs": QUICK["epochs"]} if args.quick else {}))
    # One progress line per trial instead of Keras' per-epoch lines.
    reporting = flags.reporting(args, "study", verbose=0)
    flags.configure_scale(args)
    if args.role is not None and len(args.sections) != 1:
        raise UsageError(f"--role runs one section, got --sections {' '.join(args.sections)}")
    if args.quick and args.data_dir is None:
        data_config = data_config.replace(data_dir=str(synthetic_data_dir(**QUICK["synthetic"])))
    out = Path(args.out)
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from study import sections  # the library loads TensorFlow: only once every flag is checked

    if args.role is not None:  # the chief or a worker of one section of a --workers study (under its lock)
        sections.run_section_role(args.sections[0], out, data_config, training, seed=args.seed, quick=args.quick,
                                  reporting=reporting)
        return 0
    with RunLock(out, "tuning.study"):
        if args.fresh:
            discard(out)
        sections.run_study(out, data_config, training, args.sections, seed=args.seed, quick=args.quick,
                           reporting=reporting, exports=None if args.no_export else Path(args.exports),
                           search_section=launch_section(args) if args.workers is not None else None,
                           say=lambda line: print(line, flush=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, study, argv)


if __name__ == "__main__":
    sys.exit(main())
