"""The whole study in one command: seven sections in order, then the final evaluation.

Usage::

    python -m tuning.study [--sections mlp cnn ...] [--quick] [--data-dir DIR] [--split random|lists]
        [--split-dir DIR] [--seed 42] [--window-seconds 3] [--epochs 20] [--out runs/study]

Sections run in the study's order, ``mlp -> cnn -> activation -> optimizer -> training ->
regularization -> input``, each over its grid, each starting from the best choices of the
sections before it (as the study did):

* ``activation`` varies the best CNN of ``cnn`` (the study's own base when ``cnn`` did not run);
* ``optimizer`` trains the best model of ``activation``;
* ``training`` uses that model and the best optimizer and schedule;
* ``regularization`` adds its variants to that model, with the best optimizer and batch size;
* ``input`` compares the best regularized model on spectrogram and waveform input.

The carried-forward choices are recorded in ``<out>/study.json``. Then the two best models of
the study (by track-level validation accuracy) are evaluated on the test split, as the study's
final evaluation, and the better of them on validation is exported. ``--quick`` runs every trial
for 2 epochs on a small synthetic set (when no data is given): a smoke run of a few minutes.
Rerunning resumes: finished sections and trials are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import keras

from data.catalogue import DataError
from data.sources import synthetic_data_dir
from tuning.experiment import OBJECTIVE, prepare_data, rank_key, write_json
from tuning.hypermodel import TrainingSettings
from tuning.search import UsageError, WANDB_MODES, default_wandb_mode, search_space
from tuning.spaces import SPACES

PROG = "python -m tuning.study"
SECTIONS = ("mlp", "cnn", "activation", "optimizer", "training", "regularization", "input")
QUICK = {"epochs": 2, "window_seconds": 1.5, "synthetic": {"clips_per_genre": 8, "seconds": 3.0, "seed": 0}}


# Where each section takes its base model from: the first of these sections that finished.
BASE_FROM = {
    "activation": ("cnn",),
    "optimizer": ("activation", "cnn"),
    "training": ("activation", "cnn"),
    "regularization": ("activation", "cnn"),
    "input": ("regularization", "activation", "cnn"),
}
# Which TrialSpec fields each section carries from which earlier section.
CARRY_FROM = {
    "optimizer": ("optimizer", "learning_rate", "schedule", "gamma"),
    "training": ("batch_size",),
}
CARRIED_INTO = {"training": ("optimizer",), "regularization": ("optimizer", "training"),
                "input": ("optimizer", "training")}


def carried_choices(section: str, finished: dict[str, dict]) -> tuple[str | None, dict]:
    """The base model and TrialSpec fields ``section`` starts from, given the finished sections.

    Returns:
        ``(base, carried)``: base is None where the section keeps its default base.
    """
    sources = [finished[name]["best"] for name in BASE_FROM.get(section, ()) if name in finished]
    base = sources[0]["model"] if sources else None
    carried = {}
    for source in CARRIED_INTO.get(section, ()):
        if source in finished:
            carried.update({field: finished[source]["best"]["spec"][field] for field in CARRY_FROM[source]})
    return base, carried


def run_study(args: argparse.Namespace) -> dict:
    """Runs (or resumes) the study; returns the study record written to ``study.json``."""
    out = Path(args.out)
    state_path = out / "study.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"sections": {}}
    data_dir = args.data_dir
    epochs, window = args.epochs, args.window_seconds
    if args.quick:
        epochs, window = QUICK["epochs"], QUICK["window_seconds"]
        if data_dir is None:
            data_dir = str(synthetic_data_dir(**QUICK["synthetic"]))
    data = prepare_data(data_dir, split=args.split, split_dir=args.split_dir, seed=args.seed, window_seconds=window)
    settings = TrainingSettings(epochs=epochs, batch_size=32, patience=args.patience,
                                wandb_mode=args.wandb or default_wandb_mode(), wandb_project=args.wandb_project,
                                verbose=0, max_epochs=epochs if args.quick else None)
    state.update(data=data.description, quick=args.quick)
    start = time.perf_counter()
    for section in SECTIONS:
        if section not in args.sections:
            continue
        if state["sections"].get(section, {}).get("status") == "done":
            print(f"[{section}] finished earlier: best {state['sections'][section]['best']['trial']}")
            continue
        base, carried = carried_choices(section, state["sections"])
        space = SPACES[section]
        total = len(space.grid(base or space.default_base or ""))
        section_dir = out / section

        def progress(record: dict, section=section, total=total, section_dir=section_dir) -> None:
            done = len(list((section_dir / "trials").glob("*/record.json")))
            best = min((json.loads(p.read_text()) for p in (section_dir / "trials").glob("*/record.json")), key=rank_key)
            score = f"{record[OBJECTIVE]:.3f}" if record.get("status") == "completed" else "failed"
            print(f"[{section}] trial {done} of {total}: {record['trial']} {score} | "
                  f"elapsed {time.perf_counter() - start:.0f} s | best so far {best['trial']} "
                  f"{best.get(OBJECTIVE, float('nan')):.3f}", flush=True)

        records = search_space(space, data, settings, section_dir, seed=args.seed, base=base, carried=carried,
                               on_trial_end=progress)
        completed = [r for r in records if r.get("status") == "completed"]
        if not completed:
            raise RuntimeError(f"no trial of section {section} finished; see {section_dir}/trials")
        config = json.loads((section_dir / "best" / "config.json").read_text())
        state["sections"][section] = {"status": "done", "base": base or space.default_base, "carried": carried,
                                      "best": {"trial": config["trial"], "model": config["model"],
                                               "spec": config["spec"], OBJECTIVE: config["metrics"][OBJECTIVE]}}
        write_json(state_path, state)
    state["final"] = final_evaluation(out, args)
    write_json(state_path, state)
    return state


def final_evaluation(out: Path, args: argparse.Namespace) -> list[dict]:
    """Evaluates the two best section winners on the test split; exports the better one on validation."""
    from zoo.evaluate import evaluate
    from zoo.export import export_saved_model, next_version_dir
    from zoo.metrics import plot_confusion_matrix

    winners = []
    for folder in sorted(out.glob("*/best")):
        config = json.loads((folder / "config.json").read_text())
        winners.append((rank_key(config["metrics"]), folder, config))
    winners.sort(key=lambda item: item[0])
    results = []
    for place, (_, folder, config) in enumerate(winners[:2]):
        model = keras.saving.load_model(folder / "model.keras")
        metrics = evaluate(model, config)
        name = f"{config['space']}-{config['trial']}"
        metrics["confusion_matrix_png"] = str(plot_confusion_matrix(
            metrics["confusion_matrix"], list(metrics["per_genre"]), out / "final" / f"{name}.png",
            f"{config['trial']}: test track accuracy {metrics['track_accuracy']:.3f}"))
        if place == 0 and not args.no_export:
            metrics["export"] = str(export_saved_model(model, list(metrics["per_genre"]),
                                                       next_version_dir(args.exports, config["trial"])))
        write_json(out / "final" / f"{name}.json", metrics)
        print(f"[final] {config['trial']} ({config['space']}): test track accuracy {metrics['track_accuracy']:.3f}, "
              f"window accuracy {metrics['window_accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}"
              + (f", exported to {metrics['export']}" if "export" in metrics else ""))
        results.append({"space": config["space"], "trial": config["trial"], "model": config["model"],
                        "val": config["metrics"][OBJECTIVE],
                        "test_track_accuracy": metrics["track_accuracy"], "metrics": str(out / "final" / f"{name}.json"),
                        "export": metrics.get("export")})
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, help="sections to run")
    parser.add_argument("--quick", action="store_true", help="2 epochs a trial on a small synthetic set: a smoke run")
    parser.add_argument("--data-dir", help="GTZAN folder (default: $GTZAN_DIR, else synthetic GTZAN)")
    parser.add_argument("--split", default="random", choices=["random", "lists"], help="split method")
    parser.add_argument("--split-dir", help="folder with train*.txt, valid*.txt, test*.txt")
    parser.add_argument("--seed", type=int, default=42, help="seed (default: 42)")
    parser.add_argument("--window-seconds", type=float, default=3.0, help="window length (default: 3)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (default: 20)")
    parser.add_argument("--patience", type=int, default=TrainingSettings.patience,
                        help=f"early-stopping patience (default: {TrainingSettings.patience})")
    parser.add_argument("--out", default="runs/study", help="output folder (default: runs/study)")
    parser.add_argument("--exports", default="exports", help="SavedModel root (default: exports)")
    parser.add_argument("--no-export", action="store_true", help="do not export the winner")
    parser.add_argument("--wandb", choices=WANDB_MODES, help="W&B mode (default: online if logged in, else offline)")
    parser.add_argument("--wandb-project", default="gtzan-keras", help="W&B project (default: gtzan-keras)")
    args = parser.parse_args(argv)
    problems = [f"--{flag} must be at least 1, got {getattr(args, flag)}" for flag in ("epochs", "patience")
                if getattr(args, flag) < 1]
    if args.window_seconds <= 0:
        problems.append(f"--window-seconds must be positive, got {args.window_seconds}")
    if args.split == "lists" and not args.split_dir:
        problems.append("--split lists needs --split-dir, the folder holding train*.txt, valid*.txt, test*.txt")
    if problems:
        print(f"{PROG}: error: {problems[0]}", file=sys.stderr)
        return 2
    try:
        run_study(args)
    except (UsageError, DataError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
