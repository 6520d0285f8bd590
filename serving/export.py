"""Export a trained model as a TensorFlow SavedModel for TF Serving.

The ``serving_default`` signature takes ``waveform``, float32 ``[batch, samples]`` at
22050 Hz, of any length: shorter than one window, it is zero-padded to one window; longer,
it is cut into non-overlapping windows and, when samples are left over, one more window aligned
to its end (as evaluation cuts clips: ``data.pipeline.covering_windows``), the model runs on
every window and the probabilities are averaged per clip. It returns
``probabilities`` ``[batch, n_genres]`` and ``genres`` ``[batch, n_genres]`` (the class names,
repeated per row so that every output has the batch dimension TF Serving's row format needs).

Input rules: samples are audio in [-1, 1], and values outside are clipped to it (a sample of
1e30 would otherwise overflow the spectrogram and make every probability NaN); a NaN or
infinite sample, or an empty batch, is an error (``InvalidArgumentError`` naming the problem).

:func:`export_model` writes the other formats beside it in the same version folder
(``model.onnx``, ``model.tflite``, ``model.xml`` with ``model.bin``): each takes one window,
float32 ``waveform`` ``[batch, window]``, and returns each window's probabilities; the caller cuts a
recording into windows as above and averages them (``serving.prediction`` does). Their front end
computes the STFT as a convolution by the DFT basis (``data.layers.stft_power``), which every
format converts; each is checked in its runtime against the model before it is kept. A model on
frozen pretrained backbones also exports as ``head.npz`` (:func:`export_head`): its head's weights
alone, a few kilobytes, rebuilt on the backbones' own released weights where it runs.

Every format is written by TensorFlow. A model trained under another Keras backend (JAX,
PyTorch) goes through its portable ``.keras`` file to a TensorFlow process, which checks that it
gives the model's own answers before it exports it (:func:`export_model`).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.catalogue import SAMPLE_RATE
from data.config import file_safe
from data.errors import EvaluationError, one_line
from data.pipeline import average_per_clip, covering_windows
from data.processes import last_error_line, run_python
from serving.config import ABOUT_FILE, FORMAT_FILES, check_format_installed
from serving.runtimes import load_runtime, openvino_module
from training.runstore import read_json, write_arrays, write_json
from zoo import load_model
from zoo.config import ModelConfig
from zoo.families.pretrained import frozen_features

# How far a converted model's probabilities may be from the model's own (float32 rounding is ~1e-6).
PARITY_TOLERANCE = 1e-4
# The folder that holds the packages, for the TensorFlow process that exports from other backends.


def next_version_dir(exports_dir: str | Path, model_name: str) -> Path:
    """``<exports_dir>/<model_name>/<N>``, N one more than the highest version there (from 1)."""
    base = Path(exports_dir) / file_safe(model_name)
    versions = [int(p.name) for p in base.glob("*") if p.is_dir() and p.name.isdigit()]
    return base / str(max(versions, default=0) + 1)


def export_saved_model(model: keras.Model, genres: list[str] | tuple[str, ...], path: str | Path,
                       about: dict | None = None) -> Path:
    """Writes ``model`` as a SavedModel with the clip-level ``serving_default`` signature.

    Beside the graph, ``assets.extra/gtzan.json`` (a folder TF Serving leaves alone) says what
    the model is: its window in samples, the sample rate, the genres in output order and
    ``about`` (model name, training data, test metrics), for the fronts that show it.

    Args:
        model: A zoo model taking ``[batch, window]`` waveforms.
        genres: Class names in label order.
        path: The version folder to write (e.g. from :func:`next_version_dir`).
        about: What to say about the model (JSON-ready).

    Returns:
        ``path``.
    """
    window = int(model.input_shape[1])
    names = tf.constant(list(genres))

    def serve(waveform):
        batch = tf.shape(waveform)[0]
        checks = [tf.debugging.assert_positive(batch, message="waveform: the batch is empty"),
                  tf.debugging.assert_all_finite(waveform, "waveform: NaN or infinite samples")]
        with tf.control_dependencies(checks):
            waveform = tf.clip_by_value(waveform, -1.0, 1.0)
        framed = covering_windows(waveform, window)  # [batch, windows, window]
        count = tf.shape(framed)[1]
        windows = tf.reshape(framed, [batch * count, window])
        probabilities = model(windows, training=False)
        clip_index = tf.repeat(tf.range(batch), count)
        probabilities = average_per_clip(probabilities, clip_index, batch)
        return {"probabilities": probabilities, "genres": tf.tile(names[None], [batch, 1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve,
                         input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    archive.write_out(str(path), verbose=False)
    (path / "assets").mkdir(exist_ok=True)
    (path / "assets" / "genres.txt").write_text("\n".join(genres) + "\n")
    describe(path, window, genres, about)
    return path


def describe(path: Path, window: int, genres: list[str] | tuple[str, ...], about: dict | None) -> None:
    """Writes ``assets.extra/gtzan.json``: the window in samples, the sample rate, the genres in output order
    and ``about``."""
    write_json(path / ABOUT_FILE, {"window_samples": window, "sample_rate": SAMPLE_RATE, "genres": list(genres),
                                   **(about or {})})


@contextlib.contextmanager
def portable_front_ends(model: keras.Model):
    """Within the block, the model's spectrogram layers compute the STFT by convolution (``portable``),
    so a model traced there converts to formats without TensorFlow's complex FFT."""
    layers = [layer for layer in model._flatten_layers() if hasattr(layer, "portable")]
    for layer in layers:
        layer.portable = True
    try:
        yield
    finally:
        for layer in layers:
            layer.portable = False


def reference_windows(window: int) -> np.ndarray:
    """Windows an export is checked on: music-like tones, noise, a clipped square wave and silence.

    The tones carry a noise floor 60 dB down, as recordings do: the bands of a pure tone 130 dB
    below it hold nothing but float32 rounding, which every FFT (and the DFT of the portable front
    end) rounds its own way.
    """
    rng = np.random.default_rng(0)
    t = np.arange(window) / SAMPLE_RATE
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    square = np.clip(4 * np.sign(np.sin(2 * np.pi * 110 * t)), -1, 1) * 0.9
    floor = rng.normal(0, 1e-3, (2, window))
    return np.stack([chord + floor[0], rng.normal(0, 0.1, window), square + floor[1],
                     np.zeros(window)]).astype(np.float32)


def _convert(model: keras.Model, name: str, path: Path, window: int) -> None:
    """Writes the portable ``model`` (traced within :func:`portable_front_ends`) as format ``name`` at ``path``,
    its input named ``waveform`` and its output ``probabilities`` (LiteRT's signature says ``output_0``)."""
    signature = [tf.TensorSpec([None, window], tf.float32, name="waveform")]
    if name == "litert":
        model.export(str(path), format="litert", input_signature=signature, verbose=False)
    elif name == "onnx":
        import onnx

        model.export(str(path), format="onnx", input_signature=signature, verbose=False)
        graph = onnx.load(str(path))
        old = graph.graph.output[0].name  # the converter names it after the graph's tensor
        for node in graph.graph.node:
            node.output[:] = ["probabilities" if output == old else output for output in node.output]
        graph.graph.output[0].name = "probabilities"
        onnx.save(graph, str(path))
    else:  # OpenVINO reads the SavedModel with its runtime's own TensorFlow front end (no converter tool)
        openvino = openvino_module()
        with tempfile.TemporaryDirectory(prefix="gtzan-openvino-") as work:
            model.export(work + "/saved_model", format="tf_saved_model", input_signature=signature, verbose=False)
            converted = openvino.Core().read_model(work + "/saved_model")
            converted.outputs[0].get_tensor().set_names({"probabilities"})
            openvino.save_model(converted, str(path), compress_to_fp16=False)


def export_portable(model: keras.Model, name: str, folder: Path) -> dict:
    """Writes ``model`` (one window in, its probabilities out) in format ``name`` into ``folder`` and checks it.

    Returns:
        What the export's description says of it: file, input, output, and ``max_abs_diff``: the largest
        difference of its probabilities on :func:`reference_windows` from the Keras model's with the same
        front end (what the conversion changed; ``serving.bench --compare`` measures the difference from
        the SavedModel on real music).

    Raises:
        UsageError: when the format's converter or runtime is not installed.
        EvaluationError: when the conversion fails or gives other answers than the model.
    """
    check_format_installed(name)
    window = int(model.input_shape[1])
    path = folder / FORMAT_FILES[name]
    windows = reference_windows(window)
    try:
        with portable_front_ends(model):
            _convert(model, name, path, window)
            # What the conversion must reproduce: the same model, DFT front end included.
            expected = keras.ops.convert_to_numpy(model(windows, training=False))
        runtime = load_runtime(path)
    except Exception as error:  # the converters raise many types; say which format and why, in one line
        raise EvaluationError(f"exporting {name} failed: {type(error).__name__}: {one_line(error)}") from None
    difference = float(np.abs(runtime.probabilities(windows) - expected).max())
    if not difference <= PARITY_TOLERANCE:
        raise EvaluationError(f"the {name} export of the model gives other probabilities than the model (by "
                              f"{difference:.2g}, more than {PARITY_TOLERANCE:g}); it was not kept")
    return {"file": path.name, "runtime": runtime.name.split(" (")[0],
            "input": {"name": "waveform", "dtype": "float32", "shape": [None, window]},
            "output": {"name": _output_name(runtime), "shape": [None, int(model.output_shape[-1])]},
            "max_abs_diff": difference}


def export_head(model: keras.Model, folder: Path, about: dict | None) -> dict:
    """Writes the head of a model on frozen pretrained backbones (``head.npz``: its trainable variables
    by path, nothing else) into ``folder`` and checks it: rebuilt from its configuration with the
    backbones' own released weights, it must give the model's probabilities.

    Raises:
        EvaluationError: for a model whose backbones are not frozen pretrained ones (its weights are
            not all public), or a head that does not give the model's answers.
    """
    config = ModelConfig.from_dict((about or {}).get("model_config") or {"family": "dense"})
    if frozen_features(config) is None:
        raise EvaluationError(f"the head format holds a head on frozen pretrained backbones (train=head or "
                              f"backend, no augmentation before them); {config.name} is not one")
    path = folder / FORMAT_FILES["head"]
    arrays = {variable.path: keras.ops.convert_to_numpy(variable) for variable in model.trainable_variables}
    write_arrays(path, **arrays)
    windows = reference_windows(int(model.input_shape[1]))
    expected = keras.ops.convert_to_numpy(model(windows, training=False))
    try:
        runtime = load_runtime(path, about=about)
        difference = float(np.abs(runtime.probabilities(windows) - expected).max())
    except Exception as error:  # the runtime builds the backbones: report which step failed, in one line
        path.unlink(missing_ok=True)
        raise EvaluationError(f"exporting head failed: {type(error).__name__}: {one_line(error)}") from None
    if not difference <= PARITY_TOLERANCE:
        path.unlink(missing_ok=True)
        raise EvaluationError(f"the head export gives other probabilities than the model (by {difference:.2g}); "
                              "it was not kept")
    return {"file": path.name, "runtime": runtime.name.split(" (")[0], "backbones": config.tagger,
            "input": {"name": "waveform", "dtype": "float32", "shape": [None, int(model.input_shape[1])]},
            "output": {"name": "probabilities", "shape": [None, int(model.output_shape[-1])]},
            "max_abs_diff": difference}


def _output_name(runtime) -> str:
    """The name a caller reads the probabilities by (LiteRT's signature calls it ``output_0``)."""
    return "output_0" if runtime.format == "litert" else "probabilities"


def export_model(model: keras.Model, genres: list[str] | tuple[str, ...], path: str | Path,
                 formats: tuple[str, ...] = ("savedmodel",), about: dict | None = None) -> Path:
    """Writes ``model`` in each of ``formats`` into the version folder ``path``, with one description.

    The SavedModel (:func:`export_saved_model`) takes whole recordings; the others take windows
    (:func:`export_portable`). ``assets.extra/gtzan.json`` lists each format written, its file, input
    and output, and how to average windows. A format that fails leaves the folder without it
    (nothing half-written) and raises.

    Under another Keras backend than TensorFlow, the model is saved as a ``.keras`` file and a
    TensorFlow process loads it, checks it gives this model's probabilities on
    :func:`reference_windows` (within :data:`PARITY_TOLERANCE`) and exports it.

    Returns:
        ``path``.
    """
    path = Path(path)
    if keras.backend.backend() != "tensorflow":
        return _export_through_tensorflow(model, genres, path, formats, about)
    window = int(model.input_shape[1])
    if "savedmodel" in formats:
        export_saved_model(model, genres, path, about)
    else:
        path.mkdir(parents=True, exist_ok=True)
        describe(path, window, genres, about)
    described = {}
    for name in formats:
        if name == "savedmodel":
            described[name] = {"file": ".", "signature": "serving_default", "input": {"name": "waveform",
                               "dtype": "float32", "shape": [None, None]}, "output": {"name": "probabilities",
                               "shape": [None, len(genres)]}}
            continue
        try:
            described[name] = export_head(model, path, about) if name == "head" else export_portable(model, name, path)
        except Exception:
            for leftover in (path / FORMAT_FILES[name], (path / FORMAT_FILES[name]).with_suffix(".bin")):
                leftover.unlink(missing_ok=True)
            raise
    description = read_json(path / ABOUT_FILE)
    description["formats"] = described
    description["windows"] = (f"the portable formats take one window of {window} samples at {SAMPLE_RATE} Hz: cut a "
                              "recording into consecutive windows (the last one ending where the recording ends, a "
                              "recording shorter than a window zero-padded) and average their probabilities")
    write_json(path / ABOUT_FILE, description)
    return path


def _export_through_tensorflow(model: keras.Model, genres, path: Path, formats: tuple[str, ...],
                               about: dict | None) -> Path:
    """:func:`export_model` for a model of another backend: through its ``.keras`` file and a TensorFlow process."""
    for name in formats:
        check_format_installed(name)
    expected = keras.ops.convert_to_numpy(model(reference_windows(int(model.input_shape[1])), training=False))
    with tempfile.TemporaryDirectory(prefix="gtzan-export-") as work:
        work = Path(work)
        model.save(work / "model.keras")
        write_json(work / "request.json", {
            "model": str(work / "model.keras"), "genres": list(genres), "path": str(path), "formats": list(formats),
            "about": about, "backend": keras.backend.backend(), "expected": expected.tolist(),
            "answer": str(work / "answer.json")})
        code = "import sys; from serving.export import export_request; export_request(sys.argv[1])"
        done = run_python(code, str(work / "request.json"), backend="tensorflow")
        answer = read_json(work / "answer.json") if (work / "answer.json").is_file() else {}
    if answer.get("error"):
        raise EvaluationError(answer["error"])
    if done.returncode != 0 or not answer.get("path"):
        raise EvaluationError(f"exporting from {keras.backend.backend()} through TensorFlow failed: "
                              f"{last_error_line(done)}")
    return Path(answer["path"])


def export_request(request_file: str) -> None:
    """The TensorFlow side of an export from another backend (run in its own process).

    Reads the request :func:`export_model` wrote, loads the ``.keras`` file, checks it against the
    probabilities the model gave under its own backend, exports it and writes the answer file:
    ``{"path": ...}``, or ``{"error": one line}`` for a problem to report.
    """
    request = read_json(Path(request_file))
    answer = Path(request["answer"])
    try:
        model = load_model(request["model"])
        got = keras.ops.convert_to_numpy(model(reference_windows(int(model.input_shape[1])), training=False))
        difference = float(np.abs(got - np.asarray(request["expected"])).max())
        if not difference <= PARITY_TOLERANCE:
            raise EvaluationError(f"the model loaded under TensorFlow gives other probabilities than under "
                                  f"{request['backend']} (by {difference:.2g}, more than {PARITY_TOLERANCE:g}); "
                                  "nothing was exported")
        path = export_model(model, request["genres"], request["path"], tuple(request["formats"]), request["about"])
    except EvaluationError as error:
        write_json(answer, {"error": str(error)})
        return
    write_json(answer, {"path": str(path), "max_abs_diff": difference})
