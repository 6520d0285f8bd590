"""What the serving commands resolve and check before a model loads (no TensorFlow here).

The trained model a user names for evaluation (:func:`find_target`), the export to predict with
or serve (:func:`find_export`), the web app's limits (:class:`Limits`) and the pretrained taggers
``serving.embed`` takes. Commands check their flags against these first, so a wrong path or
value is answered at once; the libraries that load the models (``serving.evaluation``,
``serving.prediction``, ``serving.web``, ``serving.embedding``) use the same functions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

from data.errors import EvaluationError, InputError, UsageError, install_extra
from training.runstore import RunStore, rank, read_json
from tuning.spaces import SPACES
from zoo.families.pretrained import BACKBONE_NAMES, BACKBONES

# What an export says about itself, beside its graph (written by serving.export).
ABOUT_FILE = Path("assets.extra") / "gtzan.json"
# Defaults of the app's limits (documented in docs/serving.md and --help).
MAX_SECONDS = 1800.0  # a whole album side or a DJ mix
MAX_UPLOAD_MB = 100.0
# How to train a model worth asking about real music (said to the users of a synthetic one).
TRAIN_ON_GTZAN = ("python -m tuning.train bncnn-32-64-128-256 --data-dir ~/datasets/gtzan, then "
                  "python -m zoo.evaluate runs/train/trials/bncnn-32-64-128-256")
# What to install for the web app (serving.web), said wherever it is missing.
WEB_STACK = install_extra("app")
# The host names the web app always answers (it listens on 127.0.0.1 unless told otherwise).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The pretrained backbones serving.embed takes: every one the zoo has.
TAGGER_NAMES = tuple(BACKBONES)
# The formats an export can be written in, and the file each writes in the version folder (the
# SavedModel is the folder itself: saved_model.pb and its variables).
FORMAT_FILES = {"savedmodel": "saved_model.pb", "onnx": "model.onnx", "litert": "model.tflite",
                "openvino": "model.xml", "head": "head.npz"}
FORMATS = tuple(FORMAT_FILES)
# The models shipped with the toolkit, by name: "head" exports (a genre head's weights alone) of the
# recommended configuration, on pretrained backbones built from their own released weights.
READY_MODELS = {"ready": Path(__file__).resolve().parent / "ready"}
# What --model takes, for every command that loads an export.
MODEL_HELP = ("exported model: a SavedModel folder, a model.onnx, model.tflite, model.xml or head.npz, a folder "
              f"of versions, or a model shipped with the toolkit ({', '.join(READY_MODELS)}) (default: the newest "
              "under exports/); only models you trust")
# The runtime of each portable format, and what writing it needs beyond TensorFlow (module names): each
# is the optional dependency (setup.cfg's extras) named after the format. An export is checked in its runtime.
FORMAT_RUNTIMES = {"onnx": "onnxruntime", "litert": "ai_edge_litert", "openvino": "openvino"}
FORMAT_NEEDS = {"savedmodel": (), "onnx": ("tf2onnx", "onnx", "onnxruntime"), "litert": ("ai_edge_litert",),
                "openvino": ("openvino",), "head": ()}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the web app takes: per request, and in all.

    Attributes:
        max_seconds: The longest recording, in seconds.
        max_upload_mb: The largest upload, in MB (10^6 bytes).
        max_concurrent: Recordings received and scored at once (None: the machine's cores).
        max_queue: Requests that may wait for a scoring slot beyond those (None: 8 per concurrent
            scoring); a request beyond the queue is answered 503 with ``Retry-After`` at once.
        queue_timeout_s: The longest a request waits in the queue before it is answered 503.
        max_connections: Open connections at once; beyond, uvicorn answers 503.
        body_timeout_s: Seconds a request body may stop arriving before the request is dropped.
        header_timeout_s: Seconds a new connection has to send its whole request head.
        linger_mb: After an answer sent before the whole body was read (413, 400, 503, 408), how much
            more of the body is read and discarded so that a client that sends first still reads the
            answer (MB); past it, the connection is closed.
        linger_s: The same in seconds: the longest that discarding goes on.
    """

    max_seconds: float = MAX_SECONDS
    max_upload_mb: float = MAX_UPLOAD_MB
    max_concurrent: int | None = None
    max_queue: int | None = None
    queue_timeout_s: float = 60.0
    max_connections: int = 128
    body_timeout_s: float = 30.0
    header_timeout_s: float = 30.0
    linger_mb: float = 1024.0
    linger_s: float = 30.0

    def __post_init__(self):
        if not self.max_seconds > 0 or not self.max_upload_mb > 0:
            raise UsageError(f"--max-seconds and --max-upload-mb must be positive, got {self.max_seconds:g}, "
                             f"{self.max_upload_mb:g}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UsageError(f"--max-concurrent must be at least 1, got {self.max_concurrent}")
        if self.max_queue is not None and self.max_queue < 0:
            raise UsageError(f"--max-queue must be 0 or more, got {self.max_queue}")
        if not self.queue_timeout_s > 0:
            raise UsageError(f"--queue-timeout must be positive, got {self.queue_timeout_s:g}")
        if self.max_connections < 1 or not self.body_timeout_s > 0 or not self.header_timeout_s > 0:
            raise UsageError(f"--client-timeout and the connection cap must be positive, got {self.body_timeout_s:g}, "
                             f"{self.max_connections}")
        if self.linger_mb < 0 or self.linger_s < 0:
            raise UsageError(f"--linger-mb and --linger-seconds must be 0 or more, got {self.linger_mb:g}, "
                             f"{self.linger_s:g}")

    @property
    def concurrent(self) -> int:
        """Recordings scored at once: ``max_concurrent``, else the machine's cores."""
        return self.max_concurrent or os.cpu_count() or 1

    @property
    def queue(self) -> int:
        """Requests that may wait for a slot: ``max_queue``, else 8 per concurrent scoring."""
        return self.max_queue if self.max_queue is not None else 8 * self.concurrent


def synthetic_warning(data: dict | None) -> str | None:
    """The one-line warning for a model trained on synthetic music (``data`` as its run or export
    records it), else None."""
    if not (data or {}).get("synthetic"):
        return None
    return ("this model was trained on synthetic music, not on GTZAN: its answers on real recordings mean nothing. "
            f"Train one on GTZAN: {TRAIN_ON_GTZAN}")


def check_web_stack() -> None:
    """Raises UsageError, with the line that installs them, unless FastAPI, uvicorn and
    python-multipart are installed.

    Looks for them without importing them (that takes a second), so ``serving.app`` says so
    before a model loads.
    """
    missing = [name for name in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"the web app needs {', '.join(missing)}: {WEB_STACK}")


class PredictError(InputError):
    """A model folder that cannot be used, with a one-line reason."""


def parse_formats(text: str) -> tuple[str, ...]:
    """``--formats``: a comma-separated list of :data:`FORMATS`, each once, in the order given.

    Raises:
        UsageError: naming the wrong or repeated format and the accepted ones.
    """
    formats = tuple(part.strip() for part in text.split(","))
    for name in formats:
        if name not in FORMATS:
            raise UsageError(f"--formats: unknown format {name!r}; expected a comma-separated list of "
                             f"{', '.join(FORMATS)}")
    if len(set(formats)) != len(formats):
        raise UsageError(f"--formats names a format twice: {text}")
    return formats


def check_format_installed(name: str) -> None:
    """Raises UsageError, with the line that installs it, unless what ``name`` needs to be written and
    run is installed (looked for without importing it)."""
    missing = [module for module in FORMAT_NEEDS[name] if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(f"the {name} format needs {', '.join(missing)}, not installed: "
                         + install_extra(name))


def format_of(path: Path) -> str:
    """The format of an export: ``savedmodel`` for a folder, else the one its file name says (``head`` for a
    ``.npz``: a genre head's weights on pretrained backbones).

    Raises:
        PredictError: for a file that is none of the formats.
    """
    if path.is_dir():
        return "savedmodel"
    for name, file in FORMAT_FILES.items():
        if name != "savedmodel" and path.suffix == Path(file).suffix:
            return name
    raise PredictError(f"{path} is not an exported model: expected a SavedModel folder or a "
                       f"{', '.join(Path(f).suffix for n, f in FORMAT_FILES.items() if n != 'savedmodel')} file")


def _models_in(version: Path) -> list[Path]:
    """The exported models of a version folder, SavedModel first, in the order of :data:`FORMATS`."""
    return [version if name == "savedmodel" else version / file for name, file in FORMAT_FILES.items()
            if (version / file).is_file()]


def find_export(model: str | None, exports: str = "exports") -> Path:
    """The exported model to use, as a path: a SavedModel folder, or a ``.onnx``, ``.tflite`` or
    OpenVINO ``.xml`` file.

    ``model`` may be such a folder or file, a version folder (its SavedModel, else its only other
    format), a folder of numbered versions (the highest), or the name of a model shipped with the
    toolkit (:data:`READY_MODELS`). Without ``model``: the newest version folder of this toolkit (one
    holding its ``assets.extra/gtzan.json``) under ``exports``, as above.

    Raises:
        PredictError: if no exported model is found, or a version folder holds several formats but no
            SavedModel (the file to use must then be named).
    """
    if model in READY_MODELS:
        model = str(READY_MODELS[model])
    if model is None:
        # Only this toolkit's exports (they describe themselves): no other model is loaded unasked.
        found = [p.parent.parent for p in Path(exports).glob(f"*/*/{ABOUT_FILE}") if _models_in(p.parent.parent)]
        if not found:
            raise PredictError(f"no exported model under {exports}/; run python -m zoo.evaluate best, or pass --model")
        return _one_model(max(found, key=lambda p: (p / ABOUT_FILE).stat().st_mtime))
    path = Path(model)
    if path.is_file():
        format_of(path)
        return path
    if _models_in(path):
        return _one_model(path)
    versions = [p for p in path.glob("*") if p.name.isdigit() and _models_in(p)]
    if versions:
        return _one_model(max(versions, key=lambda p: int(p.name)))
    raise PredictError(f"no exported model in {path}; expected a SavedModel folder (saved_model.pb), a model.onnx, "
                       "model.tflite or model.xml, or a folder of numbered versions of one")


def _one_model(version: Path) -> Path:
    """The model of a version folder: its SavedModel, else its only other format."""
    models = _models_in(version)
    if models[0] == version or len(models) == 1:
        return models[0]
    raise PredictError(f"{version} holds {', '.join(p.name for p in models)}; pass the one to use as --model")


def find_target(target: str, runs: Path, space: str | None = None) -> tuple[Path, dict]:
    """Resolves ``target`` to ``(model.keras path, saved config or {})``.

    ``best`` is the best trial of all searches under ``runs`` (highest track-level validation
    accuracy, then lowest validation loss), or of one ``space``.

    Raises:
        EvaluationError: if nothing usable is found.
    """
    if space is not None and target != "best":
        raise EvaluationError("--space applies to the target 'best' only")
    if target == "best":
        if space is not None and space not in SPACES:
            raise EvaluationError(f"unknown space {space!r}; expected one of {', '.join(SPACES)}")
        folders = [runs / space] if space else sorted(p.parent.parent for p in runs.glob("*/best/config.json"))
        found = [best for folder in folders if (best := RunStore(folder).read_best()) is not None]
        if not found:
            where = runs / space / "best" if space else f"{runs}/*/best"
            incomplete = " (best/ is there but lacks model.keras or config.json)" if space and (runs / space / "best").is_dir() else ""
            raise EvaluationError(f"no runs found in {where}{incomplete}; run python -m tuning.search first or pass --runs")
        by_metrics = {id(config["metrics"]): (path, config) for path, config in found}
        best = rank([config["metrics"] for _, config in found])[0]
        return by_metrics[id(best)]
    path = Path(target)
    if path.is_dir():
        check_finished(path)
        if not (path / "model.keras").is_file():
            raise EvaluationError(f"{path} holds no model.keras; pass a trial folder with a saved model "
                                  "(such as runs/<space>/best), a .keras file or 'best'")
        path = path / "model.keras"
    if path.is_file() and path.suffix != ".keras":
        raise EvaluationError(f"{target} is not a model: expected 'best', a trial folder or a .keras file "
                              "(to predict the genres of audio files, use python -m serving.predict)")
    if not path.is_file():
        raise EvaluationError(f"evaluation target not found: {target}; expected 'best', a trial folder or a .keras file")
    beside = path.parent / "config.json"
    return path, read_json(beside) if beside.is_file() else {}


def check_finished(folder: Path) -> None:
    """Raises EvaluationError if ``folder`` is a trial folder whose training did not finish.

    A trial folder's ``record.json`` is written last, after its model: without it (or with a
    status other than ``completed``), what the folder holds may not be one training's.
    ``best/`` folders hold their metrics in ``config.json`` instead.
    """
    config_path, record_path = folder / "config.json", folder / "record.json"
    if not config_path.is_file() or "metrics" in read_json(config_path):
        return
    if not record_path.is_file():
        raise EvaluationError(f"{folder} is incomplete: it has no record.json, so its training did not finish; "
                              "train it again")
    record = read_json(record_path)
    if record.get("status") != "completed":
        raise EvaluationError(f"{record_path} says the training {record.get('status', 'did not finish')}"
                              f"{': ' + record['error'] if record.get('error') else ''}; train it again")


def backbone_names(name: str) -> tuple[str, ...]:
    """The pretrained backbones ``name`` stands for: one (``musicnn-msd``), several joined by '+'
    (``musicnn-msd+efficientat-mn04``), or those of a shipped model (``ready``).

    Raises:
        ValueError: naming what is not a backbone, and the accepted names.
    """
    if name in READY_MODELS:
        described = read_json(READY_MODELS[name] / "1" / ABOUT_FILE)
        return tuple(BACKBONE_NAMES[t] for t in described["model_config"]["tagger"].split("+"))
    names = tuple(name.split("+"))
    for part in names:
        if part not in TAGGER_NAMES:
            raise ValueError(f"unknown pretrained backbone {part!r}; expected one of {', '.join(TAGGER_NAMES)} (or "
                             f"several joined by '+', or {', '.join(READY_MODELS)})")
    return names
