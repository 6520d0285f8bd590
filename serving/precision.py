"""Reduced precision for tagging, used only once it agrees with float32 on real music.

* ``bfloat16``: the export's OpenVINO model (``model.xml``) on a CPU with bfloat16 units
  (OpenVINO's ``BF16`` capability: AVX-512 BF16 or AMX); elsewhere it would be emulated, slower
  than float32, so it is refused.
* ``int8``: the export's ONNX model (``model.onnx``) quantized after training by ONNX Runtime
  (static, QDQ, weights per channel), its activation ranges calibrated on windows of the
  recordings being tagged. The front end (STFT, mel filters, log) stays in float32: every
  convolution and matrix product up to the graph's first ``Log`` is excluded, since a spectrogram's
  range spans decades that 8 bits cannot hold; the network after it is quantized.

:func:`agreement` compares a reduced runtime with float32 window by window: the share of windows
whose most probable genre is the same, and the largest probability difference. ``serving.predict
--precision`` refuses a runtime below :data:`MIN_AGREEMENT`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data.errors import InputError, install_extra
from serving.decoding import Decoded, WindowPlan, windows_of
from serving.runtimes import OnnxRuntime, OpenVINORuntime, Runtime, openvino_module

PRECISIONS = ("float32", "bfloat16", "int8")
MIN_AGREEMENT = 0.99


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How a reduced-precision runtime compares with float32 on the same windows.

    Attributes:
        top1: Share of windows whose most probable genre is the same.
        max_difference: Largest absolute difference of any genre's probability.
        windows: Windows compared.
        files: Recordings they came from.
    """

    top1: float
    max_difference: float
    windows: int
    files: int

    def __str__(self) -> str:
        return (f"top-1 agreement {self.top1:.1%} with float32 on {self.windows} windows of {self.files} files, "
                f"largest probability difference {self.max_difference:.1e}")


def agreement(reference: Callable[[np.ndarray], np.ndarray], reduced: Callable[[np.ndarray], np.ndarray],
              windows: np.ndarray, files: int, batch: int = 32) -> Agreement:
    """Scores ``windows`` with both and compares them (see :class:`Agreement`)."""
    expected = np.concatenate([reference(windows[i:i + batch]) for i in range(0, len(windows), batch)])
    found = np.concatenate([reduced(windows[i:i + batch]) for i in range(0, len(windows), batch)])
    same = float(np.mean(expected.argmax(axis=1) == found.argmax(axis=1)))
    return Agreement(same, float(np.abs(expected - found).max()), len(windows), files)


def sample_windows(files: list[Path], window_plan: WindowPlan, count: int = 16) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Windows of up to ``count`` readable recordings spread over ``files``: alternately for the check and
    for calibration (distinct recordings; a library of one recording calibrates on the one it checks on),
    and how many recordings each came from.

    Returns:
        ``(calibration, check, calibration_files, check_files)``.
    """
    picks = [files[i] for i in np.unique(np.linspace(0, len(files) - 1, min(count * 2, len(files))).astype(int))]
    sets: tuple[list, list] = ([], [])
    used = [0, 0]
    for path in picks:
        if used[0] + used[1] >= count:
            break
        try:
            windows = [item for item in windows_of(path, window_plan) if not isinstance(item, Decoded)]
        except InputError:
            continue
        side = (used[0] + used[1] + 1) % 2  # the first recording is checked on
        sets[side].extend(windows)
        used[side] += 1
    if not sets[1]:
        raise InputError("no readable recording to check a reduced precision on; tag in float32")
    calibration = np.concatenate(sets[0]) if sets[0] else np.concatenate(sets[1])
    return calibration, np.concatenate(sets[1]), used[0], used[1]


def checked_runtime(predictor, precision: str, files: list[Path], window_plan: WindowPlan) -> tuple[Runtime, Agreement]:
    """``predictor``'s export in ``precision``, once it agrees with float32 on windows of ``files``.

    Calibration (int8) and the check use distinct recordings spread over ``files`` (up to 8 windows
    each, spread over each recording).

    Raises:
        InputError: when it cannot run here, or agrees on fewer than :data:`MIN_AGREEMENT` of the
            windows (the message gives the figures).
    """
    sample = dataclasses.replace(window_plan, max_windows=8)
    calibration, check_windows, _, checked = sample_windows(files, sample)
    runtime = reduced_runtime(predictor.folder, precision, calibration)
    found = agreement(predictor.runtime.probabilities, runtime.probabilities, check_windows, checked)
    if found.top1 < MIN_AGREEMENT:
        raise InputError(f"--precision {precision} refused: {found}, below {MIN_AGREEMENT:.0%}; tag in float32")
    return runtime, found


def reduced_runtime(folder: Path, precision: str, calibration: np.ndarray) -> Runtime:
    """The export in ``folder`` in ``precision`` (``bfloat16`` or ``int8``).

    Args:
        folder: The export's version folder (it holds ``model.xml`` or ``model.onnx``).
        precision: ``bfloat16`` or ``int8``.
        calibration: ``[n, window]`` real windows for int8's activation ranges.

    Raises:
        InputError: naming what is missing: the format's file in the export, its runtime, or the
            CPU's bfloat16 units.
    """
    if precision == "bfloat16":
        return _bfloat16(folder)
    if precision == "int8":
        return _int8(folder, calibration)
    raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision}")


def _needs(folder: Path, name: str, extra: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise InputError(f"{folder} has no {name}, which {extra} precision runs: export it with python -m "
                         f"zoo.evaluate ... --formats savedmodel,{'openvino' if name == 'model.xml' else 'onnx'}")
    return path


def _bfloat16(folder: Path) -> Runtime:
    try:
        openvino = openvino_module()
    except ImportError:
        raise InputError("--precision bfloat16 runs in OpenVINO, not installed: " + install_extra("openvino")) from None
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" not in capabilities:
        raise InputError("--precision bfloat16: this CPU has no bfloat16 units (its capabilities: "
                         f"{', '.join(capabilities)}), so bfloat16 would be slower than float32; use float32 or int8")
    return OpenVINORuntime(_needs(folder, "model.xml", "bfloat16"), precision="bf16")


def _int8(folder: Path, calibration: np.ndarray) -> Runtime:
    try:
        import onnx
        from onnxruntime import quantization
    except ImportError:
        raise InputError("--precision int8 runs in ONNX Runtime, not installed: " + install_extra("onnx")) from None
    source = _needs(folder, "model.onnx", "int8")
    model = onnx.load(str(source))
    front_end = _up_to_first_log(model)
    (waveform,) = [i.name for i in model.graph.input]

    class Windows(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{waveform: calibration[i:i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="gtzan-int8-") as scratch, _quiet_root_logger():
        target = Path(scratch) / "model.int8.onnx"
        quantization.quantize_static(
            str(source), str(target), Windows(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=sorted(front_end))
        runtime = OnnxRuntime(target)  # the session holds the model: the file may go
    runtime.name += " (int8)"
    return runtime


@contextlib.contextmanager
def _quiet_root_logger():
    """ONNX Runtime's quantizer advises through the root logger; its advice is not the user's to act on."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _up_to_first_log(model) -> set[str]:
    """The names of the nodes that the graph's first ``Log`` depends on (the front end), and its own."""
    producers = {output: node for node in model.graph.node for output in node.output}
    logs = [node for node in model.graph.node if node.op_type == "Log"]
    if not logs:
        return set()
    front, stack = set(), [logs[0]]
    while stack:
        node = stack.pop()
        if node.name in front:
            continue
        front.add(node.name)
        stack.extend(producers[name] for name in node.input if name in producers)
    return front
