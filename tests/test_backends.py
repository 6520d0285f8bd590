"""Every Keras backend: the model and front-end tests under JAX and PyTorch, models that move between
backends with the same answers, the commands that train and export under each.

A Keras backend is chosen once per process (``KERAS_BACKEND``), so each check runs its backend in
a child process; this process is TensorFlow's.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import zoo
from serving.export import reference_windows

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = {"jax": "jax", "torch": "torch"}  # backend -> the package it needs


def backend_env(backend: str) -> dict:
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"needs {BACKENDS[backend]} for the {backend} backend: pip install -r requirements.txt")
    return {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_under(backend: str, script: str, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs ``script`` (Python source) under ``backend`` with ``args``; fails the test with its error if it fails."""
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=backend_env(backend),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_model_and_front_end_tests_pass_under(backend):
    """The registry's representative models build, train a step and round-trip; the front-end layers behave."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "backends", "-p", "no:cacheprovider",
                             "-o", "addopts=", "tests/test_zoo.py", "tests/test_layers.py", "tests/test_backbones.py"],
                            cwd=ROOT, env=backend_env(backend), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


OUTPUTS = """
import sys, keras, numpy as np
import zoo
from serving.export import reference_windows
folder, names = sys.argv[1], sys.argv[2:]
for name in names:
    model = zoo.load_model(f"{folder}/{name}.tensorflow.keras")
    windows = reference_windows(int(model.input_shape[1]))
    np.save(f"{folder}/{name}.there.npy", keras.ops.convert_to_numpy(model(windows, training=False)))
    keras.utils.set_random_seed(1)  # and a model of this backend's own, for TensorFlow to load
    own = zoo.build(name, window_seconds=1.0)
    own.save(f"{folder}/{name}.own.keras")
    np.save(f"{folder}/{name}.own.npy", keras.ops.convert_to_numpy(own(windows, training=False)))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_saved_under_one_backend_gives_the_same_outputs_under_another(backend, tmp_path):
    names = ["bncnn-32-64-128-256", "wave-3cnn-32-64-128-2fc-128"]
    models = {}
    for name in names:
        tf.keras.utils.set_random_seed(0)
        models[name] = zoo.build(name, window_seconds=1.0)
        models[name].save(tmp_path / f"{name}.tensorflow.keras")
    run_under(backend, OUTPUTS, tmp_path, *names)
    windows = reference_windows(22050)
    for name in names:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.there.npy"), np.asarray(models[name](windows)),
                                   atol=1e-5)
        own = zoo.load_model(tmp_path / f"{name}.own.keras")
        np.testing.assert_allclose(np.asarray(own(windows)), np.load(tmp_path / f"{name}.own.npy"), atol=1e-5)


FRONT_ENDS = """
import sys, keras, numpy as np
from data.layers import LogMelSpectrogram, MusicnnLogMel
clips = np.load(sys.argv[1])
np.savez(sys.argv[2], log_mel=keras.ops.convert_to_numpy(LogMelSpectrogram()(clips)),
         musicnn=keras.ops.convert_to_numpy(MusicnnLogMel()(clips)))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_front_ends_agree_across_backends_on_real_music(backend, real_music, tmp_path):
    """Log-mel features of real GTZAN excerpts under JAX or PyTorch against TensorFlow's.

    Each backend has its own float32 FFT, rounded its own way: bands within 60 dB of full scale
    agree within 2e-5 (of the output, which is decibels / 20); quieter bands, whose power is closer
    to that rounding, within 5e-4 (0.01 dB).
    """
    import soundfile

    from data.layers import LogMelSpectrogram, MusicnnLogMel

    files = sorted(real_music.glob("*/*.wav"))[::25]  # one of each genre
    clips = np.stack([soundfile.read(path, dtype="float32", frames=44100)[0] for path in files])
    np.save(tmp_path / "clips.npy", clips)
    run_under(backend, FRONT_ENDS, tmp_path / "clips.npy", tmp_path / "features.npz")
    there = np.load(tmp_path / "features.npz")
    log_mel = LogMelSpectrogram()(clips).numpy()
    loud = log_mel >= -1.0  # -60 dB and up
    assert loud.mean() > 0.5
    np.testing.assert_allclose(there["log_mel"][loud], log_mel[loud], atol=2e-5)
    np.testing.assert_allclose(there["log_mel"], log_mel, atol=5e-4)
    np.testing.assert_allclose(there["musicnn"], MusicnnLogMel()(clips).numpy(), atol=5e-5)


PREDICT = """
import sys, keras, numpy as np
import zoo
from serving.export import reference_windows
model = zoo.load_model(sys.argv[1])
np.save(sys.argv[2], keras.ops.convert_to_numpy(model(reference_windows(int(model.input_shape[1])), training=False)))
"""


@pytest.mark.slow
def test_train_under_jax_evaluate_under_pytorch_and_the_saved_model_answers_alike(tiny_gtzan, tmp_path):
    """``tuning.train`` under JAX, ``zoo.evaluate`` of that run under PyTorch: the record names the backend
    that trained it, and the SavedModel (written through TensorFlow) gives the trained model's probabilities."""
    fast = ["--window-seconds", "1", "--epochs", "1", "--batch-size", "16", "--wandb", "disabled"]
    train = subprocess.run([sys.executable, "-m", "tuning.train", "bncnn-16-32", "--data-dir", str(tiny_gtzan),
                            "--out", str(tmp_path), *fast], cwd=ROOT, env=backend_env("jax"), capture_output=True,
                           text=True)
    assert train.returncode == 0, train.stderr[-2000:]
    trial = tmp_path / "train" / "trials" / "bncnn-16-32"
    assert json.loads((trial / "record.json").read_text())["backend"] == "jax"
    evaluate = subprocess.run([sys.executable, "-m", "zoo.evaluate", str(trial), "--exports", str(tmp_path / "exports"),
                               "--out", str(tmp_path / "evaluation")], cwd=ROOT, env=backend_env("torch"),
                              capture_output=True, text=True)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert "exported savedmodel" in evaluate.stdout
    run_under("jax", PREDICT, trial / "model.keras", tmp_path / "trained.npy")
    exported = tf.saved_model.load(str(tmp_path / "exports" / "bncnn-16-32" / "1")).signatures["serving_default"]
    windows = reference_windows(22050)
    served = np.concatenate([exported(waveform=tf.constant(w[None]))["probabilities"].numpy() for w in windows])
    np.testing.assert_allclose(served, np.load(tmp_path / "trained.npy"), atol=1e-4)


def test_the_tensorflow_side_of_an_export_refuses_a_model_that_answers_otherwise(tmp_path):
    """The TensorFlow process of an export from another backend checks the loaded model against the
    probabilities the model gave there; a model that answers otherwise is refused and nothing is written."""
    from serving.export import export_request

    model = zoo.build("bncnn-16-32", window_seconds=1.0)
    model.save(tmp_path / "model.keras")
    expected = np.asarray(model(reference_windows(22050)))
    request = {"model": str(tmp_path / "model.keras"), "genres": [str(i) for i in range(10)],
               "path": str(tmp_path / "exports" / "1"), "formats": ["savedmodel"], "about": None, "backend": "jax",
               "answer": str(tmp_path / "answer.json")}
    (tmp_path / "request.json").write_text(json.dumps({**request, "expected": (expected + 0.01).tolist()}))
    export_request(str(tmp_path / "request.json"))
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer["error"].startswith("the model loaded under TensorFlow gives other probabilities than under jax")
    assert "\n" not in answer["error"] and not (tmp_path / "exports").exists()
    (tmp_path / "request.json").write_text(json.dumps({**request, "expected": expected.tolist()}))
    export_request(str(tmp_path / "request.json"))
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer["path"] == request["path"] and (tmp_path / "exports" / "1" / "saved_model.pb").is_file()


def test_data_parallel_training_asks_for_the_tensorflow_backend():
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-m", "tuning.search", "--space", "cnn", "--strategy", "mirrored"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m tuning.search: error: --strategy mirrored is TensorFlow's tf.distribute: it needs the tensorflow "
        "backend, not jax (KERAS_BACKEND)")


def test_the_configured_backend_is_read_as_keras_reads_it(monkeypatch, tmp_path):
    from zoo.config import configured_backend

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert configured_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "torch", "floatx": "float32"}')
    assert configured_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert configured_backend() == "jax"
