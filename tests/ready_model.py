"""The model shipped with the toolkit (``serving/ready/``): the recommended configuration trained on every
real excerpt, exported as a head on its pretrained backbones.

    python -m tests.ready_model             # trains it and rewrites serving/ready/1/ (about a minute)
    python -m tests.ready_model --check     # exits 1 if the shipped model is not the recommended configuration

It trains ``training.config.RECOMMENDED_MODEL`` with its recipe on all 250 excerpts of
``../shared/real_excerpts`` (2-s windows, seed 42, no clip held out), exports its head
(``serving.export.export_head``: the head's weights alone, checked against the trained model), and
writes its description with the figures of the same configuration from ``results/*.csv``: having
seen every clip, the shipped model has no test figure of its own, so its cross-validated figures
are the ones it reports.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

import zoo
from data.config import DataConfig
from serving.config import ABOUT_FILE, READY_MODELS
from serving.export import export_model
from training import loop
from training.config import RECOMMENDED_MODEL, recipe
from training.runstore import RunStore, read_json
from zoo.families.pretrained import BACKBONE_NAMES, FAMILY_OF, LICENCES, taggers

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_excerpts"
WINDOW_SECONDS = 2.0
SEED = 42


def figures(model: str, recipe: str) -> dict:
    """The configuration's cross-validated figures on the real excerpts, from ``results/*.csv``."""
    found = {}
    with open(ROOT / "results" / "real_excerpts.csv", newline="") as file:
        for row in csv.DictReader(file):
            if (row["model"], row["recipe"], row["data"]) == (model, recipe, "real_excerpts"):
                found["five_fold"] = {"track_accuracy": float(row["track_accuracy_mean"]),
                                      "std": float(row["track_accuracy_std"]), "command": row["command"]}
    with open(ROOT / "results" / "real_excerpts_by_id.csv", newline="") as file:
        for row in csv.DictReader(file):
            if (row["model"], row["recipe"]) == (model, recipe):
                found["by_id"] = {"track_accuracy": float(row["track_accuracy_mean"]),
                                  "std": float(row["track_accuracy_std"] or 0), "seeds": row["seeds"],
                                  "command": row["command"]}
    return found


def main(argv: list[str] | None = None) -> int:
    """Trains and writes the shipped model (or, with ``--check``, checks it); returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.ready_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the shipped model is the recommended one")
    args = parser.parse_args(argv)
    target = READY_MODELS["ready"] / "1"
    model_name, recipe_name = RECOMMENDED_MODEL
    if args.check:
        shipped = read_json(target / ABOUT_FILE) if (target / ABOUT_FILE).is_file() else {}
        if (shipped.get("model"), shipped.get("recipe")) != (model_name, recipe_name):
            print(f"{target} is not {model_name} ({recipe_name}): run python -m tests.ready_model", file=sys.stderr)
            return 1
        return 0
    if not any(REAL.glob("*/*.wav")):
        raise SystemExit(f"needs the real excerpts in {REAL}")
    data = loop.prepare_data(DataConfig(data_dir=str(REAL), window_seconds=WINDOW_SECONDS))
    every = data.part(train=data.split.train + data.split.valid + data.split.test, valid=())
    config = zoo.configure(model_name, window_seconds=WINDOW_SECONDS, n_genres=len(data.genres))
    train = recipe(recipe_name, seed=SEED)
    model = loop.compile_model(config, every, train)
    with tempfile.TemporaryDirectory(prefix="gtzan-ready-") as work:
        run = loop.run_config("ready", model_name, config, every, train)
        record = loop.train_run(model, every, run, RunStore(Path(work)))
    if record["status"] != "completed":
        raise SystemExit(f"training failed: {record.get('error')}")
    about = {"trial": "ready", "model": model_name, "recipe": recipe_name, "model_config": config.to_dict(),
             "data": {"data_dir": "real_excerpts", "synthetic": False,
                      "split": f"every clip ({len(every.split.train)} real GTZAN excerpts, ids 1-25 of each genre)"},
             "test": None, "crossval": figures(model_name, recipe_name),
             "pretrained_weights": [{"backbone": BACKBONE_NAMES[t], "licence": LICENCES[FAMILY_OF[t]]}
                                    for t in taggers(config)]}
    shutil.rmtree(target, ignore_errors=True)
    export_model(model, list(data.genres), target, ("head",), about)
    print(f"wrote {target}: {model_name} ({recipe_name}) trained on {len(every.split.train)} clips in "
          f"{record['seconds']:.0f} s, head {(target / 'head.npz').stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
