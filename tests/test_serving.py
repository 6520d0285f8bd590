"""serving.evaluate, the SavedModel export and serving.predict, on a model from a tiny search."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import zoo
from cli import evaluate, predict, search
from tests.errors import error_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def searched(tiny_gtzan, tmp_path_factory):
    """A finished one-trial search on the tiny set, its evaluation and its export."""
    work = tmp_path_factory.mktemp("evaluate")
    assert search.main(["--space", "cnn", "--data-dir", str(tiny_gtzan), "--out", str(work / "runs"), "--epochs", "1",
                        "--max-trials", "1", "--window-seconds", "1", "--wandb", "disabled"]) == 0
    assert evaluate.main(["best", "--runs", str(work / "runs"), "--exports", str(work / "exports"), "--json"]) == 0
    return work


def test_evaluate_writes_metrics_png_and_export(searched, capsys):
    metrics_path = searched / "runs" / "cnn" / "trials" / "1cnn-32-2fc-128" / "evaluation" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert metrics["test_clips"] == 10 and metrics["test_windows"] == 40  # 10 clips of 4 s, 1-s windows
    confusion = np.asarray(metrics["confusion_matrix"])
    assert metrics["track_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert np.asarray(metrics["confusion_matrix"]).sum() == 10
    assert set(metrics["per_genre"]) == {"blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
                                         "reggae", "rock"}
    assert metrics["data"]["synthetic"] is True
    png = Path(metrics["confusion_matrix_png"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(metrics["export"]) == searched / "exports" / "1cnn-32-2fc-128" / "1"
    # A second export gets the next version; text output names the metrics.
    assert evaluate.main(["best", "--space", "cnn", "--runs", str(searched / "runs"),
                          "--exports", str(searched / "exports")]) == 0
    captured = capsys.readouterr()
    assert "track accuracy:" in captured.out and "confusion matrix" in captured.out
    # The model learned synthetic music: said once, on stderr, with the command that trains one on GTZAN.
    assert captured.err.strip().splitlines() == [
        "python -m serving.evaluate: warning: this model was trained on synthetic music, not on GTZAN: its answers on "
        "real recordings mean nothing. Train one on GTZAN: python -m tuning.train bncnn-32-64-128-256 --data-dir "
        "~/datasets/gtzan, then python -m zoo.evaluate runs/train/trials/bncnn-32-64-128-256"]
    assert (searched / "exports" / "1cnn-32-2fc-128" / "2" / "saved_model.pb").is_file()


def test_evaluations_of_same_named_trials_from_two_searches_stay_apart(searched, tmp_path, capsys):
    """Each evaluation lands beside the run it evaluates: a trial of the same name in another search
    (another --out) never overwrites it, and a trial folder holds its own model's figures."""
    other = tmp_path / "other-runs"
    shutil.copytree(searched / "runs" / "cnn", other / "cnn")
    first = searched / "runs" / "cnn" / "trials" / "1cnn-32-2fc-128" / "evaluation" / "metrics.json"
    before = first.read_bytes()
    assert evaluate.main(["best", "--runs", str(other), "--no-export", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert Path(second["metrics_json"]) == other / "cnn" / "trials" / "1cnn-32-2fc-128" / "evaluation" / "metrics.json"
    assert first.read_bytes() == before and not (searched / "runs" / "evaluations").exists()
    # A model file named directly is evaluated into evaluation/ beside it.
    single = tmp_path / "single"
    shutil.copytree(searched / "runs" / "cnn" / "best", single)
    assert evaluate.main([str(single / "model.keras"), "--no-export", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics_json"] == str(single / "evaluation" / "metrics.json")


def test_track_metrics_match_a_direct_computation(searched):
    model = zoo.load_model(searched / "runs" / "cnn" / "best" / "model.keras")
    config = json.loads((searched / "runs" / "cnn" / "best" / "config.json").read_text())
    from data.catalogue import scan
    from data.splits import random_split
    from training.config import RunConfig
    from training.metrics import evaluate_run

    metrics = evaluate_run(model, RunConfig.from_dict(config), searched / "direct")
    test = random_split(scan(config["data"]["data_dir"]).clips, seed=config["data"]["split_seed"]).test
    correct = 0
    for clip in test:
        audio = soundfile.read(clip.path, dtype="float32")[0][: 4 * 22050].reshape(4, 22050)
        correct += int(np.asarray(model(audio)).mean(axis=0).argmax() == clip.label)
    assert metrics["track_accuracy"] == pytest.approx(correct / len(test))


SERVING_CHECK = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert not any(name.split(".")[0] in ("data", "zoo", "tuning", "serving", "keras_tuner") for name in sys.modules)
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
request = json.loads(open(sys.argv[2]).read())
out = serve(waveform=tf.constant(np.array(request["instances"], np.float32)))
short = serve(waveform=tf.zeros([1, 100]))
errors = []
for bad in (tf.zeros([5], tf.float32), tf.zeros([1, 22050], tf.int32)):
    try:
        serve(waveform=bad)
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
        errors.append(type(error).__name__)
rules = {}
for name, bad in (("nan", np.full([1, 30000], np.nan, np.float32)), ("inf", np.full([1, 30000], np.inf, np.float32)),
                  ("empty", np.zeros([0, 30000], np.float32))):
    try:
        serve(waveform=tf.constant(bad))
        rules[name] = "accepted"
    except tf.errors.InvalidArgumentError as error:
        rules[name] = " ".join(error.message.split())
loud = serve(waveform=tf.constant(np.full([1, 30000], 1e30, np.float32)))["probabilities"].numpy()
clipped = serve(waveform=tf.ones([1, 30000]))["probabilities"].numpy()
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "genres": [g.decode() for g in out["genres"].numpy()[0]],
                  "short": list(short["probabilities"].shape), "errors": errors, "rules": rules,
                  "loud_is_clipped": bool(np.allclose(loud, clipped))}))
"""


def test_saved_model_serves_in_a_process_without_this_project(searched, tiny_gtzan, tmp_path):
    export = searched / "exports" / "1cnn-32-2fc-128" / "1"
    model = zoo.load_model(searched / "runs" / "cnn" / "best" / "model.keras")
    waves = np.stack([soundfile.read(tiny_gtzan / g / f"{g}.00001.wav", dtype="float32")[0][:50000]
                      for g in ("jazz", "metal")])
    # The TF Serving REST body for these clips: {"instances": [[samples...], ...]}.
    body = tmp_path / "request.json"
    body.write_text(json.dumps({"instances": waves.tolist()}))
    script = tmp_path / "serve.py"
    script.write_text(SERVING_CHECK)
    result = subprocess.run([sys.executable, str(script), str(export), str(body)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    # 50000 samples: two whole 1-s windows, and a third ending where the clip ends.
    windows = np.stack([np.stack([w[:22050], w[22050:44100], w[-22050:]]) for w in waves]).reshape(6, 22050)
    expected = np.asarray(model(windows)).reshape(2, 3, 10).mean(axis=1)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert served["genres"][0] == "blues" and len(served["genres"]) == 10
    assert served["short"] == [1, 10]
    assert len(served["errors"]) == 2
    assert "NaN or infinite samples" in served["rules"]["nan"] and "NaN or infinite" in served["rules"]["inf"]
    assert "the batch is empty" in served["rules"]["empty"]
    assert served["loud_is_clipped"]


def test_evaluate_in_a_fresh_process_loads_the_custom_layers(searched, tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoo.evaluate", str(searched / "runs" / "cnn" / "best"),
                             "--no-export", "--out", str(tmp_path / "e")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "track accuracy:" in result.stdout


def test_evaluate_error_paths(searched, tmp_path, capsys):
    assert evaluate.main(["best", "--runs", str(tmp_path / "none")]) == 2
    assert "no runs found" in error_line(capsys.readouterr().err)
    assert evaluate.main(["best", "--space", "rnn", "--runs", str(searched / "runs")]) == 2
    assert "unknown space 'rnn'" in error_line(capsys.readouterr().err)
    assert evaluate.main([str(tmp_path / "missing.keras")]) == 2
    assert "evaluation target not found" in error_line(capsys.readouterr().err)
    moved = tmp_path / "moved"
    shutil.copytree(searched / "runs" / "cnn" / "best", moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    assert evaluate.main([str(moved), "--no-export", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has moved" in err and "--data-dir" in err
    result = subprocess.run([sys.executable, "-m", "zoo.evaluate", "best", "--runs", str(tmp_path / "none")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "no runs found" in error_line(result.stderr)


def test_evaluate_with_data_dir_after_a_move(searched, tiny_gtzan, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(searched / "runs" / "cnn" / "best", moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    assert evaluate.main([str(moved), "--data-dir", str(tiny_gtzan), "--no-export", "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "metrics.json").is_file()


def _write_formats(folder: Path, source: Path) -> list[Path]:
    audio, rate = soundfile.read(source, dtype="float32")
    stereo = np.stack([audio, audio * 0.5], axis=1)
    files = []
    for name, data, sr, subtype in (("a.wav", audio, 22050, "PCM_16"), ("b.wav", stereo, 44100, "PCM_24"),
                                    ("c.flac", stereo, 48000, None), ("d.ogg", audio, 16000, None),
                                    ("e.au", audio, 22050, "PCM_16"), ("f.mp3", audio, 44100, None)):
        path = folder / name
        soundfile.write(path, data, sr, subtype=subtype)
        files.append(path)
    long = folder / "long.wav"
    soundfile.write(long, np.tile(audio, 10), 22050)  # 40 s: longer than a GTZAN clip
    return files + [long]


def _errors_and_warnings(stderr: str) -> tuple[list[str], list[str]]:
    lines = stderr.strip().splitlines()
    return ([line for line in lines if ": warning: " not in line],
            [line for line in lines if line.startswith("python -m serving.predict: warning: ")])


def test_predict_many_formats_with_a_corrupt_file_in_the_middle(searched, tiny_gtzan, tmp_path, capsys):
    files = _write_formats(tmp_path, tiny_gtzan / "rock" / "rock.00002.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    order = files[:3] + [corrupt] + files[3:]
    code = predict.main([*map(str, order), "--model", str(searched / "exports" / "1cnn-32-2fc-128"), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [Path(line["file"]).name for line in lines] == [p.name for p in files]
    for line in lines:
        assert len(line["top"]) == 3 and sum(t["probability"] for t in line["top"]) <= 1.0 + 1e-6
    error, warnings = _errors_and_warnings(captured.err)
    assert len(error) == 1 and "corrupt.wav" in error[0]
    assert len(warnings) == 1 and "trained on synthetic music" in warnings[0]  # once, not per file


def test_predict_names_missing_folder_and_non_finite_files_and_keeps_json_valid(searched, tiny_gtzan, tmp_path, capsys):
    nan_file = tmp_path / "nan.wav"
    audio, _ = soundfile.read(tiny_gtzan / "rock" / "rock.00001.wav", dtype="float32")
    audio[100] = np.nan
    soundfile.write(nan_file, audio, 22050, subtype="FLOAT")
    good = tiny_gtzan / "rock" / "rock.00001.wav"
    (tmp_path / "empty").mkdir()  # a folder stands for the audio files under it: here none
    files = [tmp_path / "missing.wav", tmp_path / "empty", nan_file, good]
    code = predict.main([*map(str, files), "--model", str(searched / "exports" / "1cnn-32-2fc-128"), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert [json.loads(line)["file"] for line in captured.out.splitlines()] == [str(good)]
    errors, _ = _errors_and_warnings(captured.err)
    assert len(errors) == 2
    assert "missing.wav: file not found" in errors[0]
    assert "nan.wav: 1 samples are NaN or infinite" in errors[1]


def test_a_folder_is_tagged_into_a_table_as_predict_scores_each_file(searched, tiny_gtzan, tmp_path, capsys):
    # The library path (worker processes, windows of several files per batch) gives each file the
    # probabilities serving.predict gives it alone; a broken file is a row; a rerun tags nothing.
    export = str(searched / "exports" / "1cnn-32-2fc-128")
    (tmp_path / "music").mkdir()
    files = _write_formats(tmp_path / "music", tiny_gtzan / "rock" / "rock.00002.wav")
    (tmp_path / "music" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (tmp_path / "list.txt").write_text("\n".join(str(f) for f in files[:2]) + "\n")
    out = tmp_path / "tags.jsonl"
    assert predict.main([str(tmp_path / "music"), str(tmp_path / "list.txt"), "--model", export, "--out", str(out),
                         "--top", "10", "--workers", "2"]) == 1
    rows = {row["path"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert len(rows) == len(files) + 1 and rows[str((tmp_path / "music" / "corrupt.wav").absolute())]["error"]
    capsys.readouterr()
    assert predict.main([*map(str, files), "--model", export, "--json", "--top", "10"]) == 0
    for line in map(json.loads, capsys.readouterr().out.splitlines()):
        row = rows[str(Path(line["file"]).absolute())]
        assert row["top"] == [t["genre"] for t in line["top"]]
        for t in line["top"]:
            assert row["probabilities"][t["genre"]] == pytest.approx(t["probability"], abs=1e-5)
        assert row["seconds"] == pytest.approx(line["seconds"], abs=1e-3) and row["seconds_scored"] == row["seconds"]
    assert predict.main([str(tmp_path / "music"), "--model", export, "--out", str(out)]) == 1  # the error row again
    assert f"0 files tagged, 1 with an error row, {len(files)} already there" in capsys.readouterr().err


def test_predict_default_model_and_errors(searched, tiny_gtzan, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(searched)  # exports/ is here
    assert predict.main([str(tiny_gtzan / "pop" / "pop.00000.wav"), "--top", "2"]) == 0
    model_line, line = capsys.readouterr().out.splitlines()
    assert model_line.startswith("model: 1cnn-32-2fc-128 (exports/1cnn-32-2fc-128/")  # the newest export, named
    assert line.startswith(str(tiny_gtzan / "pop" / "pop.00000.wav") + ": ") and line.count(",") == 1
    monkeypatch.chdir(tmp_path)
    assert predict.main(["x.wav"]) == 2
    assert "no exported model under exports/" in error_line(capsys.readouterr().err)
    assert predict.main(["x.wav", "--model", str(tmp_path)]) == 2
    assert "no exported model in" in error_line(capsys.readouterr().err)
    # A random saved_model.pb, and a SavedModel that is not one of ours: one line each.
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "saved_model.pb").write_bytes(b"\x08\x01garbage" * 50)
    assert predict.main([str(tiny_gtzan / "pop" / "pop.00000.wav"), "--model", str(tmp_path / "junk")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a usable SavedModel" in err[0]
    import tensorflow as tf

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def double(self, x):
            return {"y": 2 * x}

    other = Other()
    tf.saved_model.save(other, str(tmp_path / "other"), signatures={"serving_default": other.double})
    assert predict.main([str(tiny_gtzan / "pop" / "pop.00000.wav"), "--model", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a genre model of this toolkit" in err[0]


def test_evaluate_on_another_labelled_folder(searched, marsyas_gtzan, tmp_path, capsys):
    # The Marsyas layout (.au files, genres/ below the root), three genres only, other clips.
    folder = tmp_path / "collection"
    for genre in ("blues", "jazz", "rock"):
        shutil.copytree(marsyas_gtzan / "genres" / genre, folder / genre)
    best = searched / "runs" / "cnn" / "best"
    assert evaluate.main([str(best), "--test-dir", str(folder), "--runs", str(searched / "runs"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    out = searched / "runs" / "cnn" / "trials" / "1cnn-32-2fc-128" / "evaluation" / "collection"
    assert metrics["metrics_json"] == str(out / "metrics.json") and (out / "confusion_matrix.png").is_file()
    assert metrics["test_clips"] == 9 and metrics["data"]["split"] == "test-dir"
    assert "export" not in metrics
    matrix = np.asarray(metrics["confusion_matrix"])
    genres = list(metrics["per_genre"])
    # Labelled with the model's genres by folder name: rows of the three genres hold the clips.
    assert [int(matrix[genres.index(g)].sum()) for g in ("blues", "jazz", "rock")] == [3, 3, 3]
    assert matrix.sum() == 9 and sorted(metrics["genres_without_clips"]) == sorted(set(genres) - {"blues", "jazz", "rock"})
    # The same model on the same clips, scored directly.
    model = zoo.load_model(best / "model.keras")
    from training.metrics import evaluate_clips, folder_clips

    _, clips = folder_clips(folder, genres)
    assert evaluate_clips(model, clips, genres, 1.0)["accuracy"] == pytest.approx(metrics["track_accuracy"])


def test_evaluate_test_dir_error_paths(searched, tmp_path, capsys):
    best = str(searched / "runs" / "cnn" / "best")
    assert evaluate.main([best, "--test-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--test-dir" in err and "not found" in err
    other = tmp_path / "other" / "polka"
    other.mkdir(parents=True)
    shutil.copy(_any_wav(tmp_path), other / "a.wav")
    assert evaluate.main([best, "--test-dir", str(tmp_path / "other"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "polka" in err and "the model's genres are blues" in err


def _any_wav(folder: Path) -> Path:
    path = folder / "tone.wav"
    soundfile.write(str(path), np.sin(np.arange(22050) / 10.0).astype(np.float32) * 0.3, 22050)
    return path


def test_a_new_export_never_replaces_an_earlier_version(tmp_path):
    from serving.export import next_version_dir

    assert next_version_dir(tmp_path, "bncnn-32-64") == tmp_path / "bncnn-32-64" / "1"
    for kept in ("1", "3", "notes"):  # version 2 was deleted by hand; a folder that is no version
        (tmp_path / "bncnn-32-64" / kept).mkdir(parents=True)
    assert next_version_dir(tmp_path, "bncnn-32-64") == tmp_path / "bncnn-32-64" / "4"
    assert next_version_dir(tmp_path, "a/b") == tmp_path / "a_b" / "1"
