"""A local web page and JSON API to try a trained model: drop a song on it, see its genres over time.

Usage::

    python -m serving.app [--model EXPORT_DIR|ready] [--host 127.0.0.1] [--port 8000]
        [--max-seconds 1800] [--max-upload-mb 100] [--max-concurrent N] [--max-queue N] [--allow-host NAME ...]

Serves the page on ``http://HOST:PORT/`` and the API on ``/api/predict`` (``POST``, the audio
file as the multipart field ``file``) and ``/api/health``, over one model loaded at start-up
(``serving.web``). ``--model`` is an exported model as ``serving.predict`` takes it (a SavedModel
folder, or its ``model.onnx``, ``model.tflite``, ``model.xml`` or ``head.npz``, or ``ready``, the
model shipped with the toolkit); the default is the newest export under ``exports/``. An exported model is a program for its runtime: serve only models you trust. It listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise, and answers
requests that name a loopback host, the ``--host`` given, or a name of ``--allow-host`` (the name
users reach it by behind a reverse proxy, say); what else it enforces is in ``serving.web``.
"""

from __future__ import annotations

import argparse
import re
import sys

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.errors import UsageError
from serving.config import LOOPBACK_HOSTS, MAX_SECONDS, MAX_UPLOAD_MB, MODEL_HELP, Limits, check_web_stack, find_export

PROG = "python -m serving.app"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.weights_flags()])
    result.add_argument("--model", help=MODEL_HELP)
    result.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    result.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    result.add_argument("--max-seconds", type=float, default=MAX_SECONDS,
                        help=f"longest recording accepted, in seconds (default: {MAX_SECONDS:g})")
    result.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB,
                        help=f"largest upload accepted, in MB (default: {MAX_UPLOAD_MB:g})")
    result.add_argument("--max-concurrent", type=int,
                        help="recordings received and scored at once; more wait in the queue (default: the cores)")
    result.add_argument("--max-queue", type=int,
                        help="requests that may wait for a scoring slot; beyond, 503 at once (default: 8 per "
                             "concurrent scoring)")
    result.add_argument("--queue-timeout", type=float, default=Limits.queue_timeout_s,
                        help=f"seconds a request may wait in the queue before a 503 (default: {Limits.queue_timeout_s:g})")
    result.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a host name requests may name besides loopback and --host (repeatable)")
    result.add_argument("--client-timeout", type=float, default=Limits.body_timeout_s,
                        help="seconds a client may take to send its request head, or stall its upload "
                             f"(default: {Limits.body_timeout_s:g})")
    result.add_argument("--linger-mb", type=float, default=Limits.linger_mb,
                        help="after an early answer (413, 400, 503), MB of the body still read and discarded so the "
                             f"client can read the answer (default: {Limits.linger_mb:g})")
    result.add_argument("--linger-seconds", type=float, default=Limits.linger_s,
                        help=f"the same, in seconds (default: {Limits.linger_s:g})")
    return result


def app(args: argparse.Namespace) -> int:
    """The command: loads the model once and serves until Ctrl-C."""
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be from 1 to 65535, got {args.port}")
    limits = Limits(args.max_seconds, args.max_upload_mb, max_concurrent=args.max_concurrent, max_queue=args.max_queue,
                    queue_timeout_s=args.queue_timeout, body_timeout_s=args.client_timeout,
                    header_timeout_s=args.client_timeout, linger_mb=args.linger_mb, linger_s=args.linger_seconds)
    for name in args.allow_host:
        if not re.fullmatch(r"[A-Za-z0-9.:-]+", name):
            raise UsageError(f"--allow-host takes a host name such as genres.example.org (no port, no scheme), "
                             f"got {name!r}")
    hosts = (*LOOPBACK_HOSTS, args.host, *args.allow_host)
    export = find_export(args.model)
    check_web_stack()
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from serving import prediction, web  # the library loads TensorFlow: only once every flag is checked

    predictor = prediction.Predictor(export)
    app = web.create_app(predictor, limits, hosts)
    try:
        web.serve(app, args.host, args.port, limits, on_start=lambda: print(
            f"model: {predictor.name} ({export}, {predictor.runtime.name})\nserving on http://{args.host}:{args.port}/ (Ctrl-C stops)",
            flush=True))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM once uvicorn has shut down: a clean stop
        pass
    print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, app, argv)


if __name__ == "__main__":
    sys.exit(main())
