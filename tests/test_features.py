"""Cached features of frozen pretrained taggers: keys, invalidation, atomic writes, training through them."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

import zoo
from cli import cache as cache_cli
from cli import crossval, search, train
from data import caching
from data.catalogue import scan
from data.config import DataConfig, window_starts
from data.splits import random_split
from tests.errors import error_line
from tests.tables import summary_rows
from training import features
from training.config import RunConfig
from training.loop import prepare_data
from training.metrics import evaluate_run
from zoo.builders.pretrained import feature_view

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--window-seconds", "1", "--epochs", "2", "--wandb", "disabled"]


@pytest.fixture()
def cache(tmp_path, monkeypatch, wheel):
    """An empty cache folder of this test's own (the wheel is found where it is)."""
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GTZAN_MUSICNN_WHEEL", str(wheel))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def probe_config():
    return zoo.configure("musicnn-msd_train=head", window_seconds=1.0)


def test_windows_cover_the_clip_at_the_hop_and_match_evaluation_at_the_window():
    assert window_starts(100, 40, 20) == [0, 20, 40, 60]
    assert window_starts(30, 40, 20) == [0]  # shorter than a window: one, zero-padded
    assert window_starts(119, 40) == [0, 40, 79]  # non-overlapping, then one ending where the clip ends
    assert window_starts(120, 40) == [0, 40, 80] and window_starts(90, 40, 30) == [0, 30, 50]
    audio = np.arange(90, dtype=np.float32)
    windows = features.cut_windows(audio, 40, 25)
    assert windows.shape == (3, 40) and windows[2, 0] == 50 and windows[2, -1] == 89
    assert features.cut_windows(audio[:10], 40, 25).shape == (1, 40)


def test_an_entry_is_keyed_by_the_clips_bytes_the_window_the_hop_and_the_extractor(cache, tiny_gtzan, tmp_path,
                                                                                   probe_config, monkeypatch):
    clip = scan(tiny_gtzan).clips[0]
    copy = tmp_path / "copy" / "rock"
    copy.mkdir(parents=True)
    shutil.copy(clip.path, copy / "rock.00000.wav")
    moved = scan(tmp_path / "copy").clips[0]
    extractor = features.Extractor(probe_config, 22050, 11025)
    assert extractor.folder.parent == cache / "features"
    assert extractor.entry(moved) == extractor.entry(clip)  # the same bytes elsewhere: the same entry
    os.utime(moved.path, (1, 1))
    assert extractor.entry(moved) == extractor.entry(clip)  # touched, not changed
    data = bytearray(Path(moved.path).read_bytes())
    data[-2:] = b"\x01\x02"  # one sample changed
    Path(moved.path).write_bytes(bytes(data))
    assert extractor.entry(moved) != extractor.entry(clip)
    folders = {features.Extractor(probe_config, 22050, 11025).folder, features.Extractor(probe_config, 33075, 11025).folder,
               features.Extractor(probe_config, 22050, 22050).folder,
               features.Extractor(probe_config.replace(tagger="MTT_musicnn"), 22050, 11025).folder}
    assert len(folders) == 4
    monkeypatch.setattr(features, "FORMAT_VERSION", features.FORMAT_VERSION + 1)
    assert features.Extractor(probe_config, 22050, 11025).folder not in folders
    monkeypatch.undo()
    # Another front end (its settings are part of the key): another folder.
    from data import layers

    original = layers.MusicnnLogMel.get_config
    monkeypatch.setattr(layers.MusicnnLogMel, "get_config", lambda self: {**original(self), "bands": 128})
    assert features.Extractor(probe_config, 22050, 11025).folder not in folders


def test_a_miss_computes_the_frozen_layer_of_each_window_a_hit_reads_it_and_damage_is_recomputed(
        cache, tiny_gtzan, probe_config, caplog):
    clip = scan(tiny_gtzan).clips[0]
    extractor = features.Extractor(probe_config, 22050, 11025)
    computed = extractor.clip_features(clip)
    windows = features.cut_windows(soundfile.read(clip.path, dtype="float32")[0], 22050, 11025)
    assert computed.shape == (len(windows), 1506) == (7, 1506)  # 4 s at a hop of 0.5 s
    assert np.allclose(computed, np.asarray(extractor.model(windows)), atol=1e-5)
    entry = extractor.entry(clip)
    assert entry.is_file() and not list(entry.parent.glob("*.tmp"))

    class Unused:
        def predict_on_batch(self, x):
            raise AssertionError("a cache hit computed the features again")

    reader = features.Extractor(probe_config, 22050, 11025)
    reader._model = Unused()
    assert np.array_equal(reader.clip_features(clip), computed)
    entry.write_bytes(b"\x93NUMPY garbage")
    assert np.array_equal(extractor.clip_features(clip), computed)
    assert "recomputing the damaged feature cache entry" in caplog.text


def test_an_interrupted_write_leaves_no_entry(cache, tmp_path, monkeypatch):
    path = tmp_path / "entries" / "ab" / "abc.npy"

    def interrupted(f, array, allow_pickle):
        f.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    monkeypatch.setattr(features.np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        features.write_entry(path, np.zeros((3, 4), np.float32))
    assert not path.exists() and not list(path.parent.iterdir())


KILLED = r"""
import sys
from data.catalogue import scan
from training import features
import zoo
config = zoo.configure("musicnn-msd_train=head", window_seconds=1.0)
extractor = features.Extractor(config, 22050, 2205)
for clip in scan(sys.argv[1]).clips:
    extractor.clip_features(clip)
"""


def test_a_killed_extraction_leaves_whole_entries_only(cache, tiny_gtzan):
    process = subprocess.Popen([sys.executable, "-c", KILLED, str(tiny_gtzan)], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(cache.rglob("*.npy"))) < 3:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    entries = list(cache.rglob("*.npy"))
    assert 3 <= len(entries) < 60, "the extraction should have been stopped in the middle"
    for entry in entries:
        assert np.load(entry).shape == (31, 1506)  # 4-s clips, 1-s windows every 0.1 s: whole, never cut short


def test_the_model_trained_through_the_cache_gives_what_its_features_give(cache, tiny_gtzan, tmp_path):
    """The saved model is whole (it takes the waveform); scored on the test split as every model is,
    it gives the probabilities its cached features give through the part that trained."""
    assert train.main(["musicnn-msd_train=head", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), *FAST]) == 0
    folder = tmp_path / "train" / "trials" / "musicnn-msd_train=head"
    run = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    assert run.training.cached_features and (cache / "features").is_dir()
    model = zoo.load_model(folder / "model.keras")
    metrics = evaluate_run(model, run, tmp_path / "evaluation")
    test = random_split(scan(tiny_gtzan).clips, seed=run.data.split_seed).test
    through_cache = features.clips_features(test, run.model_config, 22050, 22050)
    view = feature_view(model, run.model_config)
    per_clip = np.array([np.asarray(view(f)).mean(axis=0) for f in through_cache])
    direct = np.array([np.asarray(model(features.cut_windows(soundfile.read(c.path, dtype="float32")[0], 22050, 22050)))
                       .mean(axis=0) for c in test])
    assert np.allclose(per_clip, direct, atol=1e-5)
    labels = np.array([c.label for c in test])
    assert metrics["track_accuracy"] == pytest.approx(float(np.mean(per_clip.argmax(axis=1) == labels)))
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (labels, per_clip.argmax(axis=1)), 1)
    assert metrics["confusion_matrix"] == confusion.tolist()


def test_training_on_features_trains_the_head_and_leaves_the_tagger_alone(cache, tiny_gtzan):
    data = prepare_data(DataConfig(data_dir=str(tiny_gtzan), window_seconds=1.0))
    from training.config import RECIPES
    from training.loop import compile_model, run_config, train_run
    from training.runstore import RunStore

    config = zoo.configure("musicnn-msd_train=backend", window_seconds=1.0)
    recipe = RECIPES["adamw-cosine"].replace(epochs=2, warmup_epochs=0)
    model = compile_model(config, data, recipe)
    before = {w.path: np.array(w) for w in model.weights}
    record = train_run(model, data, run_config("t", config.name, config, data, recipe), RunStore(cache / "runs"))
    assert record["status"] == "completed"
    changed = {path for path, value in before.items()
               if not np.array_equal(value, np.array(next(w for w in model.weights if w.path == path)))}
    assert any("musicnn_dense" in p and "_bn" not in p for p in changed)  # backend: the tagger's dense layer trains
    assert any("probabilities" in p for p in changed)
    assert not any(("timbral" in p or "temporal" in p or "_mid" in p or "_bn" in p) for p in changed)
    # One window per clip and epoch, drawn anew each epoch and the same for the same seed.
    fd = data.features(config)
    first = [batch[0].numpy() for batch in fd.train(recipe.replace(epochs=2))]
    again = [batch[0].numpy() for batch in fd.train(recipe.replace(epochs=2))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert sum(len(b) for b in first) == 2 * fd.train_clips and fd.counts.min() == 7


@pytest.mark.parametrize("tuner,extra", [("grid", ["--max-trials", "2"]), ("random", ["--max-trials", "2"]),
                                         ("bayesian", ["--max-trials", "2"]), ("hyperband", ["--epochs", "3"])])
def test_the_probe_space_runs_with_every_tuner(cache, tiny_gtzan, tmp_path, tuner, extra):
    argv = ["--space", "probe", "--base", "musicnn-msd", "--tuner", tuner, "--data-dir", str(tiny_gtzan), "--out",
            str(tmp_path), "--window-seconds", "1", "--wandb", "disabled", *extra]
    if tuner != "hyperband":
        argv += ["--epochs", "2"]
    assert search.main(argv) == 0
    rows = summary_rows(tmp_path / "probe" / "summary.csv")
    assert rows and all(row["status"] == "completed" for row in rows)
    assert all("musicnn-msd_" in row["trial"] and "train=head" in row["trial"] for row in rows)
    best = json.loads((tmp_path / "probe" / "best" / "config.json").read_text())
    assert best["space"] == "probe" and best["training"]["cached_features"] is True
    assert best["training"]["optimizer"] == "adamw"  # the probe starts from the adamw-cosine recipe
    assert zoo.load_model(tmp_path / "probe" / "best" / "model.keras").input_shape == (None, 22050)


def test_the_probe_grid_and_its_base(tmp_path, capsys):
    from tuning.spaces import SPACES

    grid = SPACES["probe"].grid(zoo.resolve("musicnn-msd+musicnn-mtt"))
    # Each backbone of the base alone, and both side by side: 8 trials each.
    assert len(grid) == 24 and {spec.model.features for spec in grid} == {"penultimate", "pooled"}
    assert {spec.model.tagger: 0 for spec in grid}.keys() == {"MSD_musicnn", "MTT_musicnn", "MSD_musicnn+MTT_musicnn"}
    assert all(spec.model.trainable == "head" for spec in grid)
    assert len(SPACES["probe"].grid(zoo.resolve("vgg-mtt"))) == 4
    mixed = SPACES["probe"].grid(zoo.resolve("vgg-mtt+efficientat-mn04"))  # pooled features only where all have them
    assert len(mixed) == 4 + 8 + 4 and {s.model.tagger for s in mixed} == {"MTT_vgg", "mn04_as", "MTT_vgg+mn04_as"}
    assert search.main(["--space", "probe", "--base", "bncnn-32-64-128-256", "--out", str(tmp_path)]) == 2
    assert "trains heads on pretrained backbones' features" in error_line(capsys.readouterr().err)


def test_a_search_result_is_cross_validated_by_its_folder(cache, tiny_gtzan, tmp_path, capsys):
    assert search.main(["--space", "probe", "--base", "musicnn-msd", "--max-trials", "1", "--data-dir", str(tiny_gtzan),
                        "--out", str(tmp_path), *FAST]) == 0
    best = json.loads((tmp_path / "probe" / "best" / "config.json").read_text())
    argv = [str(tmp_path / "probe" / "best"), "--folds", "2", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path),
            "--wandb", "disabled", "--epochs", "1"]
    assert crossval.main(argv) == 0
    results = json.loads((tmp_path / "crossval" / best["trial"] / "results.json").read_text())
    assert results["model"] == best["trial"] and results["data"]["window_seconds"] == 1.0
    assert results["training"]["learning_rate"] == best["training"]["learning_rate"]
    capsys.readouterr()
    assert crossval.main([*argv, "--recipe", "study"]) == 2
    assert "--recipe does not go with a trained folder" in error_line(capsys.readouterr().err)
    (tmp_path / "junk").mkdir()
    assert crossval.main([str(tmp_path / "junk"), "--out", str(tmp_path)]) == 2
    assert "is not a trained run's folder" in error_line(capsys.readouterr().err)


def test_the_cache_command_shows_and_clears_parts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path))
    (tmp_path / "features" / "x").mkdir(parents=True)
    (tmp_path / "features" / "x" / "a.npy").write_bytes(b"1" * 2_000_000)
    (tmp_path / "synthetic-1x1s-seed0").mkdir()
    (tmp_path / "synthetic-1x1s-seed0" / "a.wav").write_bytes(b"1" * 1000)
    assert cache_cli.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parts"]["features"] == {"folders": 1, "files": 1, "bytes": 2_000_000}
    assert report["parts"]["synthetic"]["bytes"] == 1000 and report["parts"]["wheels"]["files"] == 0
    assert cache_cli.main(["--clear", "features"]) == 0
    assert "cleared features: 2.0 MB" in capsys.readouterr().out
    assert not (tmp_path / "features").exists() and (tmp_path / "synthetic-1x1s-seed0").is_dir()
    assert caching.usage()["features"]["bytes"] == 0


@pytest.mark.slow
def test_a_probe_search_with_two_workers_shares_the_cache(cache, tiny_gtzan, tmp_path):
    argv = [sys.executable, "-m", "tuning.search", "--space", "probe", "--base", "musicnn-msd", "--max-trials", "4",
            "--workers", "2", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), *FAST]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = summary_rows(tmp_path / "probe" / "summary.csv")
    assert len(rows) == 4 and all(row["status"] == "completed" for row in rows)
    folders = list((cache / "features").iterdir())
    assert len(folders) == 2  # one tagger, the training and the validation windows: shared by both workers
    assert not list((cache / "features").rglob("*.tmp"))
