"""tuning.train and tuning.crossval on tiny synthetic data, and their error paths."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

from cli import crossval, evaluate, train
from tests.errors import error_line

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--window-seconds", "1", "--epochs", "2", "--batch-size", "16", "--wandb", "disabled"]


def test_train_writes_a_trial_folder_that_evaluate_and_export_accept(tiny_gtzan, tmp_path, capsys):
    assert train.main(["2cnn-16-16-1fc", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), *FAST]) == 0
    folder = tmp_path / "train" / "trials" / "2cnn-16-16-1fc"
    assert {p.name for p in folder.iterdir()} >= {"model.keras", "config.json", "record.json", "history.json"}
    config = json.loads((folder / "config.json").read_text())
    assert config["training"]["optimizer"] == "adamw" and config["training"]["epochs"] == 2
    assert config["training"]["batch_size"] == 16 and config["data"]["window_seconds"] == 1.0
    assert f"python -m zoo.evaluate {folder}" in capsys.readouterr().out
    assert evaluate.main([str(folder), "--exports", str(tmp_path / "exports"), "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["test_clips"] == 10 and (tmp_path / "exports" / "2cnn-16-16-1fc" / "1" / "saved_model.pb").is_file()


def test_study_recipe_is_named_in_the_folder(tiny_gtzan, tmp_path):
    assert train.main(["2cnn-16-16-1fc", "--recipe", "study", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path),
                       *FAST]) == 0
    config = json.loads((tmp_path / "train" / "trials" / "2cnn-16-16-1fc-study" / "config.json").read_text())
    assert config["training"]["optimizer"] == "adam" and config["training"]["early_stopping"] is True


def test_crossval_writes_results_and_resumes(tiny_gtzan, tmp_path, capsys):
    argv = ["2cnn-16-16-1fc", "--folds", "3", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path),
            "--table", str(tmp_path / "table.csv"), *FAST]
    assert crossval.main(argv) == 0
    out = capsys.readouterr().out
    assert "3 folds: test track accuracy" in out and "+-" in out
    folder = tmp_path / "crossval" / "2cnn-16-16-1fc"
    results = json.loads((folder / "results.json").read_text())
    assert [f["fold"] for f in results["folds"]] == [0, 1, 2]
    assert sum(f["test_clips"] for f in results["folds"]) == 60  # every clip tested exactly once
    assert sum(map(sum, results["confusion_matrix"])) == 60
    assert (folder / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "table.csv").read_text().splitlines()
    assert table[0].startswith("model,recipe,folds") and table[1].startswith("2cnn-16-16-1fc,adamw-cosine,3,")
    # The command that reproduces the row, without where its output went.
    command = table[1].split(",")[-1]
    assert command.startswith("python -m tuning.crossval 2cnn-16-16-1fc --folds 3 --data-dir ")
    assert "--table" not in command and "--out" not in command and "--wandb" not in command
    stamp = (folder / "trials" / "fold-1" / "model.keras").stat().st_mtime_ns
    assert crossval.main(argv) == 0  # resumes: no fold is trained again
    assert capsys.readouterr().out.count("finished earlier") == 3
    assert (folder / "trials" / "fold-1" / "model.keras").stat().st_mtime_ns == stamp
    assert len((tmp_path / "table.csv").read_text().splitlines()) == 2  # the row is replaced, not added


def test_a_failed_fold_and_missing_data_are_one_line(tiny_gtzan, tmp_path, monkeypatch, capsys):
    import tuning.crossvalidation

    def diverging(model, data, run, store, **record_fields):
        record = {"trial": run.trial, "model": run.model, "status": "failed", "error": "loss became NaN or infinite",
                  "epochs_run": 1, "seconds": 0.1, **record_fields}
        store.write_config(run.trial, run.to_dict())
        store.write_results(run.trial, {"loss": [float("nan")]}, record)
        return record

    argv = ["2cnn-16-16-1fc", "--folds", "2", "--out", str(tmp_path), *FAST]
    assert crossval.main([*argv, "--data-dir", str(tmp_path / "missing")]) == 2
    assert "data directory not found" in error_line(capsys.readouterr().err)
    monkeypatch.setattr(tuning.crossvalidation, "train_run", diverging)
    assert crossval.main([*argv, "--data-dir", str(tiny_gtzan)]) == 1
    assert "fold 0 failed: loss became NaN or infinite" in error_line(capsys.readouterr().err)


@pytest.mark.parametrize("command,flags,message", [
    ("tuning.crossval", ["2cnn-16-16-1fc", "--folds", "1"], "--folds must be at least 2, got 1"),
    ("tuning.crossval", ["2cnn-16-16-1fc", "--split", "random"], "unrecognized arguments: --split random"),
    ("tuning.train", ["2cnn-16-16-1fc", "--recipe", "magic"], "unknown --recipe 'magic'; expected one of study, adamw-cosine"),
    ("tuning.train", ["resnet50"], "unknown model name 'resnet50'"),
    ("tuning.crossval", ["resnet50"], "unknown model name 'resnet50'"),
    ("tuning.train", ["2cnn-16-16-1fc", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("tuning.train", ["2cnn-16-16-1fc", "--window-seconds", "inf"], "(--window-seconds) must be a finite number"),
])
def test_bad_flags_exit_2_with_one_line(command, flags, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", command, *flags, "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    last = error_line(result.stderr, usage="unrecognized arguments" in message)
    assert last.startswith(f"python -m {command}: error:") and message in last, result.stderr[-800:]


@pytest.mark.slow
def test_recommended_model_clearly_beats_chance_on_real_music(real_music, wheel, tmp_path, monkeypatch):
    """``zoo.list --recommended``'s model and recipe, 3 folds of the real excerpts (its 5-fold figure is
    in results/real_excerpts.csv): far from chance (0.10) here too, whatever the folds."""
    from tests import needs
    from training.config import RECOMMENDED_MODEL, default_recipe, run_name

    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))  # its features computed, not read from a cache
    monkeypatch.setenv("GTZAN_MUSICNN_WHEEL", str(wheel))
    model, recipe = RECOMMENDED_MODEL
    argv = [model, "--recipe", recipe, "--folds", "3", "--data-dir", str(real_music), "--window-seconds", "2",
            "--out", str(tmp_path), "--wandb", "disabled"]
    if "efficientat-mn04" in model:
        argv += ["--weights", str(needs.MN04 if needs.MN04.is_file() else needs.efficientat_mn04())]
    assert crossval.main(argv) == 0
    folder = run_name(model, recipe, default_recipe(zoo.resolve(model)))
    results = json.loads((tmp_path / "crossval" / folder / "results.json").read_text())
    assert all(fold["track_accuracy"] >= 0.55 for fold in results["folds"]), results["folds"]
    assert results["track_accuracy"]["mean"] >= 0.65


def test_a_table_keeps_one_row_per_model_recipe_and_data(tmp_path):
    from tests.tables import summary_rows
    from tuning.tables import update_table

    def results(data_dir: str, accuracy: float) -> dict:
        return {"model": "m", "folds": [{}] * 5, "track_accuracy": {"mean": accuracy, "std": 0.01},
                "macro_f1": {"mean": accuracy, "std": 0.01}, "parameters": 10, "seconds_per_fold": 3.0,
                "data": {"data_dir": data_dir, "window_seconds": 2.0}}

    table = tmp_path / "table.csv"
    update_table(table, results("/x/real_excerpts", 0.70), "adamw-cosine", "c1")
    update_table(table, results("/x/real_excerpts_16k", 0.65), "adamw-cosine", "c2")
    update_table(table, results("/y/real_excerpts", 0.75), "adamw-cosine", "c3")  # the same data folder's name: replaced
    rows = summary_rows(table)
    assert [(r["data"], r["track_accuracy_mean"], r["command"]) for r in rows] == [
        ("real_excerpts", "0.750", "c3"), ("real_excerpts_16k", "0.650", "c2")]
