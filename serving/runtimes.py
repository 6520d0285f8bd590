"""The runtimes that run an exported model, one per format, behind one call: windows in, probabilities out.

* SavedModel: TensorFlow (``serving_default``, which also takes whole recordings of any length);
* ONNX (``model.onnx``): ONNX Runtime;
* LiteRT (``model.tflite``): LiteRT's interpreter (``ai-edge-litert``);
* OpenVINO (``model.xml`` and ``model.bin``): OpenVINO's CPU plugin, in float32 (on a CPU with
  bfloat16 units it would otherwise run in bfloat16, about 1e-2 from the other formats).

The portable formats take a fixed-length window, float32 ``[batch, window]`` at 22050 Hz, and return
the probabilities of each window; a recording's are the mean of its windows' (``serving.prediction``
cuts them). Every exported model is a program for its runtime's parser and kernels: load only
models you trust.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from data.errors import install_extra, one_line
from serving.config import FORMAT_RUNTIMES, PredictError, format_of
from zoo.builders import build_model
from zoo.config import ModelConfig


class Runtime:
    """An exported model loaded in its runtime.

    Attributes:
        format: One of ``serving.config.FORMATS``.
        name: The runtime and its version, e.g. ``ONNX Runtime 1.32.0``.
        window: The samples of one window the model takes (None: any length, a SavedModel
            without its description).
    """

    format = ""
    name = ""
    window: int | None = None

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """``[n, window]`` float32 waveforms -> ``[n, genres]`` probabilities."""
        raise NotImplementedError


class SavedModelRuntime(Runtime):
    """A SavedModel's ``serving_default`` in TensorFlow."""

    format = "savedmodel"

    def __init__(self, path: Path, window: int | None):
        try:
            self.serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        except Exception as error:  # TensorFlow raises many types for a damaged or foreign file
            raise PredictError(f"{path} is not a usable SavedModel ({type(error).__name__}: "
                               f"{one_line(error)})") from None
        arguments = self.serve.structured_input_signature[1]
        if set(arguments) != {"waveform"} or not {"probabilities", "genres"} <= set(self.serve.structured_outputs):
            raise PredictError(f"{path} is not a genre model of this toolkit: its serving_default takes "
                               f"{sorted(arguments)} and returns {sorted(self.serve.structured_outputs)}; expected "
                               "waveform -> probabilities, genres")
        self.name = f"TensorFlow {tf.__version__} (SavedModel)"
        self.window = window

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return self.serve(waveform=tf.constant(windows))["probabilities"].numpy()


class OnnxRuntime(Runtime):
    """``model.onnx`` in ONNX Runtime (thread-safe: one session serves concurrent calls)."""

    format = "onnx"

    def __init__(self, path: Path):
        import onnxruntime
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (waveform,) = self.session.get_inputs()
        self.input = waveform.name
        self.window = waveform.shape[1]
        self.name = f"ONNX Runtime {onnxruntime.__version__}"

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: windows})[0]


class LiteRTRuntime(Runtime):
    """``model.tflite`` in LiteRT's interpreter, on every core (one call at a time: the interpreter
    is not thread-safe)."""

    format = "litert"

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)
        self.runner = self.interpreter.get_signature_runner()
        (self.input,) = self.interpreter.get_signature_list()["serving_default"]["inputs"]
        self.window = int(self.interpreter.get_input_details()[0]["shape"][1])
        self.lock = threading.Lock()
        self.name = f"LiteRT {importlib.metadata.version('ai-edge-litert')}"

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        with self.lock:  # the runner resizes the input to the batch, then runs
            (outputs,) = self.runner(**{self.input: windows}).values()
        return outputs


def openvino_module():
    """OpenVINO, an optional extra: imported where it is used (the runtime, the export, the benchmark), here only."""
    import openvino

    return openvino


class OpenVINORuntime(Runtime):
    """``model.xml`` (with ``model.bin`` beside it) in OpenVINO on the CPU, in float32 (an infer
    request per call: concurrent calls are safe)."""

    format = "openvino"

    def __init__(self, path: Path, precision: str = "f32"):
        openvino = openvino_module()
        core = openvino.Core()
        self.compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision})
        self.window = self.compiled.inputs[0].get_partial_shape()[1].get_length()
        self.name = f"OpenVINO {openvino.__version__.split('-')[0]}" + ("" if precision == "f32" else f" ({precision})")

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return self.compiled.create_infer_request().infer({0: windows})[0]


class HeadRuntime(Runtime):
    """``head.npz``: a genre head's weights alone, on pretrained backbones built from their own released
    weights (fetched into the cache on first use, or given by ``--weights``); the model runs in Keras.

    The export's description (``assets.extra/gtzan.json``) holds the model's configuration; the
    file holds the model's trainable variables by their paths, and nothing else.
    """

    format = "head"

    def __init__(self, path: Path, about: dict):
        try:
            config = ModelConfig.from_dict(about["model_config"])
            with np.load(path, allow_pickle=False) as stored:
                weights = {key: stored[key] for key in stored.files}
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise PredictError(f"{path} is not a usable head export of this toolkit ({one_line(error)})") from None
        self.model = build_model(config)  # raises InputError naming the weights to get, if they are missing
        variables = {variable.path: variable for variable in self.model.trainable_variables}
        if set(variables) != set(weights) or any(variables[k].shape != weights[k].shape for k in weights):
            raise PredictError(f"{path} holds other weights than the head of {config.name} takes")
        for key, value in weights.items():
            variables[key].assign(value)
        self.window = int(self.model.input_shape[1])
        self.name = f"Keras {keras_version()} (a head on pretrained backbones)"
        self.lock = threading.Lock()

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        with self.lock:
            return np.asarray(self.model.predict_on_batch(windows))


def keras_version() -> str:
    """The installed Keras' version."""
    return importlib.metadata.version("keras")


def load_runtime(path: Path, window: int | None = None, about: dict | None = None) -> Runtime:
    """The exported model at ``path`` (a SavedModel folder or a model file) in its runtime.

    Args:
        path: From ``serving.config.find_export``.
        window: The window the SavedModel's description gives (the portable formats hold their own).
        about: The export's description (a head export's model configuration is there).

    Raises:
        PredictError: when the format's runtime is not installed, or the file is not a model of
            this toolkit that the runtime can load.
    """
    name = format_of(path)
    if name == "savedmodel":
        return SavedModelRuntime(path, window)
    if name == "head":
        return HeadRuntime(path, about or {})
    if importlib.util.find_spec(FORMAT_RUNTIMES[name]) is None:
        raise PredictError(f"{path.name} needs {FORMAT_RUNTIMES[name]} to run, not installed: "
                           + install_extra(name))
    try:
        runtime = {"onnx": OnnxRuntime, "litert": LiteRTRuntime, "openvino": OpenVINORuntime}[name](path)
    except Exception as error:  # each runtime raises its own types for a damaged or foreign file
        raise PredictError(f"{path} is not a usable {name} model ({type(error).__name__}: {one_line(error)})") from None
    if not isinstance(runtime.window, int) or runtime.window < 1:
        raise PredictError(f"{path} is not a genre model of this toolkit: it takes {runtime.window} samples, "
                           "expected a fixed window")
    return runtime
