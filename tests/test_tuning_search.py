import gc
import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from tensorflow.python.framework import func_graph, ops

import zoo
from cli import search
from tests.errors import error_line
from tests.tables import summary_rows
from training.runstore import RunStore, rank
from tuning import hypermodel as hypermodel_module

ROOT = Path(__file__).resolve().parents[1]


def search_args(data_dir, out, *extra):
    return ["--space", "cnn", "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1", "--max-trials", "2",
            "--window-seconds", "1", "--batch-size", "16", "--wandb", "disabled", *extra]


def run_search(argv):
    """Runs the command; returns its records, best first (as summary.csv lists them)."""
    assert search.main(argv) == 0
    out = Path(argv[argv.index("--out") + 1]) / "cnn"
    store = RunStore(out)
    by_name = {r["trial"]: r for r in store.records()}
    return [by_name[row["trial"]] for row in store.read_summary()]


def test_tiny_search_writes_results_best_model_and_config(tiny_gtzan, tmp_path, capsys):
    assert search.main([*map(str, ["--space", "cnn", "--data-dir", tiny_gtzan, "--out", tmp_path, "--epochs", "1",
                                   "--max-trials", "2", "--window-seconds", "1", "--wandb", "disabled"])]) == 0
    out = capsys.readouterr().out
    table = out[out.index("trial "):].splitlines()
    space_dir = tmp_path / "cnn"
    trials = sorted(p.name for p in (space_dir / "trials").iterdir())
    assert trials == ["1cnn-32-2fc-128", "1cnn-32-3fc-256-128"]
    for trial in trials:
        history = json.loads((space_dir / "trials" / trial / "history.json").read_text())
        assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "val_track_accuracy"}
        assert (space_dir / "trials" / trial / "history.csv").read_text().startswith("epoch,")
    config = json.loads((space_dir / "best" / "config.json").read_text())
    assert config["data"]["data_dir"] == str(tiny_gtzan) and config["data"]["synthetic"] is True
    assert config["data"]["window_seconds"] == 1.0 and config["data"]["split_seed"] == 42
    assert config["model"] in trials and config["metrics"]["trial"] == config["trial"]
    best = zoo.load_model(space_dir / "best" / "model.keras")
    assert best.input_shape == (None, 22050)
    summary = summary_rows(space_dir / "summary.csv")
    assert list(summary[0])[:2] == ["trial", "val_track_accuracy"] and len(summary) == 2
    # Best first: the table's order is the records' rank order.
    records = rank(RunStore(space_dir).records())
    assert [line.split()[0] for line in table[1:3]] == [r["trial"] for r in records]
    assert records[0]["trial"] == config["trial"]


def test_interrupted_search_resumes_without_rerunning_finished_trials(tiny_gtzan, tmp_path, monkeypatch):
    original = hypermodel_module.SpaceHyperModel.fit
    calls = []

    def interrupt_second(self, hp, model, *args, **kwargs):
        calls.append(self.spec(hp).name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(hypermodel_module.SpaceHyperModel, "fit", interrupt_second)
    assert search.main(search_args(tiny_gtzan, tmp_path)) == 130  # Ctrl-C: one line, what finished is kept
    assert calls == ["1cnn-32-2fc-128", "1cnn-32-3fc-256-128"]
    records = run_search(search_args(tiny_gtzan, tmp_path))
    assert calls[2:] == ["1cnn-32-3fc-256-128"]  # the finished trial was not rerun
    assert sorted(r["trial"] for r in records) == ["1cnn-32-2fc-128", "1cnn-32-3fc-256-128"]
    run_search(search_args(tiny_gtzan, tmp_path, "--fresh"))
    assert calls[3:] == ["1cnn-32-2fc-128", "1cnn-32-3fc-256-128"]


def test_nan_trial_is_failed_and_the_search_goes_on(tiny_gtzan, tmp_path, monkeypatch):
    build = hypermodel_module.SpaceHyperModel.build

    def exploding_first(self, hp):
        model = build(self, hp)
        if self.spec(hp).name == "1cnn-32-2fc-128":
            model.compile(optimizer=keras.optimizers.SGD(1e38), loss="sparse_categorical_crossentropy")
        return model

    monkeypatch.setattr(hypermodel_module.SpaceHyperModel, "build", exploding_first)
    records = run_search(search_args(tiny_gtzan, tmp_path))
    by_trial = {r["trial"]: r for r in records}
    assert by_trial["1cnn-32-2fc-128"]["status"] == "failed"
    assert "NaN" in by_trial["1cnn-32-2fc-128"]["error"]
    assert by_trial["1cnn-32-3fc-256-128"]["status"] == "completed"
    assert records[0]["trial"] == "1cnn-32-3fc-256-128"


def test_same_seed_repeats_each_trial_exactly(tiny_gtzan, tmp_path):
    first = run_search(search_args(tiny_gtzan, tmp_path / "first"))
    again = run_search(search_args(tiny_gtzan, tmp_path / "again"))
    other = run_search(search_args(tiny_gtzan, tmp_path / "other", "--seed", "7"))
    losses = lambda records: {r["trial"]: (r["loss"], r["val_loss"]) for r in records}
    assert losses(first) == losses(again)
    assert losses(first) != losses(other)


def live_training_graphs() -> int:
    gc.collect()
    count = 0
    for o in gc.get_objects():
        try:
            count += isinstance(o, func_graph.FuncGraph) and o.name == "one_step_on_data"
        except ReferenceError:  # a weak proxy (another library's) whose object is gone
            continue
    return count


def test_finished_trials_leave_no_training_graph_or_gradient_entry_behind(tiny_gtzan, tmp_path):
    # TensorFlow's gradient registry kept every traced training step alive (memory grew per trial).
    registry = ops._gradient_registry._registry
    gradients, graphs = set(registry), live_training_graphs()
    records = run_search(search_args(tiny_gtzan, tmp_path))
    # Memory stays flat from trial to trial: the second trial ends within 100 MB of the first.
    first, second = sorted(records, key=lambda r: r["trial_id"])
    assert len(records) == 2 and abs(second["rss_mb"] - first["rss_mb"]) < 100
    assert set(registry) == gradients
    assert live_training_graphs() <= graphs


def test_split_lists_that_match_no_clip(tiny_gtzan, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    for part in ("train", "valid", "test"):
        (lists / f"{part}_filtered.txt").write_text("blues/blues.00099.wav\nrock/rock.00098.wav\n")
    code = search.main(["--space", "cnn", "--data-dir", str(tiny_gtzan), "--split", "lists", "--split-dir", str(lists),
                        "--out", str(tmp_path), "--wandb", "disabled"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "match no clip" in err and str(lists) in err, err


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--max-trials", "0"], "--max-trials must be at least 1, got 0"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--window-seconds", "-1"], "(--window-seconds) must be a finite number"),
        (["--split", "lists"], "--split lists needs --split-dir"),
        (["--base", "3cnn-32-64-128-2fc-128"], "--base does not apply to --space cnn"),
        (["--data-dir", "/nonexistent/gtzan"], "data directory not found: /nonexistent/gtzan"),
    ],
)
def test_bad_input_one_line_error_exit_2(flags, message, tmp_path, capsys):
    assert search.main(["--space", "cnn", "--out", str(tmp_path), "--wandb", "disabled", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_empty_data_dir_and_bad_base(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert search.main(["--space", "cnn", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "no class folders" in error_line(capsys.readouterr().err)
    assert search.main(["--space", "activation", "--base", "nonsense", "--out", str(tmp_path)]) == 2
    assert "--base nonsense" in error_line(capsys.readouterr().err)


@pytest.mark.parametrize("flags,message", [(["--space", "rnn"], "invalid choice: 'rnn'"),
                                           (["--space", "cnn", "--tuner", "evolution"], "invalid choice: 'evolution'")])
def test_unknown_space_or_tuner_exit_2(flags, message):
    result = subprocess.run([sys.executable, "-m", "tuning.search", *flags], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert message in error_line(result.stderr, usage=True)


def test_wandb_offline_run_writes_metrics(tiny_gtzan, tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    run_search(search_args(tiny_gtzan, tmp_path, "--max-trials", "1", "--wandb", "offline"))
    printed = capfd.readouterr()
    assert "wandb:" not in printed.out + printed.err  # offline, W&B's own lines would bury the command's
    runs = list((tmp_path / "cnn" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # The run log is protobuf records; metric names are stored as plain UTF-8 keys.
    log = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"epoch/val_track_accuracy", b"epoch/val_loss", b"epoch/loss", b"epoch/accuracy"):
        assert key in log, key
    assert b"1cnn-32-2fc-128" in log  # the run is named after the trial
    assert b'"batch_size":16,"epochs":1' in log  # the config holds the values the trial trained with


@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_wide_tuners_sample_the_wider_range(tuner, tiny_gtzan, tmp_path):
    from tuning.spaces import SPACES

    records = run_search(search_args(tiny_gtzan, tmp_path, "--tuner", tuner, "--max-trials", "3"))
    assert len(records) == 3 and all(r["status"] == "completed" for r in records)
    assert (tmp_path / "cnn" / "best" / "model.keras").is_file()
    grid = {spec.name for spec in SPACES["cnn"].grid(None)}
    assert {r["trial"] for r in records} - grid, "every trial is one of the study's grid"
    for path in (tmp_path / "cnn" / "keras_tuner").glob("trial_*/trial.json"):
        values = json.loads(path.read_text())["hyperparameters"]["values"]
        assert "trial" not in values and 1 <= values["conv_blocks"] <= 3 and 1 <= values["dense_layers"] <= 5


@pytest.mark.slow
def test_hyperband_continues_trials_from_checkpoints(tiny_gtzan, tmp_path):
    args = search_args(tiny_gtzan, tmp_path, "--tuner", "hyperband", "--epochs", "3")
    del args[args.index("--max-trials"):args.index("--max-trials") + 2]  # Hyperband sets its own trials
    records = run_search(args)
    assert records and all(r["status"] == "completed" for r in records)
    assert any(r["trial"].endswith("-e3") for r in records)
