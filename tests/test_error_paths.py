"""Bad input as users give it: one line on stderr naming what is wrong, a non-zero exit, nothing lost."""

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli import evaluate, report, search
from data.catalogue import scan
from tests.errors import error_line

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--epochs", "1", "--max-trials", "1", "--window-seconds", "1", "--wandb", "disabled"]


def one_line(capsys) -> str:
    return error_line(capsys.readouterr().err)


def test_one_genre_folder(tiny_gtzan, tmp_path, capsys):
    shutil.copytree(tiny_gtzan / "rock", tmp_path / "data" / "rock")
    assert search.main(["--space", "cnn", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path), *QUICK]) == 2
    last = one_line(capsys)
    assert "one class folder (rock)" in last and "at least two genre folders" in last


def test_empty_train_list(tiny_gtzan, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("")
    (lists / "valid.txt").write_text("rock/rock.00001.wav\n")
    (lists / "test.txt").write_text("rock/rock.00002.wav\n")
    assert search.main(["--space", "cnn", "--data-dir", str(tiny_gtzan), "--split", "lists", "--split-dir", str(lists),
                        "--out", str(tmp_path), *QUICK]) == 2
    assert "the split leaves no training clips" in one_line(capsys)


@pytest.mark.parametrize("flags,message", [
    (["--space", "regularization", "--base", "nonsense-model"], "--base nonsense-model: unknown model name"),
    (["--space", "cnn", "--window-seconds", "nan"], "(--window-seconds) must be a finite number"),
    (["--space", "cnn", "--window-seconds", "inf"], "(--window-seconds) must be a finite number"),
    (["--space", "cnn", "--window-seconds", "0.00001"], "(--window-seconds) must be a finite number of at least 0.1"),
    (["--space", "cnn", "--tuner", "hyperband", "--max-trials", "3"], "--max-trials does not apply to --tuner hyperband"),
])
def test_bad_flags(flags, message, tmp_path, capsys):
    assert search.main([*flags, "--out", str(tmp_path), "--wandb", "disabled"]) == 2
    assert message in one_line(capsys)


def test_kaggle_layout_is_found_two_levels_down(tiny_gtzan, tmp_path, caplog):
    shutil.copytree(tiny_gtzan, tmp_path / "archive" / "Data" / "genres_original")
    with caplog.at_level(logging.WARNING):
        catalogue = scan(tmp_path / "archive")
    assert catalogue.root == tmp_path / "archive" / "Data" / "genres_original" and len(catalogue.clips) == 60
    assert f"using {catalogue.root}" in caplog.text


def test_broken_link_is_listed(tiny_gtzan, tmp_path):
    shutil.copytree(tiny_gtzan, tmp_path / "data")
    (tmp_path / "data" / "jazz" / "jazz.00099.wav").symlink_to(tmp_path / "nowhere.wav")
    problems = {Path(p.path).name: p.reason for p in scan(tmp_path / "data").problems}
    assert problems["jazz.00099.wav"].startswith("broken link")


def test_synthetic_message_only_without_a_data_dir(tiny_gtzan, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert search.main(["--space", "cnn", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), *QUICK]) == 0
    assert "using synthetic GTZAN" not in caplog.text


@pytest.fixture()
def one_trial(tiny_gtzan, tmp_path):
    assert search.main(["--space", "cnn", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path / "runs"), *QUICK]) == 0
    return tmp_path / "runs"


def test_truncated_model_and_incomplete_best(one_trial, tmp_path, capsys):
    model = one_trial / "cnn" / "best" / "model.keras"
    model.write_bytes(model.read_bytes()[:1000])
    assert evaluate.main(["best", "--runs", str(one_trial), "--no-export"]) == 2
    last = one_line(capsys)
    assert f"cannot load {model}" in last and "damaged, incomplete" in last
    model.unlink()
    assert evaluate.main(["best", "--space", "cnn", "--runs", str(one_trial), "--no-export"]) == 2
    assert "best/ is there but lacks model.keras or config.json" in one_line(capsys)


def test_unreadable_record_is_named(one_trial, tmp_path, capsys):
    record = next((one_trial / "cnn" / "trials").glob("*/record.json"))
    record.write_text('{"trial": "1cnn')
    assert report.main(["--runs", str(one_trial), "--out", str(tmp_path / "report")]) == 2
    last = one_line(capsys)
    assert str(record) in last and "unreadable" in last


def test_a_full_disk_is_one_line_and_loses_nothing(one_trial, tiny_gtzan, monkeypatch, capsys):
    summary = (one_trial / "cnn" / "summary.csv").read_text()
    best = (one_trial / "cnn" / "best" / "config.json").read_text()
    import training.runstore

    original = training.runstore.os.fdopen

    def full(*args, **kwargs):
        handle = original(*args, **kwargs)

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, text):
                raise OSError(28, "No space left on device")

        return Full()

    monkeypatch.setattr(training.runstore.os, "fdopen", full)
    args = ["--space", "cnn", "--data-dir", str(tiny_gtzan), "--out", str(one_trial), *QUICK]
    args[args.index("--max-trials") + 1] = "2"
    assert search.main(args) == 2
    assert "No space left on device" in one_line(capsys)
    assert (one_trial / "cnn" / "summary.csv").read_text() == summary
    assert (one_trial / "cnn" / "best" / "config.json").read_text() == best
    assert not [p for p in (one_trial / "cnn").rglob(".*") if p.name.startswith((".summary", ".config", ".record"))]


def test_predict_and_evaluate_clis_exit_non_zero_in_a_subprocess(tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo.evaluate", "best", "--runs", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no runs found" in error_line(result.stderr)
