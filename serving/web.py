"""A web page and a JSON API over one loaded model: the library behind ``python -m serving.app``.

Built on FastAPI (Starlette underneath, served by uvicorn). The page (``serving/static/index.html``)
is plain HTML and JavaScript: it uploads a file or a microphone recording to the same API that
programs use and draws the answer.

* ``GET /``: the page.
* ``GET /api/health``: ``{"status": "ok", "model": ...}``.
* ``POST /api/predict`` with the audio file as the multipart field ``file``: ``{"model": ...,
  "seconds": ..., "genres": [best first], "probabilities": [theirs], "genre_order": [the
  model's], "window_seconds": ..., "windows": [{"start": s, "probabilities": [in genre_order]}]}``.

What a client may send is bounded (:class:`serving.config.Limits`), whatever it declares:

* the body is counted as it arrives and refused past ``--max-upload-mb`` (413, the connection
  closed, the temporary file removed); it holds exactly one part, the ``file`` field (400
  otherwise); a body that stops arriving for ``body_timeout_s`` is dropped (408);
* at most ``--max-concurrent`` recordings are received and scored at once; beyond that a request
  waits in a queue of at most ``--max-queue`` for ``--queue-timeout`` seconds, its body not read
  meanwhile (no disk is used by a waiting request), and is answered 503 with ``Retry-After`` when the
  queue is full or the wait runs out; scoring stops when the client goes;
* decoding is bounded whatever the file's header says (``data.decode.stream_audio``): a longer
  recording than ``--max-seconds`` is refused (413) as soon as that much is decoded;
* the health answer and the page never wait for scoring;
* only requests naming an allowed host are served (loopback names, ``--host`` and
  ``--allow-host``: no DNS rebinding), a POST from another origin is refused (403), and every
  answer carries CSP, frame, content-type and referrer headers;
* connections are capped and a client that does not finish its request headers in
  ``header_timeout_s`` is disconnected (:func:`serve`);
* an answer sent before the whole body was read (413, 400, 503, 408) is followed by a lingering
  close (:func:`serve`): the server stops sending, then reads and discards what the client still
  sends, up to ``--linger-mb`` and ``--linger-seconds``, before it closes, so that a client that sends
  its whole body before reading an answer (most HTTP libraries, a browser's upload) reads it instead
  of a reset connection.

Answers never hold a path of the server, a library's message or a Python error: an error is
``{"error": "one line"}`` in the toolkit's own words, and a fault of the server is a 500 with a
fixed text, logged on the server.
"""

# No "from __future__ import annotations": FastAPI reads the endpoints' annotations as objects.
import asyncio
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import soundfile

from data.catalogue import SAMPLE_RATE
from data.decode import TooLong, declared_seconds
from data.errors import AudioError, UsageError, one_line
from serving.config import LOOPBACK_HOSTS, WEB_STACK, Limits, synthetic_warning
from serving.prediction import Cancelled, Prediction, Predictor

logger = logging.getLogger(__name__)

# Room for the multipart framing around the file itself.
_FRAMING_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class RequestError(Exception):
    """A request that cannot be answered, with its HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def model_card(predictor: Predictor) -> dict:
    """What the page and ``/api/health`` say about the model: name, training data, test figures (or, for
    a model trained on every clip it had, its configuration's cross-validated figures), and the warning
    of a model trained on synthetic music.

    The training data is named by its folder's name alone: no answer of this server holds a path.
    """
    about = predictor.about
    data = about.get("data") or {}
    trained_on = None
    if data:
        trained_on = {"name": Path(data.get("data_dir") or "").name or None, "synthetic": bool(data.get("synthetic")),
                      "split": data.get("split")}
    window_seconds = predictor.window / SAMPLE_RATE if predictor.window else None
    return {"name": predictor.name, "model": about.get("model"), "runtime": predictor.runtime.name,
            "data": trained_on, "test": about.get("test"), "crossval": _figures(about.get("crossval")),
            "genres": list(predictor.genres), "window_seconds": window_seconds, "warning": synthetic_warning(data)}


def _figures(crossval: dict | None) -> dict | None:
    """The cross-validated figures of a description, without the commands (an answer names no command line)."""
    if not isinstance(crossval, dict):
        return None
    return {kind: {key: value for key, value in figure.items() if key in ("track_accuracy", "std", "seeds")}
            for kind, figure in crossval.items() if isinstance(figure, dict)}


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


def score_file(predictor: Predictor, path: str, limits: Limits, stop: Callable[[], bool] = lambda: False) -> Prediction:
    """Scores an uploaded file window by window, within the limits; returns the ``Prediction``.

    Raises:
        RequestError: 413 for a recording over ``--max-seconds`` (by its header, or once that much
            is decoded), 422 for a file that is empty, not audio, or holds NaN samples.
        Cancelled: when ``stop()`` says the client has gone.
    """
    if os.path.getsize(path) == 0:
        raise RequestError(422, "the file is empty")
    try:
        seconds = declared_seconds(soundfile.info(path))
    except Exception:  # not audio: scoring below says so
        seconds = None
    if seconds is not None and seconds > limits.max_seconds:  # refused before it is decoded
        raise RequestError(413, f"the recording is {seconds:.0f} s long; this server takes at most "
                                f"{limits.max_seconds:g} s (--max-seconds)")
    try:
        return predictor.predict_file(path, max_seconds=limits.max_seconds, stop=stop)
    except TooLong:
        raise RequestError(413, f"the recording is longer than {limits.max_seconds:g} s, the most this server "
                                "takes (--max-seconds)") from None
    except AudioError as error:  # the toolkit's own words: a header it refuses, NaN samples, no samples
        raise RequestError(422, f"not usable audio: {error.reason}") from None
    except Cancelled:
        raise
    except Exception:  # soundfile and soxr raise several types, with the temporary path in their text
        raise RequestError(422, "not an audio file this server can read; send WAV, FLAC, OGG, MP3 or AU") from None


class Upload:
    """The one ``file`` part of a multipart body, written to a private temporary file as it arrives.

    Fed chunk by chunk (:meth:`write`); the body's size is counted across every chunk, so the
    disk used is at most ``limit`` whatever the client declares (``limit`` is the user's cap,
    ``cap_mb``, plus room for the multipart framing; a refusal states the cap as the user set it).

    Raises:
        RequestError: 413 past ``limit`` bytes; 400 for a part that is not the ``file`` field, or a
            second part.
    """

    def __init__(self, boundary: bytes, limit: int, multipart, cap_mb: float):
        self.limit, self.cap_mb, self.size, self.parts = limit, cap_mb, 0, 0
        self.suffix, self.header, self.headers = "", b"", {}
        handle, self.path = tempfile.mkstemp(prefix="gtzan-upload-")
        self.out = os.fdopen(handle, "wb")
        self.parser = multipart.MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_part_data": self._data, "on_header_field": self._field,
            "on_header_value": self._value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished})

    def _part_begin(self) -> None:
        self.parts += 1
        self.headers = {}
        if self.parts > 1:
            raise RequestError(400, "send one multipart part, the audio file as the field 'file', and nothing else")

    def _field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self.headers[self.header.lower()] = self.headers.get(self.header.lower(), b"") + data[start:end]

    def _header_end(self) -> None:
        self.header = b""

    def _headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition", b"").decode("latin-1")
        fields = dict(_parameters(disposition))
        if fields.get("name") != "file" or "filename" not in fields:
            raise RequestError(400, "send the audio file as the multipart form field 'file'")
        suffix = os.path.splitext(fields["filename"])[1][:8]
        self.suffix = suffix if suffix[1:].isalnum() else ""

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.out.write(data[start:end])

    def write(self, chunk: bytes) -> None:
        """Counts and parses the next chunk of the body."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise RequestError(413, f"the upload is larger than {self.cap_mb:g} MB (--max-upload-mb)")
        self.parser.write(chunk)

    def finish(self) -> str:
        """Ends the body; returns the file's path (with the client's extension, which decoders use).

        Raises:
            RequestError: 400 for a body without the ``file`` part.
        """
        self.parser.finalize()
        self.out.close()
        if self.parts != 1 or not self.headers:
            raise RequestError(400, "send the audio file as the multipart form field 'file'")
        if self.suffix:
            os.replace(self.path, self.path + self.suffix)
            self.path += self.suffix
        return self.path

    def discard(self) -> None:
        """Removes the temporary file, whatever became of the request."""
        self.out.close()
        for path in {self.path, self.path + self.suffix}:
            Path(path).unlink(missing_ok=True)


def _parameters(header: str):
    """``form-data; name="file"; filename="a.wav"`` -> ``("name", "file"), ("filename", "a.wav")``."""
    for item in header.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        yield key.strip().lower(), value.strip().strip('"')


class Slots:
    """The scoring slots (``limits.concurrent``) and the bounded queue of requests waiting for one.

    A request takes a free slot at once; otherwise it waits, if fewer than ``limits.queue`` wait
    already, for at most ``limits.queue_timeout_s``. Made in the app, its semaphore is made in the
    event loop that serves the app, on first use.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self.waiting = 0
        self._free: asyncio.Semaphore | None = None

    @property
    def free(self) -> asyncio.Semaphore:
        if self._free is None:
            self._free = asyncio.Semaphore(self.limits.concurrent)
        return self._free

    def _busy(self, reason: str) -> RequestError:
        # A client that retries after this many seconds finds the queue a round of scorings shorter.
        retry = max(1, min(30, round(self.limits.queue_timeout_s / 12)))
        return RequestError(503, reason, {"retry-after": str(retry), "connection": "close"})

    async def acquire(self) -> None:
        """Takes a slot, waiting in the queue if need be.

        Raises:
            RequestError: 503 with ``Retry-After`` when the queue is full or the wait runs out.
        """
        if not self.free.locked():
            await self.free.acquire()
            return
        if self.waiting >= self.limits.queue:
            raise self._busy(f"the server is scoring {self.limits.concurrent} recordings and {self.waiting} more are "
                             "waiting (--max-queue); try again")
        self.waiting += 1
        try:
            await asyncio.wait_for(self.free.acquire(), self.limits.queue_timeout_s)
        except asyncio.TimeoutError:
            raise self._busy(f"the server stayed busy for {self.limits.queue_timeout_s:g} s (--queue-timeout); "
                             "try again") from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        """Gives a slot back."""
        self.free.release()


def allowed_host(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names one of ``allowed``."""
    name = urlsplit(f"//{host}").hostname or ""
    return name in allowed


class Guard:
    """ASGI middleware: the Host allow-list, same-origin POSTs and the security headers of every answer.

    Args:
        app: The application it guards.
        hosts: The host names requests may name (loopback names, the served address, ``--allow-host``).
    """

    def __init__(self, app, hosts: tuple[str, ...]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = None
        if not allowed_host(headers.get("host", ""), self.hosts):
            refusal = (400, "this server answers requests for its own address only")
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS") and "origin" in headers and \
                not allowed_host(urlsplit(headers["origin"]).netloc, self.hosts):
            refusal = (403, "requests from other web sites are refused")

        async def secured(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]}
            await send(message)

        if refusal is None:
            return await self.app(scope, receive, secured)
        body = ('{"error": "%s"}' % refusal[1]).encode()
        await secured({"type": "http.response.start", "status": refusal[0],
                       "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                   (b"connection", b"close")]})
        await secured({"type": "http.response.body", "body": body})


def web_stack():
    """FastAPI, uvicorn and python-multipart, the ``app`` extra: imported when an app is made or
    served, not with this module.

    Returns:
        The ``fastapi``, ``uvicorn`` and ``python_multipart`` modules.

    Raises:
        UsageError: if they are not installed, with the line that installs them.
    """
    try:
        import fastapi
        import python_multipart
        import uvicorn.protocols.http.h11_impl  # binds uvicorn; serve() subclasses its HTTP protocol
    except ImportError:
        raise UsageError(f"the web app needs FastAPI, uvicorn and python-multipart: {WEB_STACK}") from None
    return fastapi, uvicorn, python_multipart


def create_app(predictor: Predictor, limits: Limits = Limits(), hosts: tuple[str, ...] = LOOPBACK_HOSTS):
    """The application over ``predictor``, guarded (:class:`Guard`); ``hosts`` are the host names it answers.

    Raises:
        UsageError: if FastAPI is not installed (with the line that installs it).
    """
    fastapi, _, multipart = web_stack()
    Request, JSONResponse = fastapi.Request, fastapi.responses.JSONResponse
    # Starlette's own HTTPException (FastAPI's is a subclass): routing raises it for a 404 or 405.
    HTTPException = fastapi.exceptions.StarletteHTTPException
    run_in_threadpool = fastapi.concurrency.run_in_threadpool

    app = fastapi.FastAPI(title="gtzan-keras", docs_url=None, redoc_url=None, openapi_url=None)
    page = resources.files("serving").joinpath("static/index.html").read_text()
    card = model_card(predictor)
    slots = Slots(limits)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        return JSONResponse({"error": str(error)}, status_code=error.status, headers=error.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": one_line(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        logger.exception("the request failed")  # on the server only: the answer names no internals
        return JSONResponse({"error": "the server could not score this file"}, status_code=500)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=fastapi.responses.HTMLResponse)
    async def index() -> str:
        return page

    @app.api_route("/api/health", methods=["GET", "HEAD"])
    async def health() -> dict:
        return {"status": "ok", "model": card}

    async def receive(request: Request) -> Upload:
        kind, _, options = request.headers.get("content-type", "").partition(";")
        boundary = dict(_parameters(";" + options)).get("boundary")
        if kind.strip().lower() != "multipart/form-data" or not boundary:
            raise RequestError(400, "send the audio file as the multipart form field 'file'")
        limit = int(limits.max_upload_mb * 1e6) + _FRAMING_BYTES
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte of it is read
            raise RequestError(413, f"the upload is larger than {limits.max_upload_mb:g} MB (--max-upload-mb)",
                               {"connection": "close"})
        upload = Upload(boundary.encode("latin-1"), limit, multipart, limits.max_upload_mb)
        try:
            chunks = request.stream().__aiter__()
            while True:
                try:
                    chunk = await asyncio.wait_for(chunks.__anext__(), limits.body_timeout_s)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise RequestError(408, f"the upload stalled for {limits.body_timeout_s:g} s",
                                       {"connection": "close"}) from None
                upload.write(chunk)
            upload.finish()
        except RequestError as error:
            upload.discard()
            raise RequestError(error.status, str(error), {"connection": "close", **error.headers}) from None
        except BaseException:
            upload.discard()
            raise
        return upload

    @app.post("/api/predict")
    async def predict(request: Request) -> dict:
        await slots.acquire()  # waits in the bounded queue, or raises 503
        gone = threading.Event()

        async def watch() -> None:  # scoring stops when the client disconnects
            while not gone.is_set():
                if await request.is_disconnected():
                    gone.set()
                await asyncio.sleep(0.1)

        upload, watcher = None, None
        try:
            upload = await receive(request)
            watcher = asyncio.create_task(watch())
            prediction = await run_in_threadpool(score_file, predictor, upload.path, limits, gone.is_set)
            return answer(predictor, prediction)
        except Cancelled:
            raise RequestError(499, "the client went away") from None
        finally:
            gone.set()
            if watcher is not None:
                watcher.cancel()
            if upload is not None:
                upload.discard()
            slots.release()

    return Guard(app, hosts)


class _LingeringTransport:
    """A connection's transport whose ``close()`` lingers when the client may still be sending (see
    :func:`serve`); ``real`` is the transport itself, and everything else goes to it."""

    def __init__(self, real, protocol):
        self.real, self.protocol = real, protocol

    def close(self) -> None:
        if self.protocol.lingering or self.real.is_closing():
            return
        if self.protocol.wants_to_linger():
            self.protocol.linger()
        else:
            self.real.close()

    def __getattr__(self, name):
        return getattr(self.real, name)


def serve(app, host: str, port: int, limits: Limits = Limits(),
          on_start: Callable[[], None] = lambda: None) -> None:
    """Serves ``app`` (:func:`create_app`) on ``host:port`` with uvicorn until Ctrl-C or SIGTERM.

    Open connections are capped (``limits.max_connections``: beyond it uvicorn answers 503) and a
    connection that has not sent a whole request head ``limits.header_timeout_s`` after it
    opened is closed. A connection closed after an answer while the client is still sending its
    body lingers, as nginx's lingering close and Go's net/http do: the server's side is shut for
    writing (the client reads the whole answer, then the end of the stream), and what the client
    still sends is read and discarded, at most ``limits.linger_mb`` MB for ``limits.linger_s``
    seconds, before the socket closes; closing at once would make the kernel reset the connection,
    and a client that sends its whole body before reading would see the reset, not the answer.
    ``on_start`` is called once the app is made, before the port is bound.

    Raises:
        UsageError: if the port is in use or the address is not this machine's.
    """
    _, uvicorn, _ = web_stack()
    h11 = uvicorn.protocols.http.h11_impl.h11

    class Protocol(uvicorn.protocols.http.h11_impl.H11Protocol):
        # uvicorn times idle connections between requests only: a client trickling its headers
        # would hold its connection for ever.
        def connection_made(self, transport):
            self.lingering, self.discarded, self.linger_deadline = False, 0, None
            super().connection_made(_LingeringTransport(transport, self))
            self.head_deadline = self.loop.call_later(limits.header_timeout_s, self.drop_without_request)

        def drop_without_request(self):
            if getattr(self, "cycle", None) is None and not self.transport.is_closing():
                self.transport.real.close()

        def wants_to_linger(self) -> bool:
            """Whether the client may still be sending the body of a request answered early."""
            return self.conn.their_state is h11.SEND_BODY and limits.linger_s > 0

        def linger(self):
            """Stops sending, then reads and discards what the client still sends, within the bounds."""
            self.lingering = True
            real = self.transport.real
            real.resume_reading()
            if real.can_write_eof():
                real.write_eof()  # the answer, then end of stream: the client reads it, then EOF
            self.linger_deadline = self.loop.call_later(limits.linger_s, real.close)

        def data_received(self, data):
            if not self.lingering:
                return super().data_received(data)
            self.discarded += len(data)  # read and dropped: nothing of it is kept
            if self.discarded > limits.linger_mb * 1e6:
                self.transport.real.close()

        def eof_received(self):
            if self.lingering:  # the client has sent everything: done
                self.transport.real.close()
            return super().eof_received()

        def connection_lost(self, exc):
            self.head_deadline.cancel()
            if self.linger_deadline is not None:
                self.linger_deadline.cancel()
            super().connection_lost(exc)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", http=Protocol,
                            limit_concurrency=limits.max_connections, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    on_start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits 1 when it cannot bind the port
        server.started = False
    if not server.started:
        raise UsageError(f"cannot serve on {host}:{port}: the port is in use or the address is not this machine's")
