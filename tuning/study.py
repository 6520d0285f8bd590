"""The whole study in one command: seven sections in order, then the final evaluation.

Usage::

    python -m tuning.study [--sections mlp cnn ...] [--quick] [--data-dir DIR] [--split random|lists|kfold]
        [--split-dir DIR] [--split-seed 42] [--seed 42] [--window-seconds 3] [--epochs 20] [--out runs/study]
        [--workers N [--gpus-per-worker 1]]

Sections run in the study's order, ``mlp -> cnn -> activation -> optimizer -> training ->
regularization -> input``, each over its grid, each starting from the best choices of the
sections before it (as the study did):

* ``activation`` varies the best CNN of ``cnn`` (the study's own base when ``cnn`` did not run);
* ``optimizer`` trains the best model of ``activation``;
* ``training`` uses that model and the best optimizer and schedule;
* ``regularization`` adds its variants to that model, with the best optimizer and batch size;
* ``input`` compares the best regularized model on spectrogram and waveform input.

The carried-forward choices are recorded in ``<out>/study.json``. Then the two best *distinct*
configurations of the study (by track-level validation accuracy; model and training settings
differ) are evaluated on the test split, as the study's final evaluation, and the better of them
on validation is exported. ``--quick`` runs every trial for 2 epochs on a small synthetic set
(when no data is given): a smoke run of a few minutes. Rerunning resumes: finished sections and
trials are skipped. ``--workers N`` runs each section's trials in N worker processes of
KerasTuner's chief/worker mode (the sections still run one after another, as each starts from
the choices of the ones before it).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from data.catalogue import DataError
from data.cli import fail, parser, quiet_tensorflow
from tuning import cli
from tuning.config import OBJECTIVE, RECIPES, RunConfig, TrainConfig
from tuning.runstore import RunStore, RunStoreError, rank, read_json, write_json
from tuning.spaces import SPACES

PROG = "python -m tuning.study"
SECTIONS = tuple(SPACES)  # the study's order
QUICK = {"epochs": 2, "window_seconds": 1.5, "synthetic": {"clips_per_genre": 8, "seconds": 3.0, "seed": 0}}

# Where each section takes its base model from: the first of these sections that finished.
BASE_FROM = {
    "activation": ("cnn",),
    "optimizer": ("activation", "cnn"),
    "training": ("activation", "cnn"),
    "regularization": ("activation", "cnn"),
    "input": ("regularization", "activation", "cnn"),
}
# Which training fields each section carries from which earlier section.
CARRY_FROM = {
    "optimizer": ("optimizer", "learning_rate", "schedule", "gamma"),
    "training": ("batch_size",),
}
CARRIED_INTO = {"training": ("optimizer",), "regularization": ("optimizer", "training"),
                "input": ("optimizer", "training")}
# The training fields that make two configurations different, with the model (and so its
# regularization): the study's "model, optimizer, schedule, batch size, epochs". Early stopping,
# patience and the seed are not choices of a configuration.
CHOICES = ("optimizer", "learning_rate", "schedule", "gamma", "step_size", "batch_size", "epochs",
           "warmup_epochs", "weight_decay", "label_smoothing", "mixup")


def carried_choices(section: str, finished: dict[str, dict]) -> tuple[str | None, dict]:
    """The base model and training fields ``section`` starts from, given the finished sections.

    Returns:
        ``(base, carried)``: base is None where the section keeps its default base.
    """
    sources = [finished[name]["best"] for name in BASE_FROM.get(section, ()) if name in finished]
    base = sources[0]["model"] if sources else None
    carried = {}
    for source in CARRIED_INTO.get(section, ()):
        if source in finished:
            carried.update({field: finished[source]["best"]["training"][field] for field in CARRY_FROM[source]})
    return base, carried


def configuration(config: dict) -> tuple:
    """What a run resolved to: its canonical model name and training choices (for distinctness)."""
    from zoo.config import ModelConfig

    training = TrainConfig.from_dict(config["training"])
    return ModelConfig.from_dict(config["model_config"]).name, tuple(getattr(training, field) for field in CHOICES)


def run_study(out: Path, data_config, training: TrainConfig, sections: list[str], *, seed: int, quick: bool,
              reporting, exports: Path | None, search_section: Callable[[str], None] | None = None) -> dict:
    """Runs (or resumes) the study into ``out``; returns the study record written to ``study.json``.

    Each section's search runs in this process, or, with ``search_section``, through that
    function (``--workers``: a chief and workers of this command for the section, see
    :func:`section_search`).
    """
    from tuning.search import check_same_settings
    from tuning.training import prepare_data

    state_path = out / "study.json"
    state = read_json(state_path) if state_path.is_file() else {"sections": {}}
    data = prepare_data(data_config)
    # A rerun resumes only the same study.
    check_same_settings(out / "settings.json", {"data": data.config.to_dict(), "training": training.to_dict(),
                                                "seed": seed, "quick": quick})
    state.update(data={**data.config.to_dict(), **data.dataset}, training=training.to_dict(), quick=quick)
    write_json(state_path, state)  # the workers of a section read what earlier sections chose
    start = time.perf_counter()
    for section in SECTIONS:
        if section not in sections:
            continue
        if state["sections"].get(section, {}).get("status") == "done":
            print(f"[{section}] finished earlier: best {state['sections'][section]['best']['trial']}")
            continue
        base, carried = carried_choices(section, state["sections"])
        space = SPACES[section]
        if search_section is None:
            total = len(space.grid(base or space.default_base or ""))
            done = [0]

            def progress(record: dict, best: dict, section=section, total=total, done=done) -> None:
                done[0] += 1
                score = f"{record[OBJECTIVE]:.3f}" if record.get("status") == "completed" else "failed"
                print(f"[{section}] trial {done[0]} of {total}: {record['trial']} {score} | "
                      f"elapsed {time.perf_counter() - start:.0f} s | best so far {best['trial']} "
                      f"{best.get(OBJECTIVE, float('nan')):.3f}", flush=True)

            section_search(section, state, out, data, training, seed=seed, quick=quick, reporting=reporting,
                           on_trial_end=progress)
        else:
            search_section(section)
        store = RunStore(out / section)
        records, best = store.ranked_records(), store.read_best()
        if not records or records[0].get("status") != "completed" or best is None:
            raise RuntimeError(f"no trial of section {section} finished; see {out / section}/trials")
        config = best[1]
        # A winner that resolves to an earlier section's winner only kept what it carried forward.
        same_as = next((name for name, earlier in state["sections"].items() if name != section
                        and earlier.get("configuration") == list(map(_listed, configuration(config)))), None)
        state["sections"][section] = {
            "status": "done", "base": base or space.default_base, "carried": carried,
            "configuration": list(map(_listed, configuration(config))),
            "best": {"trial": config["trial"], "model": config["model"], "training": config["training"],
                     OBJECTIVE: config["metrics"][OBJECTIVE], "same_as": same_as}}
        if same_as:
            print(f"[{section}] the winner {config['trial']} is the configuration carried forward from {same_as}")
        write_json(state_path, state)
    state["final"] = final_evaluation(out, exports)
    write_json(state_path, state)
    return state


def section_search(section: str, state: dict, out: Path, data, training: TrainConfig, *, seed: int, quick: bool,
                   reporting, on_trial_end: Callable[[dict, dict], None] | None = None) -> list[dict]:
    """Searches ``section``'s grid from the choices of the sections ``state`` holds; returns its records.

    This is the whole study in one process, and the chief's or a worker's part of a section
    under ``--workers`` (every process derives the same base and carried choices from
    ``study.json``).
    """
    from tuning.search import search_space

    base, carried = carried_choices(section, state["sections"])
    return search_space(SPACES[section], data, training, out / section, seed=seed, base=base, carried=carried,
                        max_epochs=training.epochs if quick else None, reporting=reporting, on_trial_end=on_trial_end)


def _listed(value):
    return list(value) if isinstance(value, tuple) else value


def final_evaluation(out: Path, exports: Path | None) -> list[dict]:
    """Evaluates the two best distinct section winners on the test split; exports the better one on validation.

    Sections whose winner resolved to the same model and training choices as a better one are
    skipped (a later section often keeps what it carried forward), so the two configurations
    compared always differ.
    """
    import zoo
    from tuning.evaluation import evaluate_run
    from zoo.export import export_saved_model, next_version_dir

    winners = {}
    for section in SECTIONS:
        best = RunStore(out / section).read_best()
        if best is not None:
            winners[section] = best
    ranked = rank([{**config["metrics"], "section": section} for section, (_, config) in winners.items()])
    keys = {section: configuration(config) for section, (_, config) in winners.items()}
    chosen, seen = [], set()
    for metrics in ranked:
        section = metrics["section"]
        if keys[section] in seen:
            continue
        seen.add(keys[section])
        alike = [m["section"] for m in ranked if keys[m["section"]] == keys[section]]
        chosen.append((section, *winners[section], alike))
        if len(chosen) == 2:
            break
    results = []
    for place, (section, path, config, alike) in enumerate(chosen):
        run = RunConfig.from_dict(config)
        model = zoo.load_model(path)
        name = f"{section}-{run.trial}"
        metrics = evaluate_run(model, run, out / "final" / name)
        if place == 0 and exports is not None:
            metrics["export"] = str(export_saved_model(model, list(metrics["per_genre"]),
                                                       next_version_dir(exports, run.trial)))
            write_json(out / "final" / name / "metrics.json", metrics)
        also = [s for s in alike if s != section]
        print(f"[final] {run.trial} (section {section}{', also the winner of ' + ', '.join(also) if also else ''}): "
              f"test track accuracy {metrics['track_accuracy']:.3f}, window accuracy {metrics['window_accuracy']:.3f}, "
              f"macro F1 {metrics['macro_f1']:.3f}" + (f", exported to {metrics['export']}" if "export" in metrics else ""))
        results.append({"space": section, "trial": run.trial, "model": run.model, "training": run.training.to_dict(),
                        "same_as": also, "val": config["metrics"][OBJECTIVE],
                        "test_track_accuracy": metrics["track_accuracy"],
                        "metrics": str(out / "final" / name / "metrics.json"), "export": metrics.get("export")})
    return results


def build_parser():
    """The command-line parser."""
    result = parser(PROG, __doc__, [cli.data_flags(), cli.training_flags(), cli.reporting_flags(),
                                    cli.scale_flags(roles=False)])
    result.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="sections to run")
    result.add_argument("--quick", action="store_true", help="2 epochs a trial on a small synthetic set: a smoke run")
    result.add_argument("--out", default="runs/study", help="output folder (default: runs/study)")
    result.add_argument("--fresh", action="store_true", help="discard an earlier study in --out and start over")
    result.add_argument("--exports", default="exports", help="SavedModel root (default: exports)")
    result.add_argument("--no-export", action="store_true", help="do not export the winner")
    return result


def launch_section(args, argv: list[str]) -> Callable[[str], None]:
    """``--workers N``: runs one section's search as a chief and N workers of this command."""
    from tuning.distributed import launch, strip_flags, trial_progress

    child_argv = strip_flags(argv, {**cli.LAUNCHER_FLAGS, "--sections": "+"})

    def search_section(section: str) -> None:
        line = trial_progress()

        def progress(folder: Path) -> str | None:
            text = line(folder)
            return text and f"[{section}] {text}"

        launch("tuning.study", [*child_argv, "--sections", section], Path(args.out) / section, args.workers,
               args.gpus_per_worker, progress=progress)

    return search_section


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    quiet_tensorflow(args.verbose)
    from data.sources import synthetic_data_dir

    try:
        if args.quick:
            args.epochs, args.window_seconds = QUICK["epochs"], QUICK["window_seconds"]
            if args.data_dir is None:
                args.data_dir = str(synthetic_data_dir(**QUICK["synthetic"]))
        data_config = cli.data_config(args)
        training = cli.train_config(args, RECIPES["study"])
        # One progress line per trial instead of Keras' per-epoch lines.
        reporting = dataclasses.replace(cli.reporting(args, "study"), verbose=0)
        if args.workers is not None:
            cli.check_workers(args)
        cli.configure_role(args)
        if args.role is not None:  # the chief or a worker of one section of a --workers study
            return run_section_role(args, data_config, training, reporting)
        if args.fresh and Path(args.out).exists():
            shutil.rmtree(args.out)
        run_study(Path(args.out), data_config, training, args.sections, seed=args.seed, quick=args.quick,
                  reporting=reporting, exports=None if args.no_export else Path(args.exports),
                  search_section=launch_section(args, given) if args.workers is not None else None)
    except (cli.UsageError, DataError, RunStoreError, OSError) as error:
        return fail(PROG, error)
    except RuntimeError as error:
        return fail(PROG, error, 1)
    except BaseException as error:  # a stopped launcher or an unreachable chief; others are raised again
        return cli.distributed_failure(PROG, error, args)
    return 0


def run_section_role(args, data_config, training: TrainConfig, reporting) -> int:
    """This process's part (``--role``) in one section of a ``--workers`` study."""
    from tuning.training import prepare_data

    if len(args.sections) != 1:
        raise cli.UsageError(f"--role runs one section, got --sections {' '.join(args.sections)}")
    state = read_json(Path(args.out) / "study.json")
    section_search(args.sections[0], state, Path(args.out), prepare_data(data_config), training, seed=args.seed,
                   quick=args.quick, reporting=reporting)
    return 0


if __name__ == "__main__":
    sys.exit(main())
