"""A web page and a JSON API over one loaded model: the library behind ``python -m serving.app``.

Built on FastAPI (Starlette underneath, served by uvicorn): an upload arrives as a multipart
form, each request runs in the server's thread pool with the one model loaded at start-up, and
errors are answered as ``{"error": "one line"}`` with a 4xx status. The page
(``serving/static/index.html``) is plain HTML and JavaScript: it uploads a file or a microphone
recording to the same API that programs use and draws the answer.

* ``GET /``: the page.
* ``GET /api/health``: ``{"status": "ok", "model": ...}``.
* ``POST /api/predict`` with the audio file as the multipart field ``file``: ``{"model": ...,
  "seconds": ..., "genres": [best first], "probabilities": [theirs], "genre_order": [the
  model's], "window_seconds": ..., "windows": [{"start": s, "probabilities": [in genre_order]}]}``.

Nothing a client sends names a path or a model on the server; an upload is written to a private
temporary file only while it is decoded, and deleted before the answer goes out.
"""

# No "from __future__ import annotations": FastAPI reads the endpoints' annotations as objects.
import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile

from data.catalogue import SAMPLE_RATE
from data.errors import AudioError, UsageError, one_line
from serving.config import WEB_STACK, Limits, synthetic_warning
from serving.prediction import Prediction, Predictor

_CHUNK = 1 << 20


class RequestError(Exception):
    """A request that cannot be answered, with its HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def model_card(predictor: Predictor) -> dict:
    """What the page and ``/api/health`` say about the model: name, training data, test figures, and
    the warning of a model trained on synthetic music.

    The training data is named by its folder's name alone: no answer of this server holds a path.
    """
    about = predictor.about
    data = about.get("data") or {}
    trained_on = None
    if data:
        trained_on = {"name": Path(data.get("data_dir") or "").name or None, "synthetic": bool(data.get("synthetic")),
                      "split": data.get("split")}
    window_seconds = predictor.window / SAMPLE_RATE if predictor.window else None
    return {"name": predictor.name, "model": about.get("model"), "data": trained_on, "test": about.get("test"),
            "genres": list(predictor.genres), "window_seconds": window_seconds, "warning": synthetic_warning(data)}


def answer(predictor: Predictor, prediction: Prediction) -> dict:
    """The JSON answer for one scored recording."""
    order = np.argsort(-prediction.probabilities)
    return {
        "model": predictor.name,
        "seconds": round(prediction.seconds, 3),
        "genres": [prediction.genres[i] for i in order],
        "probabilities": [round(float(prediction.probabilities[i]), 6) for i in order],
        "genre_order": list(prediction.genres),
        "window_seconds": prediction.window_seconds,
        "windows": [{"start": round(start, 3), "probabilities": [round(float(p), 6) for p in row]}
                    for start, row in zip(prediction.starts, prediction.windows)],
    }


def score_upload(predictor: Predictor, stream, limits: Limits, suffix: str):
    """Reads an uploaded file (at most the upload limit) into a private temporary file, scores it
    window by window and deletes the file; returns the ``Prediction``.

    Raises:
        RequestError: 413 for an upload or a recording over the limits, 422 for a file that is
            empty, not audio or holds NaN samples.
    """
    limit = int(limits.max_upload_mb * 1e6)
    handle, path = tempfile.mkstemp(prefix="gtzan-upload-", suffix=suffix)
    try:
        size = 0
        with os.fdopen(handle, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, f"the upload is larger than {limits.max_upload_mb:g} MB (--max-upload-mb)")
                out.write(chunk)
        if size == 0:
            raise RequestError(422, "the file is empty")
        try:
            seconds = soundfile.info(path).duration
        except Exception:  # not audio: scoring below says so
            seconds = 0.0
        if seconds > limits.max_seconds:  # refused before it is decoded
            raise RequestError(413, f"the recording is {seconds:.0f} s long; this server takes at most "
                                    f"{limits.max_seconds:g} s (--max-seconds)")
        try:
            return predictor.predict_file(path)
        except AudioError as error:  # the toolkit's own words: a header it refuses, NaN samples, no samples
            raise RequestError(422, f"not usable audio: {error.reason}") from None
        except Exception:  # soundfile and soxr raise several types, with the temporary path in their text
            raise RequestError(422, "not an audio file this server can read; send WAV, FLAC, OGG, MP3 or AU") from None
    finally:
        os.unlink(path)


def web_stack():
    """FastAPI and uvicorn, the ``app`` extra: imported when an app is made or served, not with this module.

    Returns:
        The ``fastapi`` and ``uvicorn`` modules.

    Raises:
        UsageError: if they are not installed, with the line that installs them.
    """
    try:
        import fastapi
        import uvicorn
    except ImportError:
        raise UsageError(f"the web app needs FastAPI and uvicorn: {WEB_STACK}") from None
    return fastapi, uvicorn


def serve(app, host: str, port: int, on_start: Callable[[], None] = lambda: None) -> None:
    """Serves ``app`` (:func:`create_app`) on ``host:port`` with uvicorn until Ctrl-C or SIGTERM.

    ``on_start`` is called once the app is made, before the port is bound.

    Raises:
        UsageError: if the port is in use or the address is not this machine's.
    """
    _, uvicorn = web_stack()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    on_start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits 1 when it cannot bind the port
        server.started = False
    if not server.started:
        raise UsageError(f"cannot serve on {host}:{port}: the port is in use or the address is not this machine's")


def create_app(predictor: Predictor, limits: Limits = Limits()):
    """The FastAPI application over ``predictor``.

    Raises:
        UsageError: if FastAPI is not installed (with the line that installs it).
    """
    fastapi, _ = web_stack()
    Request, JSONResponse = fastapi.Request, fastapi.responses.JSONResponse
    # Starlette's own HTTPException (FastAPI's is a subclass): routing raises it for a 404 or 405.
    RequestValidationError = fastapi.exceptions.RequestValidationError
    HTTPException = fastapi.exceptions.StarletteHTTPException

    app = fastapi.FastAPI(title="gtzan-keras", docs_url=None, redoc_url=None, openapi_url=None)
    page = resources.files("serving").joinpath("static/index.html").read_text()
    card = model_card(predictor)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "body" for e in error.errors())
        return JSONResponse({"error": f"send the audio file as the multipart form field 'file' (missing or bad: "
                                      f"{fields})"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": one_line(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        return JSONResponse({"error": f"the server could not score this file ({type(error).__name__})"},
                            status_code=500)

    @app.get("/", response_class=fastapi.responses.HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "model": card}

    @app.post("/api/predict")
    def predict(file: fastapi.UploadFile = fastapi.File(...)) -> dict:  # noqa: B008 (FastAPI's way to declare the field)
        suffix = os.path.splitext(file.filename or "")[1][:8]
        return answer(predictor, score_upload(predictor, file.file, limits, suffix if suffix[1:].isalnum() else ""))

    return app
