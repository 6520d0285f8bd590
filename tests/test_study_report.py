"""tuning.study and tuning.report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import report as report_cli
from cli import study
from study import final, report, sections
from tests.errors import error_line
from tests.tables import summary_rows
from training.runstore import RunStore, write_json

ROOT = Path(__file__).resolve().parents[1]
ALL_SECTIONS = ("mlp", "cnn", "activation", "optimizer", "training", "regularization", "input")


def test_carried_choices_follow_the_study_order():
    finished = {
        "cnn": {"best": {"model": "2cnn-32-64-2fc-128", "training": {}}},
        "activation": {"best": {"model": "2cnn-32-64-2fc-128_act=elu1", "training": {}}},
        "optimizer": {"best": {"model": "x", "training": {"optimizer": "rmsprop", "learning_rate": 1e-3,
                                                         "schedule": "steplr", "gamma": 0.1}}},
        "training": {"best": {"model": "x", "training": {"batch_size": 64}}},
        "regularization": {"best": {"model": "2cnn-32-64-2fc-128_act=elu1_l2=1e-05", "training": {}}},
    }
    assert sections.carried_choices("mlp", finished) == (None, {})
    base, carried = sections.carried_choices("activation", finished)
    assert (base.name, carried) == ("2cnn-32-64-2fc-128", {})
    assert sections.carried_choices("optimizer", finished)[0].name == "2cnn-32-64-2fc-128_act=elu1"
    base, carried = sections.carried_choices("training", finished)
    assert base.name == "2cnn-32-64-2fc-128_act=elu1" and carried["optimizer"] == "rmsprop" and "batch_size" not in carried
    base, carried = sections.carried_choices("input", finished)
    assert base.name == "2cnn-32-64-2fc-128_act=elu1_l2=1e-05" and carried["batch_size"] == 64
    assert sections.carried_choices("activation", {}) == (None, {})


def test_quick_study_section_resumes_evaluates_and_reports(tiny_gtzan, tmp_path, capsys):
    args = ["--quick", "--sections", "input", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path / "study"),
            "--exports", str(tmp_path / "exports"), "--wandb", "disabled"]
    assert study.main(args) == 0
    out = capsys.readouterr().out
    assert "[input] trial 1 of 2" in out and "[input] trial 2 of 2" in out and "best so far" in out
    assert "[final]" in out and "exported to" in out
    state = json.loads((tmp_path / "study" / "study.json").read_text())
    assert state["sections"]["input"]["status"] == "done" and state["final"]
    # Every written config names the batch size and epochs the trial really trained with.
    configs = [json.loads(p.read_text()) for p in (tmp_path / "study").rglob("config.json")]
    assert len(configs) >= 3
    for config in configs:
        assert config["training"]["batch_size"] == 32 and config["training"]["epochs"] == 2
    assert study.main(args) == 0  # resumes: the finished section is skipped
    assert "[input] finished earlier" in capsys.readouterr().out
    assert study.main([*args, "--seed", "1"]) == 2  # another study in the same folder is refused
    assert "seed was 42, now 1" in error_line(capsys.readouterr().err)
    assert report_cli.main(["--runs", str(tmp_path / "study"), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "synthetic GTZAN-shaped data" in text and "Study: spectrogram 0.56 vs waveform 0.29" in text
    assert "## Final evaluation (test split)" in text and (tmp_path / "report" / "final_confusion_matrix.png").is_file()


def _fake_runs(root: Path) -> dict[str, list[dict]]:
    """Records and histories for every section, as a study writes them."""
    written = {}
    for s, section in enumerate(ALL_SECTIONS):
        records = []
        for t in range(3):
            trial = f"{section}-trial-{t}" if section != "input" else ("spectrogram", "waveform", "extra")[t]
            history = {"loss": [2.0 - 0.1 * e - 0.01 * t for e in range(4)], "accuracy": [0.1 * e for e in range(4)],
                       "val_loss": [2.1 - 0.1 * e for e in range(4)], "val_accuracy": [0.2] * 4,
                       "val_track_accuracy": [0.1 * (t + 1) + 0.01 * e + 0.001 * s for e in range(4)]}
            store = RunStore(root / section)
            folder = store.trial_dir(trial)
            record = {"trial": trial, "model": "m", "status": "completed", "epochs_run": 4, "seconds": 1.5 + t,
                      "best_epoch": 4, "val_track_accuracy": history["val_track_accuracy"][-1],
                      "val_accuracy": 0.2, "val_loss": history["val_loss"][-1], "loss": 1.0, "accuracy": 0.5}
            store.write_results(trial, history, record)
            write_json(folder / "config.json", {"training": {"batch_size": (16, 32, 16)[t]},
                                                "data": {"synthetic": False, "data_dir": "/gtzan", "split": "lists"}})
            records.append(record)
        written[section] = records
    return written


def test_report_has_every_sections_figures_and_tables_matching_histories(tmp_path):
    written = _fake_runs(tmp_path / "runs")
    path = report.write_report(tmp_path / "runs", tmp_path / "out")
    text = path.read_text()
    assert "real audio" in text and "synthetic" not in text.split("##")[0].split("Data:")[1].split(",")[0]
    for section in ALL_SECTIONS:
        for suffix in ("loss", "val_accuracy", "best_val_accuracy"):
            figure = tmp_path / "out" / f"{section}_{suffix}.png"
            assert figure.read_bytes()[:4] == b"\x89PNG" and f"({figure.name})" in text
        chunk = text.split(f"## {section}\n")[1].split("\n## ")[0]
        rows = [line for line in chunk.splitlines() if line.startswith("| `")]
        best_first = sorted(written[section], key=lambda r: -r["val_track_accuracy"])
        assert [row.split("`")[1] for row in rows] == [r["trial"] for r in best_first]
        for row, record in zip(rows, best_first):
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert float(cells[1]) == pytest.approx(record["val_track_accuracy"], abs=5e-4)
            assert float(cells[2]) == pytest.approx(record["val_loss"], abs=5e-4)
            assert int(cells[3]) == 4
    assert "Study: best 0.30, worst 0.21" in text and "Study: best 0.56, worst 0.41" in text
    assert (tmp_path / "out" / "training_batch_size.png").is_file()
    assert "16: 0.23, 32: 0.23" in text  # (0.134 + 0.334) / 2 for batch 16, 0.234 for batch 32


def test_report_without_runs_exits_2(tmp_path, capsys):
    assert report_cli.main(["--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no runs under" in error_line(capsys.readouterr().err)


@pytest.mark.parametrize("flags,message", [(["--epochs", "0"], "--epochs must be at least 1"),
                                           (["--split", "lists"], "--split-dir"),
                                           (["--data-dir", "/nonexistent"], "data directory not found")])
def test_study_bad_input(flags, message, tmp_path, capsys):
    assert study.main([*flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.fixture(scope="module")
def whole_quick_study(tmp_path_factory) -> Path:
    """The whole ``--quick`` study in one process, on its own small synthetic set, as a user runs it.

    Its folder holds study/, exports/ and the cache/ the synthetic set was generated into.
    """
    out = tmp_path_factory.mktemp("whole-study")
    result = subprocess.run([sys.executable, "-m", "tuning.study", "--quick", "--out", str(out / "study"),
                             "--exports", str(out / "exports"), "--wandb", "disabled"], cwd=ROOT, capture_output=True,
                            text=True, timeout=1200, env={**os.environ, "GTZAN_CACHE": str(out / "cache")})
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.mark.slow
def test_full_quick_study_and_report(whole_quick_study, tmp_path):
    state = json.loads((whole_quick_study / "study" / "study.json").read_text())
    assert list(state["sections"]) == list(ALL_SECTIONS)
    assert [f["trial"] for f in state["final"]] and len(list((whole_quick_study / "exports").iterdir())) == 1
    report.write_report(whole_quick_study / "study", tmp_path / "report")
    for section in ALL_SECTIONS:
        assert (tmp_path / "report" / f"{section}_loss.png").is_file()


@pytest.mark.slow
def test_a_study_with_two_workers_gives_the_one_process_study(whole_quick_study, tmp_path):
    # Its first section with two workers, on the same synthetic set: the same trials, scores and
    # winner as one process (tests/test_distributed.py compares CNN searches the same way).
    result = subprocess.run([sys.executable, "-m", "tuning.study", "--quick", "--sections", "mlp",
                             "--out", str(tmp_path), "--no-export", "--wandb", "disabled", "--workers", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "GTZAN_CACHE": str(whole_quick_study / "cache")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("[mlp] [worker") == 9
    one_process = whole_quick_study / "study"
    for section in ("mlp",):
        tables = [sorted((row["trial"], row["val_track_accuracy"]) for row in summary_rows(out / section / "summary.csv"))
                  for out in (one_process, tmp_path)]
        assert tables[0] == tables[1]
    one, two = (json.loads((out / "study.json").read_text()) for out in (one_process, tmp_path))
    for section in ("mlp",):
        assert two["sections"][section]["best"]["trial"] == one["sections"][section]["best"]["trial"]


def _section_winner(root: Path, section: str, data, model_name: str, training) -> None:
    """A section folder whose best/ holds a (barely trained) model, as a finished search leaves it."""
    import zoo
    from training.loop import compile_model, run_config

    store = RunStore(root / section)
    model_config = zoo.configure(model_name, window_seconds=data.config.window_seconds)
    model = compile_model(model_config, data, training)
    run = run_config(f"{section}-winner", model_name, model_config, data, training, space=section)
    store.write_config(run.trial, run.to_dict())
    store.save_model(run.trial, model)
    store.promote(run.trial, {"trial": run.trial, "status": "completed", "val_track_accuracy":
                              {"optimizer": 0.9, "training": 0.8, "regularization": 0.7}[section], "val_loss": 1.0})


def test_final_evaluation_compares_two_distinct_configurations(tiny_gtzan, tmp_path, capsys):
    from data.config import DataConfig
    from training.config import TrainConfig
    from training.loop import prepare_data

    data = prepare_data(DataConfig(str(tiny_gtzan), window_seconds=1.0))
    carried = TrainConfig(optimizer="rmsprop", schedule="exponentiallr", gamma=0.9)
    _section_winner(tmp_path, "optimizer", data, "2cnn-16-16-1fc", carried)
    # The training section's winner kept what it carried forward (batch 32, 20 epochs, no early stopping).
    _section_winner(tmp_path, "training", data, "2cnn-16-16-1fc", carried.replace(early_stopping=False))
    _section_winner(tmp_path, "regularization", data, "2cnn-16-16-1fc_l2=1e-05", carried)
    results = final.final_evaluation(tmp_path, exports=None, say=print)
    assert [item["space"] for item in results] == ["optimizer", "regularization"]
    assert results[0]["same_as"] == ["training"] and results[1]["same_as"] == []
    assert results[0]["training"]["batch_size"] == 32 and results[0]["training"]["epochs"] == 20
    out = capsys.readouterr().out
    assert "(section optimizer, also the winner of training)" in out


def test_the_study_runs_its_seven_sections_which_are_search_spaces():
    from study.config import SECTIONS
    from tuning.spaces import SPACES

    assert SECTIONS == ALL_SECTIONS and set(SECTIONS) <= set(SPACES) and "probe" not in SECTIONS
