"""Export formats beside the SavedModel (ONNX, LiteRT, OpenVINO): written by zoo.evaluate, run by their
runtimes without this project, equal to the SavedModel on real and synthetic music, served by predict
and the app."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from cli import bench_serving, evaluate, predict, train
from data.synthesis import render_clip
from serving import benchmarks
from serving.config import ABOUT_FILE, PredictError, find_export
from tests.errors import error_line

PORTABLE = ("onnx", "litert", "openvino")
ALL = "savedmodel,onnx,litert,openvino"
TRAIN = ["--epochs", "1", "--batch-size", "16", "--wandb", "disabled"]


def train_and_export(model: str, data: Path, work: Path) -> Path:
    """``model`` trained one epoch on ``data`` (3-s windows, as the zoo defines it) and exported in every format."""
    assert train.main([model, "--data-dir", str(data), "--out", str(work / "runs"), *TRAIN]) == 0
    trial = work / "runs" / "train" / "trials" / model
    assert evaluate.main([str(trial), "--exports", str(work / "exports"), "--out", str(work / "evaluation"),
                          "--formats", ALL]) == 0
    return work / "exports" / model / "1"


@pytest.fixture(scope="module")
def bncnn(tiny_gtzan, tmp_path_factory) -> Path:
    return train_and_export("bncnn-32-64-128-256", tiny_gtzan, tmp_path_factory.mktemp("bncnn"))


def windows_of_music(real: Path | None, work: Path, window: int, clips: int = 8) -> Path:
    """``windows.npy``: ``clips`` 30-s clips of real music (the shared excerpts end to end) where there are,
    then ``clips / 2`` synthetic ones, each cut into the model's windows."""
    files = benchmarks.clips_30s(real, work, count=clips)[0] if real is not None else []
    for i, genre in enumerate(("classical", "metal", "hiphop", "jazz")[:clips // 2]):
        files.append(work / f"synthetic{i}.wav")
        soundfile.write(files[-1], render_clip(genre, 30.0, np.random.default_rng(i)).astype(np.float32), 22050)
    path = work / "windows.npy"
    np.save(path, benchmarks.clip_windows(files, window))
    return path


def check_parity(version: Path, windows: Path) -> dict:
    """Every format's window probabilities, each run in a process without this project, against the SavedModel's."""
    runs = {name: benchmarks.time_format(name, version if name == "savedmodel" else version / file, windows, repeats=1)
            for name, file in (("savedmodel", ""), ("onnx", "model.onnx"), ("litert", "model.tflite"),
                               ("openvino", "model.xml"))}
    reference = np.asarray(runs["savedmodel"]["per_window"])
    differences = {}
    for name in PORTABLE:
        probabilities = np.asarray(runs[name]["per_window"])
        differences[name] = float(np.abs(probabilities - reference).max())
        assert differences[name] <= 1e-4, (name, differences[name])
        assert (probabilities.argmax(-1) == reference.argmax(-1)).all(), name  # every window
        assert (probabilities.mean(1).argmax(-1) == reference.mean(1).argmax(-1)).all(), name  # every clip
    return differences


def test_every_format_is_written_into_one_version_folder_and_described(bncnn):
    about = json.loads((bncnn / ABOUT_FILE).read_text())
    assert set(about["formats"]) == {"savedmodel", *PORTABLE}
    assert {p.name for p in bncnn.iterdir()} >= {"saved_model.pb", "model.onnx", "model.tflite", "model.xml",
                                                  "model.bin", "assets.extra"}
    for name in PORTABLE:
        described = about["formats"][name]
        assert described["input"] == {"name": "waveform", "dtype": "float32", "shape": [None, 66150]}
        assert described["output"]["shape"] == [None, 10] and described["max_abs_diff"] <= 1e-4
    assert about["genres"][0] == "blues" and "average their probabilities" in about["windows"]


def test_bncnn_formats_equal_the_saved_model_on_real_and_synthetic_music(bncnn, tmp_path):
    from tests import needs

    real = needs.REAL_EXCERPTS if needs.REAL_EXCERPTS.is_dir() else None
    check_parity(bncnn, windows_of_music(real, tmp_path, 66150))


@pytest.mark.slow
def test_musicnn_formats_equal_the_saved_model_on_real_and_synthetic_music(wheel, real_music, tiny_gtzan, tmp_path):
    version = train_and_export("musicnn-msd_train=head", tiny_gtzan, tmp_path)
    check_parity(version, windows_of_music(real_music, tmp_path, 66150, clips=4))  # 4 real clips, 2 synthetic


@pytest.mark.slow
def test_efficientat_formats_equal_the_saved_model_on_real_and_synthetic_music(real_music, tiny_gtzan, tmp_path):
    """The resampler to 32 kHz, EfficientAT's front end and its MobileNet convert to every format."""
    from tests import needs

    needs.efficientat_mn04()
    version = train_and_export("efficientat-mn04_train=head", tiny_gtzan, tmp_path)
    check_parity(version, windows_of_music(real_music, tmp_path, 66150, clips=4))  # 4 real clips, 2 synthetic


@pytest.mark.parametrize("file, runtime", [("model.onnx", "ONNX Runtime"), ("model.tflite", "LiteRT"),
                                           ("model.xml", "OpenVINO")])
def test_predict_and_the_app_run_each_format_and_name_its_runtime(bncnn, tiny_gtzan, file, runtime, capsys):
    clip = sorted((tiny_gtzan / "jazz").glob("*.wav"))[0]
    assert predict.main([str(clip), "--model", str(bncnn), "--json", "--top", "10"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["runtime"].startswith("TensorFlow")
    assert predict.main([str(clip), "--model", str(bncnn / file), "--json", "--top", "10"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["runtime"].startswith(runtime) and other["model"] == "bncnn-32-64-128-256"
    assert [t["genre"] for t in other["top"]][0] == saved["top"][0]["genre"]
    expected = {t["genre"]: t["probability"] for t in saved["top"]}
    assert all(abs(t["probability"] - expected[t["genre"]]) <= 1e-4 for t in other["top"])

    from fastapi.testclient import TestClient

    from serving.prediction import Predictor
    from serving.web import create_app

    client = TestClient(create_app(Predictor(bncnn / file)), base_url="http://127.0.0.1")
    assert client.get("/api/health").json()["model"]["runtime"].startswith(runtime)
    with open(clip, "rb") as f:
        answer = client.post("/api/predict", files={"file": (clip.name, f, "audio/wav")}).json()
    assert answer["genres"][0] == saved["top"][0]["genre"] and str(bncnn) not in json.dumps(answer)


def test_finding_a_format_and_its_errors(bncnn, tmp_path, capsys):
    assert find_export(str(bncnn)) == bncnn  # the SavedModel first
    assert find_export(str(bncnn.parent)) == bncnn
    only = tmp_path / "only" / "1"
    only.mkdir(parents=True)
    (only / "assets.extra").mkdir()
    (only / ABOUT_FILE).write_bytes((bncnn / ABOUT_FILE).read_bytes())
    (only / "model.onnx").write_bytes((bncnn / "model.onnx").read_bytes())
    assert find_export(str(only.parent)) == only / "model.onnx"
    assert find_export(None, str(tmp_path)) == only / "model.onnx"  # the newest export: its only format
    (only / "model.tflite").write_bytes((bncnn / "model.tflite").read_bytes())
    with pytest.raises(PredictError, match="holds model.onnx, model.tflite; pass the one to use as --model"):
        find_export(str(only))
    alone = tmp_path / "alone.onnx"
    alone.write_bytes((bncnn / "model.onnx").read_bytes())
    assert predict.main(["x.wav", "--model", str(alone)]) == 2
    assert error_line(capsys.readouterr().err) == (
        f"python -m serving.predict: error: {alone} has no {ABOUT_FILE} beside it, so its genres are unknown: keep "
        "the model file in the folder it was exported to")
    broken = only / "model.xml"
    broken.write_text("<net>not a model")
    assert predict.main(["x.wav", "--model", str(broken)]) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"python -m serving.predict: error: {broken} is not a usable openvino model (")


def test_exporting_leaves_the_model_on_its_fft_and_a_failed_format_leaves_no_file(tmp_path, monkeypatch):
    import zoo
    from data.errors import EvaluationError
    from serving import export

    model = zoo.build("2cnn-16-16-1fc")
    export.export_model(model, [f"g{i}" for i in range(10)], tmp_path / "1", ("onnx",))
    assert [layer.portable for layer in model._flatten_layers() if hasattr(layer, "portable")] == [False]
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # as if the runtime gave other answers
    with pytest.raises(EvaluationError, match="the litert export of the model gives other probabilities"):
        export.export_model(model, [f"g{i}" for i in range(10)], tmp_path / "2", ("savedmodel", "litert"))
    assert not (tmp_path / "2" / "model.tflite").exists() and (tmp_path / "2" / "saved_model.pb").is_file()


def test_a_missing_converter_is_named_with_its_extra(bncnn, monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "tf2onnx" else find_spec(name, *args))
    assert evaluate.main(["best", "--formats", "savedmodel,onnx"]) == 2
    assert error_line(capsys.readouterr().err) == (
        'python -m serving.evaluate: error: the onnx format needs tf2onnx, not installed: python -m pip install -e '
        '".[onnx]" in the project folder (the onnx extra)')


def test_bench_times_a_portable_format_in_its_runtime(bncnn, capsys):
    assert bench_serving.main(["--model", str(bncnn / "model.tflite"), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model: {bncnn / 'model.tflite'} (LiteRT ") and "peak memory:" in out


def test_compare_times_every_format_side_by_side(bncnn, capsys, monkeypatch):
    monkeypatch.chdir(bncnn.parent.parent)  # the export named as a user in its folder would: a relative path
    relative = Path(bncnn.parent.name) / bncnn.name
    assert bench_serving.main(["--compare", str(relative), "--repeats", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"model: {relative}; 8 30-s clips of ") and "differences from savedmodel" in lines[0]
    rows = {line[:17].strip(): line for line in lines[2:-1]}
    assert lines[-1].startswith("arithmetic of a 30-s clip: ") and "GFLOP/s, so at least" in lines[-1]
    assert {"savedmodel", *PORTABLE} <= set(rows) <= {"savedmodel", *PORTABLE, "openvino (bf16)"}
    for name in PORTABLE:  # float32 everywhere: the same answers
        assert float(rows[name].split()[-2]) <= 1e-4 and rows[name].endswith("100%")


def test_compare_works_on_an_export_of_another_window(tmp_path, capsys):
    """The arithmetic bound rebuilds the model at the export's own window (2 s here), not at the zoo's 3 s."""
    import zoo
    from serving.export import export_saved_model

    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    config = zoo.configure("2cnn-16-16-1fc", window_seconds=2.0)
    version = export_saved_model(zoo.build_model(config), genres, tmp_path / "exports" / "m" / "1",
                                 about={"model": "2cnn-16-16-1fc", "model_config": config.to_dict()})
    assert bench_serving.main(["--compare", str(version), "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("savedmodel") and lines[-1].startswith("arithmetic of a 30-s clip: ")
