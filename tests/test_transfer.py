"""Genre models on the pretrained taggers: weights in place, freezing as named, export, embeddings."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile

import zoo
from cli import embed
from tests.errors import error_line
from zoo.builders.pretrained import tagger_model
from zoo.families.pretrained import MSD_TAGS

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ("musicnn-msd", "musicnn-mtt", "vgg-msd", "vgg-mtt")


@pytest.fixture(scope="module")
def music(wheel, real_music):
    """Eight real GTZAN excerpts (2 s each) and their files; the tests that use them need the wheel too."""
    files = sorted(real_music.glob("*/*.wav"))[::25][:8]
    return np.stack([soundfile.read(f, dtype="float32")[0][:44100] for f in files]), files


def test_pretrained_names_are_registered_with_their_tag_set():
    assert set(PRETRAINED) <= set(zoo.names())
    assert "Million Song Dataset" in zoo.describe("musicnn-msd") and "MagnaTagATune" in zoo.describe("vgg-mtt")
    config = zoo.resolve("musicnn-msd_train=midend_head=256_dropout=0,0.3_rec=0.5")
    assert (config.tagger, config.trainable, config.dense_units, config.conv_dropout, config.dense_dropout,
            config.recording_augment) == ("MSD_musicnn", "midend", (256,), 0.0, 0.3, 0.5)
    assert zoo.resolve(config.name) == config


@pytest.mark.parametrize("name,message", [
    ("bncnn-32-64-128-256_train=head", "applies to pretrained models"),
    ("musicnn-msd_train=some", "trainable must be one of head, backend, midend, all"),
    ("3cnn-32-64-128-2fc-128_head=64", "applies to pretrained models"),
    ("musicnn-fma", "unknown model name"),
])
def test_bad_pretrained_names(name, message):
    with pytest.raises(ValueError, match=message):
        zoo.resolve(name)


def test_vgg_takes_at_most_three_seconds():
    with pytest.raises(ValueError, match="vgg takes windows of at most 3 s"):
        zoo.build("vgg-msd", window_seconds=4.0)
    with pytest.raises(ValueError, match="spectrogram is fixed"):
        zoo.build("musicnn-msd", n_mels=128)


@pytest.mark.parametrize("name", ["musicnn-msd", "vgg-mtt"])
def test_the_backbone_is_the_pretrained_tagger(name, music):
    """The genre model's features are the tagger's own penultimate features of the same audio."""
    window = 2.0 if name.startswith("musicnn") else 3.0
    x = music[0] if window == 2.0 else np.pad(music[0], ((0, 0), (0, 66150 - 44100)))
    model = zoo.build(name, window_seconds=window)
    mel = model.get_layer("musicnn_log_mel")(x)
    if name.startswith("vgg"):
        mel = model.get_layer("vgg_frames")(mel)
    features = model.get_layer(name.split("-")[0])(mel, training=False)
    reference = tagger_model(name).predict_on_batch(x)["penultimate"]
    np.testing.assert_allclose(np.asarray(features), reference, atol=2e-5)


TRAINED = {  # layers with weights that train, besides the new softmax
    "head": set(),
    "backend": {"musicnn_dense"},
    "midend": {"musicnn_dense", "musicnn_mid1", "musicnn_mid2", "musicnn_mid3"},
    "all": {"musicnn_dense", "musicnn_mid1", "musicnn_mid2", "musicnn_mid3", "musicnn_timbral74", "musicnn_timbral77",
            "musicnn_temporal128", "musicnn_temporal64", "musicnn_temporal32"},
}


@pytest.mark.parametrize("trainable", list(TRAINED))
def test_freezing_does_what_it_says(trainable, music):
    model = zoo.build(f"musicnn-msd_train={trainable}", window_seconds=0.5, n_genres=4)
    backbone = model.get_layer("musicnn")
    trained = {layer.name for layer in backbone.layers if layer.trainable_weights}
    assert trained == TRAINED[trainable]
    bn = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bn) == 11 and not any(layer.trainable for layer in bn)
    frozen_before = [np.array(w) for w in model.non_trainable_weights]
    trained_before = [np.array(w) for w in model.trainable_weights]
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(music[0][:4, :11025], np.array([0, 1, 2, 3]), epochs=1, batch_size=4, verbose=0)
    # Frozen kernels and every batch-norm statistic bit-identical after a training step ...
    for before, weight in zip(frozen_before, model.non_trainable_weights):
        assert np.array_equal(before, np.asarray(weight)), f"{weight.path} changed"
    # ... every trainable weight moved.
    for before, weight in zip(trained_before, model.trainable_weights):
        assert not np.array_equal(before, np.asarray(weight)), f"{weight.path} did not train"


@pytest.mark.parametrize("name", PRETRAINED)
def test_pretrained_models_export_and_serve_audio(name, music, tmp_path):
    from serving.export import export_saved_model

    model = zoo.build(f"{name}_rec=0.5", window_seconds=1.0, n_genres=3)
    genres = ["blues", "jazz", "rock"]
    export = export_saved_model(model, genres, tmp_path / name / "1")
    # Loaded in a process that imports nothing of this project: the export is self-contained.
    script = ("import sys, numpy as np, tensorflow as tf\n"
              "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
              "x = np.load(sys.argv[2])\n"
              "np.save(sys.argv[3], f(waveform=tf.constant(x))['probabilities'].numpy())\n")
    np.save(tmp_path / "x.npy", music[0][:2])
    result = subprocess.run([sys.executable, "-c", script, str(export), str(tmp_path / "x.npy"), str(tmp_path / "p.npy")],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]
    windows = music[0][:2].reshape(4, 22050)  # 2 s -> two 1-s windows each, averaged per clip
    expected = np.asarray(model(windows, training=False)).reshape(2, 2, 3).mean(axis=1)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)


def test_msd_tags_of_real_music_name_its_genre(wheel, real_music):
    """The MSD tagger's top tags, averaged over a genre's real excerpts, hold the genre itself."""
    expected = {"blues": "blues", "jazz": "jazz", "metal": "metal", "hiphop": "Hip-Hop", "country": "country"}
    tagger = tagger_model("musicnn-msd")
    for genre, tag in expected.items():
        files = sorted((real_music / genre).glob("*.wav"))[:10]
        x = np.stack([soundfile.read(f, dtype="float32")[0][:44100] for f in files])
        tags = np.asarray(tagger.predict_on_batch(x)["tags"]).mean(axis=0)
        top = [MSD_TAGS[i] for i in np.argsort(-tags)[:3]]
        assert tag in top, f"{genre}: top tags {top}"


def test_embed_writes_per_file_embeddings_and_tags(music, tmp_path, capsys):
    files = [str(f) for f in music[1][:3]]
    long = tmp_path / "long.flac"  # 7.5 s at 44.1 kHz stereo: two 3-s patches, the rest left out
    clip = np.concatenate([soundfile.read(f, dtype="float32")[0] for f in music[1][:4]])[: int(7.5 * 22050)]
    stereo = np.stack([np.interp(np.arange(int(7.5 * 44100)) / 2, np.arange(clip.size), clip)] * 2, axis=1)
    soundfile.write(str(long), stereo.astype(np.float32), 44100)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt " + b"\0" * 10)
    out = tmp_path / "emb.npz"
    assert embed.main([*files, str(broken), str(long), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "broken.wav" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "4 files, embeddings 200-d, 50 tags (musicnn-msd)" in captured.out
    saved = np.load(out)
    assert list(saved["files"]) == [*files, str(long)]
    assert saved["embeddings"].shape == (4, 200) and saved["tags"].shape == (4, 50)
    assert list(saved["tag_names"]) == list(MSD_TAGS) and list(saved["patches"]) == [1, 1, 1, 2]
    # A 2-s excerpt is one patch: its row is the tagger's output on the whole excerpt.
    audio = soundfile.read(files[0], dtype="float32")[0]
    outputs = tagger_model("musicnn-msd").predict_on_batch(audio[None])
    np.testing.assert_allclose(saved["embeddings"][0], outputs["penultimate"][0], atol=1e-4)
    np.testing.assert_allclose(saved["tags"][0], outputs["tags"][0], atol=1e-5)
    # The 7.5-s file is the mean of its two 3-s patches, each run alone (the last 1.5 s left out).
    import soxr

    mono = soxr.resample(stereo.mean(axis=1).astype(np.float32), 44100, 22050)
    patches = tagger_model("musicnn-msd").predict_on_batch(np.stack([mono[:3 * 22050], mono[3 * 22050:6 * 22050]]))
    assert not np.allclose(patches["penultimate"][0], patches["penultimate"][1], atol=1e-2)  # the mean tells them apart
    np.testing.assert_allclose(saved["embeddings"][3], patches["penultimate"].mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(saved["tags"][3], patches["tags"].mean(axis=0), atol=1e-4)


def test_embed_error_paths(music, tmp_path, capsys):
    file = str(music[1][0])
    assert embed.main([file, "--model", "musicnn-fma"]) == 2
    assert "--model: unknown pretrained backbone 'musicnn-fma'; expected one of musicnn-msd" in error_line(
        capsys.readouterr().err)
    assert embed.main([file, "--out", str(tmp_path / "emb.csv")]) == 2
    assert "must name a .npz file" in error_line(capsys.readouterr().err)
    assert embed.main([str(tmp_path / "missing.wav"), "--out", str(tmp_path / "e.npz")]) == 2
    err = capsys.readouterr().err
    assert "missing.wav: file not found" in err and "nothing written" in err and not (tmp_path / "e.npz").exists()
    assert embed.main([file, "--model", "vgg-mtt", "--out", str(tmp_path / "v.npz")]) == 0
    assert np.load(tmp_path / "v.npz")["embeddings"].shape == (1, 256)
    capsys.readouterr()


def test_train_evaluate_and_predict_a_pretrained_model(wheel, tiny_gtzan, tmp_path, capsys):
    """The pretrained names go through the commands like any zoo name: train, evaluate, export, predict."""
    from cli import evaluate, predict, train

    runs = tmp_path / "runs"
    assert train.main(["musicnn-msd_train=head", "--recipe", "finetune", "--data-dir", str(tiny_gtzan), "--out",
                       str(runs), "--epochs", "1", "--window-seconds", "1", "--wandb", "disabled"]) == 0
    folder = runs / "train" / "trials" / "musicnn-msd_train=head-finetune"
    assert (folder / "model.keras").is_file()
    assert evaluate.main([str(folder), "--runs", str(runs), "--exports", str(tmp_path / "exports"), "--json"]) == 0
    export = tmp_path / "exports" / "musicnn-msd_train=head" / "1"  # exports are named by the model
    capsys.readouterr()
    assert predict.main([str(tiny_gtzan / "jazz" / "jazz.00000.wav"), "--model", str(export), "--json"]) == 0
    assert '"genre": ' in capsys.readouterr().out


def test_a_missing_wheel_stops_training_in_one_line(tiny_gtzan, tmp_path, monkeypatch, capsys):
    from cli import train

    monkeypatch.setenv("GTZAN_MUSICNN_WHEEL", str(tmp_path / "missing.whl"))
    assert train.main(["musicnn-mtt", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path / "runs"), "--epochs", "1",
                       "--window-seconds", "1", "--wandb", "disabled"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GTZAN_MUSICNN_WHEEL" in err and "pip download --no-deps musicnn==0.1.0" in err


def test_head_epochs_train_the_head_alone_then_what_the_name_says(wheel):
    import types

    from training.config import TrainConfig
    from training.loop import _head_phase

    model = zoo.build("musicnn-msd_train=midend", window_seconds=0.5, n_genres=4)
    data = types.SimpleNamespace(steps_per_epoch=lambda batch_size: 2)
    seen = []

    def fit(phase, first_epoch, last_epoch):
        seen.append((phase, first_epoch, last_epoch, [w.path for w in model.trainable_weights],
                     float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
        return types.SimpleNamespace(history={"loss": [1.0]})

    train = TrainConfig(optimizer="adamw", learning_rate=5e-4, schedule="cosine", warmup_epochs=2, epochs=10,
                        head_epochs=3, head_learning_rate=2e-3)
    _, rest = _head_phase(model, data, train, fit)
    (phase, first, last, weights, rate), = seen
    assert (phase.epochs, first, last, phase.schedule, rate) == (3, 0, 3, "constant", pytest.approx(2e-3))
    assert weights == ["probabilities/kernel", "probabilities/bias"]  # every pretrained layer frozen
    # Afterwards the name's layers train again, with a new optimizer over the 7 epochs left.
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {
        "musicnn_dense", "musicnn_mid1", "musicnn_mid2", "musicnn_mid3", "probabilities"}
    assert (rest.epochs, rest.head_epochs, rest.warmup_epochs, rest.seed) == (7, 0, 2, 43)
    assert int(model.optimizer.iterations) == 0


def test_head_epochs_refused_for_models_trained_from_scratch():
    from data.config import DataConfig
    from training.config import RECIPES, RunConfig

    with pytest.raises(ValueError, match="apply to pretrained models"):
        RunConfig("t", "bncnn-32-64-128-256", zoo.resolve("bncnn-32-64-128-256"),
                  RECIPES["finetune"].replace(head_epochs=2), DataConfig(), {})
