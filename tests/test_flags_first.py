"""Every command answers a flag it can check without data or a model at once: before TensorFlow loads.

Each command's bad-flag cases run in one process where TensorFlow, Keras and KerasTuner cannot be
imported: a command that loaded its library before checking a flag would fail with an ImportError
instead of the one-line error. Every answer is exit status 2 and exactly one line on stderr
(after argparse's own usage lines, for the errors argparse finds itself).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_layering import entry_points

ROOT = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent/gtzan-keras-test"

# Runs each case in this process with the heavy libraries made unimportable; prints the results.
DRIVER = r"""
import contextlib, io, json, runpy, sys
for blocked in ("tensorflow", "keras", "keras_tuner"):
    sys.modules[blocked] = None  # any import of it now raises ImportError
module, cases = sys.argv[1], json.loads(sys.argv[2])
results = []
for argv in cases:
    sys.argv = [module, *argv]
    err = io.StringIO()
    code = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code
        except BaseException as error:
            code, err = "raised", io.StringIO(f"{type(error).__name__}: {error}")
    results.append({"code": code, "stderr": err.getvalue()})
print(json.dumps(results))
"""

CASES = {
    "tuning.search": [
        (["--space", "nope"], "argument --space: invalid choice: 'nope'"),
        (["--space", "cnn", "--epochs", "-1"], "--epochs must be at least 1, got -1"),
        (["--space", "cnn", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--space", "cnn", "--max-trials", "0"], "--max-trials must be at least 1, got 0"),
        (["--space", "cnn", "--tuner", "hyperband", "--max-trials", "3"], "--max-trials does not apply to --tuner hyperband"),
        (["--space", "cnn", "--data-dir", MISSING], f"data directory not found: {MISSING}"),
        (["--space", "cnn", "--split", "lists"], "--split lists needs --split-dir"),
        (["--space", "cnn", "--split", "lists", "--split-dir", MISSING], f"split directory not found: {MISSING}"),
        (["--space", "cnn", "--split", "kfold", "--folds", "1"], "--folds must be at least 2, got 1"),
        (["--space", "cnn", "--split", "dataset"], "--split dataset takes the split column of a labels file; it "
                                                   "needs --labels"),
        (["--space", "cnn", "--subset", "small"], "--subset takes small, medium, large with FMA's tracks.csv as "
                                                  "--labels, got 'small' without --labels"),
        (["--space", "cnn", "--labels", "labels.csv"], "--labels names files relative to a data folder; give "
                                                       "--data-dir too"),
        (["--space", "cnn", "--data-dir", "/", "--labels", MISSING], f"--labels not found: {MISSING}"),
        (["--space", "cnn", "--cache", "tape"], "argument --cache: invalid choice: 'tape'"),
        (["--space", "cnn", "--memory-budget-gb", "0"], "--memory-budget-gb must be positive, got 0.0"),
        (["--space", "cnn", "--window-seconds", "nan"], "(--window-seconds) must be a finite number"),
        (["--space", "mlp", "--base", "bncnn-32-64-128-256"], "--base does not apply to --space mlp"),
        (["--space", "regularization", "--base", "nonsense-model"], "--base nonsense-model: unknown model name"),
        (["--space", "cnn", "--workers", "0"], "--workers and --gpus-per-worker must be at least 1"),
        (["--space", "cnn", "--workers", "2", "--role", "chief"], "--workers starts its own chief and workers"),
        (["--space", "cnn", "--role", "worker"], "--role needs --oracle HOST:PORT"),
        (["--space", "cnn", "--role", "worker", "--oracle", "nowhere"], "--oracle must be HOST:PORT"),
        (["--space", "cnn", "--chief-timeout", "0"], "--chief-timeout must be at least 1 second, got 0"),
    ],
    "tuning.train": [
        (["bncnn-32-64-128-256", "--epochs", "-1"], "--epochs must be at least 1, got -1"),
        (["resnet50"], "unknown model name 'resnet50'"),
        (["bncnn-32-64-128-256", "--recipe", "magic"], "unknown --recipe 'magic'"),
        (["bncnn-32-64-128-256", "--data-dir", MISSING], f"data directory not found: {MISSING}"),
        (["bncnn-32-64-128-256", "--precision", "float8"], "argument --precision: invalid choice"),
        (["vgg-msd", "--window-seconds", "5"], "vgg takes windows of at most 3 s"),
    ],
    "tuning.crossval": [
        (["bncnn-32-64-128-256", "--folds", "1"], "--folds must be at least 2, got 1"),
        (["bncnn-32-64-128-256", "--fold", "3"], "unrecognized arguments: --fold 3"),  # cross-validation tests every fold
        (["bncnn-32-64-128-256", "--split", "random"], "unrecognized arguments: --split random"),
        (["bncnn-32-64-128-256", "--table", "/"], "--table / is a folder"),
        (["bncnn-32-64-128-256", "--workers", "0"], "--workers and --gpus-per-worker must be at least 1"),
        (["bncnn-32-64-128-256", "--data-dir", MISSING], f"data directory not found: {MISSING}"),
    ],
    "tuning.study": [
        (["--sections", "nope"], "argument --sections: invalid choice: 'nope'"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--workers", "0"], "--workers and --gpus-per-worker must be at least 1"),
        (["--data-dir", MISSING], f"data directory not found: {MISSING}"),
    ],
    "tuning.report": [
        (["--runs", MISSING], f"--runs {MISSING} is not a folder"),
    ],
    "tuning.bench": [
        (["--workers", "1"], "--workers must be at least 2 to compare with one worker, got 1"),
        (["--memory", "--transfer"], "--transfer and --memory are two benchmarks; give one"),
        (["--memory", "--trials", "0"], "--trials must be at least 1, got 0"),
    ],
    "zoo.evaluate": [
        ([MISSING], f"evaluation target not found: {MISSING}"),
        (["best", "--space", "nope"], "unknown space 'nope'"),
        (["runs/cnn/best", "--space", "cnn"], "--space applies to the target 'best' only"),
        (["best", "--data-dir", MISSING], f"--data-dir not found: {MISSING}"),
        (["best", "--test-dir", MISSING], f"--test-dir not found: {MISSING}"),
        (["best", "--test-dir", "/", "--data-dir", "/"], "--test-dir evaluates on its own clips"),
        (["best", "--formats", "onnx,pdf"], "--formats: unknown format 'pdf'; expected a comma-separated list of "
                                            "savedmodel, onnx, litert, openvino"),
        (["best", "--formats", "onnx,onnx"], "--formats names a format twice: onnx,onnx"),
        (["best", "--no-export", "--formats", "onnx"], "--formats chooses what is exported"),
    ],
    "serving.evaluate": [
        ([MISSING], f"evaluation target not found: {MISSING}"),
    ],
    "zoo.list": [
        (["--window-seconds", "0"], "(--window-seconds) must be a finite number of at least 0.1"),
        (["zzz*"], "no registered model matches 'zzz*'"),
        (["bncnn*", "--recommended"], "--recommended prints one model; it does not go with a PATTERN"),
    ],
    "zoo.bench": [
        (["--batch-size", "0"], "--batch-size, --steps and --n-mels must be at least 1"),
        (["--window-seconds", "inf"], "(--window-seconds) must be a finite number"),
        (["--models", "resnet50"], "unknown model name 'resnet50'"),
        (["--backends", "mxnet"], "argument --backends: invalid choice: 'mxnet'"),
    ],
    "serving.predict": [
        (["song.wav", "--top", "0"], "--top must be at least 1, got 0"),
        (["song.wav", "--model", MISSING], f"no exported model in {MISSING}"),
        (["song.wav", "--model", "/etc/hostname"], "/etc/hostname is not an exported model: expected a SavedModel "
                                                   "folder or a .onnx, .tflite, .xml, .npz file"),
        (["song.wav", "--max-windows", "4"], "--max-windows shapes the rows of a table: give --out FILE.csv"),
        (["song.wav", "--precision", "int8"], "--precision shapes the rows of a table: give --out FILE.csv"),
        (["song.wav", "--out", "tags.txt"], "--out must name a .csv or .jsonl file, got tags.txt"),
        (["song.wav", "--out", "tags.csv", "--json"], "--json prints lines; with --out the rows go to the table"),
        (["song.wav", "--out", "tags.csv", "--max-windows", "0"], "--max-windows must be at least 1, got 0"),
        (["song.wav", "--out", "tags.csv", "--hop", "-1"], "--hop must be a positive number of seconds, got -1"),
        (["song.wav", "--out", "tags.csv", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["song.wav", "--out", "tags.csv", "--precision", "int4"], "argument --precision: invalid choice: 'int4'"),
        ([f"{MISSING}/list.m3u", "--out", "tags.csv"], f"cannot read the list {MISSING}/list.m3u: No such file"),
    ],
    "serving.app": [
        (["--port", "0"], "--port must be from 1 to 65535, got 0"),
        (["--max-seconds", "0"], "--max-seconds and --max-upload-mb must be positive"),
        (["--model", MISSING], f"no exported model in {MISSING}"),
        (["--max-concurrent", "0"], "--max-concurrent must be at least 1, got 0"),
        (["--client-timeout", "0"], "--client-timeout and the connection cap must be positive"),
        (["--allow-host", "http://evil.example:80"], "--allow-host takes a host name"),
    ],
    "serving.embed": [
        (["song.wav", "--model", "resnet"], "--model: unknown pretrained backbone 'resnet'"),
        (["song.wav", "--out", "embeddings.txt"], "--out must name a .npz file, got embeddings.txt"),
    ],
    "serving.bench": [
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
        (["--http", "--clients", "0"], "--clients and --requests must be at least 1"),
        (["--http", "--audio-dir", MISSING], f"--audio-dir {MISSING} is not a folder"),
        (["--model", MISSING], f"no exported model in {MISSING}"),
        (["--compare", MISSING], f"--compare {MISSING}: not an export version folder of this toolkit"),
        (["--compare", MISSING, "--model", MISSING], "--compare times the formats of the export it names"),
        (["--compare", MISSING, "--http"], "--http, --hostile, --soak, --library and --compare are five benchmarks"),
        (["--soak", "--hostile"], "--http, --hostile, --soak, --library and --compare are five benchmarks; give one"),
        (["--library", "--soak"], "--http, --hostile, --soak, --library and --compare are five benchmarks; give one"),
        (["--library", "--songs", "0"], "--clips, --songs and --workers must be at least 1, got 20, 0 and"),
        (["--soak", "--minutes", "0"], "--minutes must be positive, got 0"),
    ],
    "data.inspect": [
        ([MISSING], f"data directory not found: {MISSING}"),
        (["/", "--labels", "/"], "--labels is not a file: /"),
        (["/", "--subset", "small"], "--subset takes FMA's subset with its tracks.csv as --labels"),
    ],
    "data.resample": [
        ([MISSING, "/tmp/gtzan-keras-test-copy", "--rate", "0"], "--rate must be from 1000 to 22049 Hz"),
        ([MISSING, "/tmp/gtzan-keras-test-copy"], f"data directory not found: {MISSING}"),
    ],
    "data.synthetic": [
        (["/tmp/gtzan-keras-test-synthetic", "--clips-per-genre", "0"], "--clips-per-genre must be at least 1, got 0"),
        (["/tmp/gtzan-keras-test-synthetic", "--seconds", "0"], "--seconds must be in (0, 600], got 0.0"),
    ],
    "data.cache": [
        (["--clear", "nope"], "argument --clear: invalid choice: 'nope'"),
    ],
    "data.bench": [
        (["--clips", "0"], "--clips must be at least 1, got 0"),
        (["--data-dir", MISSING], f"data directory not found: {MISSING}"),
        (["--cache", "disk", "--memory-budget-gb", "-1"], "--memory-budget-gb must be positive, got -1.0"),
    ],
}


def test_every_command_has_bad_flag_cases():
    assert set(CASES) == set(entry_points())


@pytest.mark.parametrize("module", sorted(CASES))
def test_bad_flags_are_refused_before_tensorflow_loads(module, tmp_path):
    cases = CASES[module]
    result = subprocess.run([sys.executable, "-c", DRIVER, module, json.dumps([argv for argv, _ in cases])],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-1500:]
    prog = f"python -m {module}"
    for (argv, message), answer in zip(cases, json.loads(result.stdout)):
        lines = answer["stderr"].strip().splitlines()
        assert answer["code"] == 2, (argv, answer)
        # argparse's own errors come after its usage lines (the first starts with "usage:").
        error_lines = [line for line in lines if f"{prog}: error:" in line]
        usage = lines[: len(lines) - 1]
        assert len(error_lines) == 1 and lines[-1] == error_lines[0], (argv, lines)
        assert not usage or usage[0].startswith("usage:"), (argv, lines)
        assert lines[-1].startswith(f"{prog}: error: ") and message in lines[-1], (argv, lines[-1])
